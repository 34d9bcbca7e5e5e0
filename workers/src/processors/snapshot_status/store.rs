//! The processor's reads and writes on the export-status and product-status tables, through
//! the [`Table`] port. Counting a file is one conditional update (increment + remember the
//! file, unless it is already remembered), so a redelivered or concurrently delivered
//! notification is never counted twice and no read-then-write race exists.

use std::sync::Arc;

use super::payloads::{ProductStatus, product_status_key, product_status_update};
use super::state::{CollectionStatus, Counting, attr};
use crate::io::{AttributeValue, IoError, Item, ItemUpdate, Table, UpdateCondition, UpdateOutcome};

/// Why the tables could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "export status table `{table}` has no item for CorrelationId `{correlation_id}`, \
         CollectionName `{collection_name}`; the exporter creates it before files are sent, so \
         this is retried"
    )]
    MissingCollection {
        table: String,
        correlation_id: String,
        collection_name: String,
    },
    #[error("{0}")]
    Io(#[from] IoError),
}

/// A collection's row in the export-status table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionKey {
    pub correlation_id: String,
    pub collection_name: String,
}

impl CollectionKey {
    pub fn item(&self) -> Item {
        Item::from([
            (
                attr::CORRELATION_ID.to_owned(),
                AttributeValue::S(self.correlation_id.clone()),
            ),
            (
                attr::COLLECTION_NAME.to_owned(),
                AttributeValue::S(self.collection_name.clone()),
            ),
        ])
    }
}

/// The export-status and product-status tables.
#[derive(Clone, Debug)]
pub struct SnapshotTables {
    pub export_status: Arc<dyn Table>,
    pub product_status: Arc<dyn Table>,
}

/// The update that counts one file: `FilesReceived + 1` and the marker remembered, only if the
/// marker is not remembered yet. Without a marker (no file name, no message id) it can only
/// require the item to exist, as the original's plain increment did.
pub fn count_file_update(marker: Option<&str>) -> ItemUpdate {
    match marker {
        Some(marker) => ItemUpdate {
            increment: vec![(attr::FILES_RECEIVED.to_owned(), 1)],
            add_to_set: vec![(attr::PROCESSED_FILES.to_owned(), marker.to_owned())],
            condition: Some(UpdateCondition::NotInSet {
                attribute: attr::PROCESSED_FILES.to_owned(),
                value: marker.to_owned(),
            }),
            ..ItemUpdate::default()
        },
        None => ItemUpdate {
            increment: vec![(attr::FILES_RECEIVED.to_owned(), 1)],
            condition: Some(UpdateCondition::ItemExists),
            ..ItemUpdate::default()
        },
    }
}

/// The update that sets a collection's status, recording which delivery did it.
pub fn set_status_update(status: &CollectionStatus, by: Option<(&str, &str)>) -> ItemUpdate {
    let mut set = vec![(
        attr::COLLECTION_STATUS.to_owned(),
        AttributeValue::S(status.as_str().to_owned()),
    )];
    if let Some((attribute, marker)) = by {
        set.push((attribute.to_owned(), AttributeValue::S(marker.to_owned())));
    }
    ItemUpdate {
        set,
        condition: Some(UpdateCondition::ItemExists),
        ..ItemUpdate::default()
    }
}

impl SnapshotTables {
    /// Counts one file; returns whether this delivery counted it and the item as it is now.
    pub async fn count_file(
        &self,
        key: &CollectionKey,
        marker: Option<&str>,
    ) -> Result<(Counting, Item), StoreError> {
        let update = count_file_update(marker);
        match self.export_status.update(&key.item(), &update).await? {
            UpdateOutcome::Applied(item) => Ok((Counting::New, item)),
            UpdateOutcome::ConditionFailed => {
                // Either the marker is already there (a redelivery) or the item is missing.
                let item = self.collection(key).await?;
                let remembered = marker.is_some_and(|m| {
                    matches!(item.get(attr::PROCESSED_FILES), Some(AttributeValue::Ss(s)) if s.contains(m))
                });
                if remembered {
                    Ok((Counting::Duplicate, item))
                } else {
                    // The condition failed for a reason a read cannot see; let the retry decide.
                    Err(self.missing(key))
                }
            }
        }
    }

    /// The collection's item, read consistently (it may have just been written).
    pub async fn collection(&self, key: &CollectionKey) -> Result<Item, StoreError> {
        self.export_status
            .get(&key.item(), true)
            .await?
            .ok_or_else(|| self.missing(key))
    }

    /// Sets the collection's status (never creating the item).
    pub async fn set_status(
        &self,
        key: &CollectionKey,
        status: &CollectionStatus,
        by: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        match self
            .export_status
            .update(&key.item(), &set_status_update(status, by))
            .await?
        {
            UpdateOutcome::Applied(_) => Ok(()),
            UpdateOutcome::ConditionFailed => Err(self.missing(key)),
        }
    }

    /// Every collection of a run, read consistently.
    pub async fn run_collections(&self, correlation_id: &str) -> Result<Vec<Item>, StoreError> {
        Ok(self
            .export_status
            .query(
                attr::CORRELATION_ID,
                &AttributeValue::S(correlation_id.to_owned()),
                true,
            )
            .await?)
    }

    /// Sets the run's data product status.
    pub async fn set_product_status(
        &self,
        correlation_id: &str,
        status: ProductStatus,
    ) -> Result<(), StoreError> {
        self.product_status
            .update(
                &product_status_key(correlation_id),
                &product_status_update(status),
            )
            .await?;
        Ok(())
    }

    fn missing(&self, key: &CollectionKey) -> StoreError {
        StoreError::MissingCollection {
            table: self.export_status.name().to_owned(),
            correlation_id: key.correlation_id.clone(),
            collection_name: key.collection_name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_a_named_file_is_one_conditional_update() {
        let update = count_file_update(Some("file:a.gz.enc"));
        assert_eq!(update.increment, vec![("FilesReceived".to_owned(), 1)]);
        assert_eq!(
            update.add_to_set,
            vec![("ProcessedFiles".to_owned(), "file:a.gz.enc".to_owned())]
        );
        assert_eq!(
            update.condition,
            Some(UpdateCondition::NotInSet {
                attribute: "ProcessedFiles".to_owned(),
                value: "file:a.gz.enc".to_owned()
            })
        );
        assert!(update.set.is_empty());
    }

    #[test]
    fn counting_without_a_marker_only_requires_the_item() {
        let update = count_file_update(None);
        assert_eq!(update.condition, Some(UpdateCondition::ItemExists));
        assert!(update.add_to_set.is_empty());
    }

    #[test]
    fn status_update_records_the_delivery() {
        let update = set_status_update(
            &CollectionStatus::Received,
            Some((attr::RECEIVED_BY, "file:a")),
        );
        assert_eq!(
            update.set,
            vec![
                (
                    "CollectionStatus".to_owned(),
                    AttributeValue::S("Received".into())
                ),
                ("ReceivedBy".to_owned(), AttributeValue::S("file:a".into())),
            ]
        );
        assert_eq!(update.condition, Some(UpdateCondition::ItemExists));
    }

    #[test]
    fn collection_key_uses_the_original_attribute_names() {
        let key = CollectionKey {
            correlation_id: "c".into(),
            collection_name: "db.a".into(),
        };
        let item = key.item();
        assert_eq!(item["CorrelationId"], AttributeValue::S("c".into()));
        assert_eq!(item["CollectionName"], AttributeValue::S("db.a".into()));
    }
}
