//! What the processor tells others, byte for byte as the original did: the export-state
//! notification for the snapshot sender (FIFO SQS), the monitoring message when a run has
//! fully succeeded (SNS), and the data product status row.

use serde::Serialize;
use serde_json::Value;

use super::input::SnapshotMessage;
use crate::io::{AttributeValue, Item, ItemUpdate};
use crate::processors::OutputRecord;
use crate::python_json;

/// Product table key attributes and the fixed data product name.
pub const PRODUCT_CORRELATION_ID: &str = "Correlation_Id";
pub const PRODUCT_DATA_PRODUCT: &str = "DataProduct";
pub const PRODUCT_STATUS: &str = "Status";
pub const DATA_PRODUCT: &str = "SNAPSHOT_SENDER";

/// The status text of the monitoring message when every collection succeeded.
pub const ALL_COLLECTIONS_SUCCESSFUL: &str = "All collections successful";

/// The export-state notification body, fields in the original's order.
#[derive(Serialize)]
struct ExportStateNotification<'a> {
    shutdown_flag: &'a Value,
    correlation_id: &'a str,
    topic_name: &'a str,
    snapshot_type: &'a str,
    reprocess_files: &'a Value,
    export_date: &'a str,
    send_success_indicator: &'a str,
}

/// The FIFO message group of a collection: its name with `.` replaced by `_`.
pub fn message_group_id(collection_name: &str) -> String {
    collection_name.replace('.', "_")
}

/// Tells the snapshot sender that a collection has been received, so it sends `_success`.
/// No deduplication id, as in the original: the queue uses content-based deduplication,
/// which also absorbs the repeat a redelivered message may send.
pub fn export_state_notification(
    message: &SnapshotMessage,
) -> Result<OutputRecord, serde_json::Error> {
    let body = python_json::to_string(&ExportStateNotification {
        shutdown_flag: &message.shutdown_flag,
        correlation_id: &message.correlation_id,
        topic_name: &message.collection_name,
        snapshot_type: &message.snapshot_type,
        reprocess_files: &message.reprocess_files,
        export_date: &message.export_date,
        send_success_indicator: "true",
    })?;
    Ok(OutputRecord {
        body,
        group_id: Some(message_group_id(&message.collection_name)),
        ..OutputRecord::default()
    })
}

#[derive(Serialize)]
struct MonitoringMessage<'a> {
    severity: &'a str,
    notification_type: &'a str,
    slack_username: &'a str,
    title_text: String,
    custom_elements: [CustomElement<'a>; 2],
}

#[derive(Serialize)]
struct CustomElement<'a> {
    key: &'a str,
    value: &'a str,
}

/// The monitoring (SNS) message: `<Snapshot type> - <status>` with the export date and
/// correlation id as custom elements.
pub fn monitoring_message(
    snapshot_type: &str,
    export_date: &str,
    correlation_id: &str,
    status: &str,
) -> Result<String, serde_json::Error> {
    python_json::to_string(&MonitoringMessage {
        severity: "Critical",
        notification_type: "Information",
        slack_username: "Snapshot Sender",
        title_text: format!("{} - {status}", python_title(snapshot_type)),
        custom_elements: [
            CustomElement {
                key: "Export date",
                value: export_date,
            },
            CustomElement {
                key: "Correlation Id",
                value: correlation_id,
            },
        ],
    })
}

/// The monitoring message for a run whose collections all succeeded.
pub fn all_collections_successful(
    message: &SnapshotMessage,
) -> Result<OutputRecord, serde_json::Error> {
    Ok(OutputRecord {
        body: monitoring_message(
            &message.snapshot_type,
            &message.export_date,
            &message.correlation_id,
            ALL_COLLECTIONS_SUCCESSFUL,
        )?,
        ..OutputRecord::default()
    })
}

/// Python's `str.title()`: a letter after a letter is lower-cased, any other letter upper-cased.
pub fn python_title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_cased = false;
    for c in text.chars() {
        if previous_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        previous_cased = c.is_alphabetic();
    }
    out
}

/// The data product status written to the product table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProductStatus {
    /// Every collection of the run was received.
    Received,
    /// Every collection of the run succeeded.
    Completed,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "RECEIVED",
            Self::Completed => "COMPLETED",
        }
    }
}

/// The product table key of a run.
pub fn product_status_key(correlation_id: &str) -> Item {
    Item::from([
        (
            PRODUCT_CORRELATION_ID.to_owned(),
            AttributeValue::S(correlation_id.to_owned()),
        ),
        (
            PRODUCT_DATA_PRODUCT.to_owned(),
            AttributeValue::S(DATA_PRODUCT.to_owned()),
        ),
    ])
}

/// Sets the product status; creates the row if it does not exist, as the original's
/// unconditional UpdateItem did.
pub fn product_status_update(status: ProductStatus) -> ItemUpdate {
    ItemUpdate {
        set: vec![(
            PRODUCT_STATUS.to_owned(),
            AttributeValue::S(status.as_str().to_owned()),
        )],
        ..ItemUpdate::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(shutdown_flag: &str) -> SnapshotMessage {
        SnapshotMessage {
            correlation_id: "test_correlation_id".into(),
            collection_name: "db.test.collection".into(),
            snapshot_type: "fulls".into(),
            export_date: "2020-01-01".into(),
            shutdown_flag: Value::from(shutdown_flag),
            reprocess_files: Value::from("true"),
            is_success_file: false,
            file_name: "NOT_SET".into(),
            origin: "payload".into(),
        }
    }

    #[test]
    fn export_state_payload_has_the_original_fields_in_order() {
        let record = export_state_notification(&message("false")).unwrap();
        assert_eq!(
            record.body,
            r#"{"shutdown_flag": "false", "correlation_id": "test_correlation_id", "topic_name": "db.test.collection", "snapshot_type": "fulls", "reprocess_files": "true", "export_date": "2020-01-01", "send_success_indicator": "true"}"#
        );
        assert_eq!(record.group_id.as_deref(), Some("db_test_collection"));
        assert_eq!(record.deduplication_id, None);
    }

    #[test]
    fn null_shutdown_flag_passes_through() {
        let mut m = message("x");
        m.shutdown_flag = Value::Null;
        let record = export_state_notification(&m).unwrap();
        assert!(
            record.body.starts_with(r#"{"shutdown_flag": null, "#),
            "{}",
            record.body
        );
    }

    #[test]
    fn message_group_id_replaces_dots() {
        assert_eq!(message_group_id("db.collection1"), "db_collection1");
        assert_eq!(message_group_id("plain"), "plain");
    }

    #[test]
    fn monitoring_payload_is_the_original_message() {
        let body = monitoring_message("fulls", "2020-01-01", "test_correlation_id", "test status")
            .unwrap();
        assert_eq!(
            body,
            r#"{"severity": "Critical", "notification_type": "Information", "slack_username": "Snapshot Sender", "title_text": "Fulls - test status", "custom_elements": [{"key": "Export date", "value": "2020-01-01"}, {"key": "Correlation Id", "value": "test_correlation_id"}]}"#
        );
    }

    #[test]
    fn all_collections_successful_message_has_no_subject_or_attributes() {
        let record = all_collections_successful(&message("true")).unwrap();
        assert!(
            record
                .body
                .contains(r#""title_text": "Fulls - All collections successful""#)
        );
        assert!(record.attributes.is_empty());
        assert_eq!(record.group_id, None);
    }

    #[test]
    fn title_case_follows_python() {
        assert_eq!(python_title("fulls"), "Fulls");
        assert_eq!(python_title("INCREMENTAL"), "Incremental");
        assert_eq!(python_title("full_incremental"), "Full_Incremental");
        assert_eq!(python_title("they're 2nd"), "They'Re 2Nd");
    }

    #[test]
    fn product_status_row_key_and_values() {
        let key = product_status_key("c1");
        assert_eq!(key[PRODUCT_CORRELATION_ID], AttributeValue::S("c1".into()));
        assert_eq!(
            key[PRODUCT_DATA_PRODUCT],
            AttributeValue::S("SNAPSHOT_SENDER".into())
        );
        let update = product_status_update(ProductStatus::Completed);
        assert_eq!(
            update.set,
            vec![("Status".to_owned(), AttributeValue::S("COMPLETED".into()))]
        );
        assert_eq!(update.condition, None);
        assert_eq!(ProductStatus::Received.as_str(), "RECEIVED");
    }
}
