//! DynamoDB-like tables: items by their hash (and range) key, queries on the hash key in range
//! key order, whole-item puts, and conditional updates (`item_update`) applied atomically under
//! the backend's table lock.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::item_update::{self, Applied};
use super::registry::Registry;
use crate::io::{AttributeValue, IoError, IoErrorKind, Item, ItemUpdate, Table, UpdateOutcome};

/// A number in canonical decimal form, ordered by value as DynamoDB orders number keys
/// (`"10"` after `"9"`, `"1.50"` equal to `"1.5"`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    /// Integer digits without leading zeros (empty for zero).
    integer: String,
    /// Fraction digits without trailing zeros.
    fraction: String,
}

impl Decimal {
    fn parse(text: &str) -> Option<Self> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.len() + fraction.len() == 0 || !all_digits(integer) || !all_digits(fraction) {
            return None;
        }
        let integer = integer.trim_start_matches('0').to_owned();
        let fraction = fraction.trim_end_matches('0').to_owned();
        let zero = integer.is_empty() && fraction.is_empty();
        Some(Self {
            negative: negative && !zero,
            integer,
            fraction,
        })
    }

    fn magnitude_cmp(&self, other: &Self) -> Ordering {
        self.integer
            .len()
            .cmp(&other.integer.len())
            .then_with(|| self.integer.cmp(&other.integer))
            .then_with(|| self.fraction.cmp(&other.fraction))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.magnitude_cmp(other),
            (true, true) => other.magnitude_cmp(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One key attribute's value; DynamoDB keys are strings or numbers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KeyPart {
    N(Decimal),
    S(String),
}

type ItemKey = (KeyPart, Option<KeyPart>);

/// One table: its key schema and items in key order.
#[derive(Debug)]
struct TableState {
    hash_key: String,
    range_key: Option<String>,
    items: BTreeMap<ItemKey, Item>,
}

impl TableState {
    fn key_names(&self) -> Vec<&str> {
        std::iter::once(self.hash_key.as_str())
            .chain(self.range_key.as_deref())
            .collect()
    }

    fn part(name: &str, value: Option<&AttributeValue>) -> Result<KeyPart, String> {
        match value {
            Some(AttributeValue::S(text)) if !text.is_empty() => Ok(KeyPart::S(text.clone())),
            Some(AttributeValue::N(number)) => Decimal::parse(number)
                .map(KeyPart::N)
                .ok_or_else(|| format!("key attribute `{name}` = {number:?} is not a number")),
            Some(other) => Err(format!(
                "key attribute `{name}` is {other:?}; a key is a non-empty string or a number"
            )),
            None => Err(format!("the key attribute `{name}` is missing")),
        }
    }

    /// The key of `attributes`; with `exact`, nothing but the key may be there (GetItem and
    /// UpdateItem keys), otherwise it is a whole item.
    fn key_of(&self, attributes: &Item, exact: bool) -> Result<ItemKey, String> {
        if exact
            && let Some(extra) = attributes
                .keys()
                .find(|name| !self.key_names().contains(&name.as_str()))
        {
            return Err(format!(
                "`{extra}` is not a key attribute; the key is {}",
                self.key_names().join(" + ")
            ));
        }
        let hash = Self::part(&self.hash_key, attributes.get(&self.hash_key))?;
        let range = match &self.range_key {
            Some(name) => Some(Self::part(name, attributes.get(name))?),
            None => None,
        };
        Ok((hash, range))
    }
}

/// Every table of a backend, by name.
#[derive(Debug, Default)]
pub(super) struct Tables {
    registry: Registry<TableState>,
}

impl Tables {
    pub(super) fn create(&self, name: &str, hash_key: &str, range_key: Option<&str>) {
        self.registry.create(name, || TableState {
            hash_key: hash_key.to_owned(),
            range_key: range_key.map(str::to_owned),
            items: BTreeMap::new(),
        });
    }

    /// Every item of `name`, in key order (empty for an unknown table).
    pub(super) fn items(&self, name: &str) -> Vec<Item> {
        self.registry
            .with(name, |table| table.items.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// A handle on one table; it may name a table that does not exist (yet).
#[derive(Debug)]
pub(super) struct MemoryTable {
    name: String,
    tables: Arc<Tables>,
}

impl MemoryTable {
    pub(super) fn new(name: &str, tables: Arc<Tables>) -> Self {
        Self {
            name: name.to_owned(),
            tables,
        }
    }

    /// Runs `f` on the table under its lock; a validation message becomes a Rejected error.
    fn with<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut TableState) -> Result<R, String>,
    ) -> Result<R, IoError> {
        self.tables
            .registry
            .with(&self.name, f)
            .ok_or_else(|| {
                IoError::new(
                    operation,
                    &self.name,
                    IoErrorKind::NotFound,
                    "ResourceNotFoundException: the table does not exist; create it first \
                     (MemoryBackend::create_table)",
                )
            })?
            .map_err(|message| {
                IoError::new(
                    operation,
                    &self.name,
                    IoErrorKind::Rejected,
                    format!("ValidationException: {message}"),
                )
            })
    }
}

#[async_trait]
impl Table for MemoryTable {
    fn name(&self) -> &str {
        &self.name
    }

    /// Reads are always consistent here; `consistent` only matters on DynamoDB.
    async fn get(&self, key: &Item, _consistent: bool) -> Result<Option<Item>, IoError> {
        self.with("GetItem", |table| {
            let key = table.key_of(key, true)?;
            Ok(table.items.get(&key).cloned())
        })
    }

    async fn query(
        &self,
        partition_attribute: &str,
        value: &AttributeValue,
        _consistent: bool,
    ) -> Result<Vec<Item>, IoError> {
        self.with("Query", |table| {
            if partition_attribute != table.hash_key {
                return Err(format!(
                    "Query condition missed key schema element: `{partition_attribute}` is not \
                     the hash key `{}` (the embedded backend has no secondary indexes)",
                    table.hash_key
                ));
            }
            let hash = TableState::part(partition_attribute, Some(value))?;
            Ok(table
                .items
                .range((hash.clone(), None)..)
                .take_while(|((h, _), _)| *h == hash)
                .map(|(_, item)| item.clone())
                .collect())
        })
    }

    async fn update(&self, key: &Item, update: &ItemUpdate) -> Result<UpdateOutcome, IoError> {
        self.with("UpdateItem", |table| {
            let item_key = table.key_of(key, true)?;
            let applied =
                item_update::apply(table.items.get(&item_key), key, &table.key_names(), update)?;
            Ok(match applied {
                Applied::Updated(item) => {
                    table.items.insert(item_key, item.clone());
                    UpdateOutcome::Applied(item)
                }
                Applied::ConditionFailed => UpdateOutcome::ConditionFailed,
            })
        })
    }

    async fn put(&self, item: &Item) -> Result<(), IoError> {
        self.with("PutItem", |table| {
            let key = table.key_of(item, false)?;
            table.items.insert(key, item.clone());
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::io::UpdateCondition;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_owned())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn table(range: Option<&str>) -> (Arc<Tables>, MemoryTable) {
        let tables = Arc::new(Tables::default());
        tables.create("t", "CorrelationId", range);
        (Arc::clone(&tables), MemoryTable::new("t", tables))
    }

    fn key(c: &str, name: &str) -> Item {
        item(&[("CorrelationId", s(c)), ("CollectionName", s(name))])
    }

    #[tokio::test]
    async fn put_get_and_query_by_hash_key_in_range_order() {
        let (tables, port) = table(Some("CollectionName"));
        for (c, name) in [("c1", "b"), ("c2", "a"), ("c1", "a"), ("c1", "c")] {
            let mut whole = key(c, name);
            whole.insert("Status".to_owned(), s("Exported"));
            port.put(&whole).await.expect("put");
        }
        let got = port.get(&key("c1", "b"), false).await.expect("get");
        assert_eq!(
            got.and_then(|i| i.get("Status").cloned()),
            Some(s("Exported"))
        );
        assert_eq!(port.get(&key("c9", "b"), true).await.expect("get"), None);

        let names: Vec<AttributeValue> = port
            .query("CorrelationId", &s("c1"), true)
            .await
            .expect("query")
            .into_iter()
            .filter_map(|i| i.get("CollectionName").cloned())
            .collect();
        assert_eq!(names, [s("a"), s("b"), s("c")]);
        assert_eq!(tables.items("t").len(), 4);
        assert!(tables.items("absent").is_empty());
    }

    #[tokio::test]
    async fn a_put_replaces_the_whole_item() {
        let (tables, port) = table(None);
        let mut first = item(&[("CorrelationId", s("c1")), ("a", s("1"))]);
        port.put(&first).await.expect("put");
        first.remove("a");
        first.insert("b".to_owned(), s("2"));
        port.put(&first).await.expect("put");
        assert_eq!(tables.items("t"), [first]);
    }

    #[tokio::test]
    async fn keys_must_match_the_schema() {
        let (_, port) = table(Some("CollectionName"));
        let partial = item(&[("CorrelationId", s("c1"))]);
        assert_eq!(
            port.get(&partial, false)
                .await
                .expect_err("no range key")
                .kind,
            IoErrorKind::Rejected
        );
        let mut extra = key("c1", "a");
        extra.insert("Status".to_owned(), s("x"));
        assert_eq!(
            port.get(&extra, false).await.expect_err("not a key").kind,
            IoErrorKind::Rejected
        );
        assert_eq!(
            port.put(&partial).await.expect_err("no range key").kind,
            IoErrorKind::Rejected
        );
        assert_eq!(
            port.query("Status", &s("x"), false)
                .await
                .expect_err("not the hash key")
                .kind,
            IoErrorKind::Rejected
        );
    }

    #[tokio::test]
    async fn number_keys_order_by_value() {
        let tables = Arc::new(Tables::default());
        tables.create("n", "p", Some("r"));
        let port = MemoryTable::new("n", Arc::clone(&tables));
        for r in ["10", "9", "-2", "1.5", "0.25", "-10"] {
            port.put(&item(&[("p", s("x")), ("r", n(r))]))
                .await
                .expect("put");
        }
        port.put(&item(&[("p", s("x")), ("r", n("1.50"))]))
            .await
            .expect("the same key as 1.5");
        let order: Vec<AttributeValue> = tables
            .items("n")
            .into_iter()
            .filter_map(|i| i.get("r").cloned())
            .collect();
        assert_eq!(
            order,
            [n("-10"), n("-2"), n("0.25"), n("1.50"), n("9"), n("10")]
        );
        assert_eq!(
            port.put(&item(&[("p", s("x")), ("r", n("1e3"))]))
                .await
                .expect_err("not a plain decimal")
                .kind,
            IoErrorKind::Rejected
        );
    }

    #[tokio::test]
    async fn an_update_upserts_increments_and_honours_its_condition() {
        let (tables, port) = table(Some("CollectionName"));
        let k = key("c1", "a");
        let create = ItemUpdate {
            set: vec![("FilesReceived".to_owned(), n("0"))],
            ..ItemUpdate::default()
        };
        assert!(matches!(
            port.update(&k, &create).await.expect("upsert"),
            UpdateOutcome::Applied(_)
        ));
        let count = ItemUpdate {
            increment: vec![("FilesReceived".to_owned(), 1)],
            add_to_set: vec![("Seen".to_owned(), "f1".to_owned())],
            condition: Some(UpdateCondition::NotInSet {
                attribute: "Seen".to_owned(),
                value: "f1".to_owned(),
            }),
            ..ItemUpdate::default()
        };
        let UpdateOutcome::Applied(after) = port.update(&k, &count).await.expect("update") else {
            panic!("the file was not seen yet");
        };
        assert_eq!(after.get("FilesReceived"), Some(&n("1")));
        assert_eq!(
            after.get("Seen"),
            Some(&AttributeValue::Ss(BTreeSet::from(["f1".to_owned()])))
        );
        assert_eq!(
            port.update(&k, &count).await.expect("update"),
            UpdateOutcome::ConditionFailed
        );
        assert_eq!(tables.items("t")[0].get("FilesReceived"), Some(&n("1")));
    }

    #[tokio::test]
    async fn a_rejected_or_failed_update_changes_nothing() {
        let (tables, port) = table(Some("CollectionName"));
        let k = key("c1", "a");
        let missing_counter = ItemUpdate {
            set: vec![("Status".to_owned(), s("Sent"))],
            increment: vec![("FilesReceived".to_owned(), 1)],
            ..ItemUpdate::default()
        };
        let error = port
            .update(&k, &missing_counter)
            .await
            .expect_err("no counter");
        assert_eq!(error.kind, IoErrorKind::Rejected);
        assert!(error.message.starts_with("ValidationException"), "{error}");
        assert!(tables.items("t").is_empty(), "no half-applied upsert");

        let exists = ItemUpdate {
            set: vec![("Status".to_owned(), s("Sent"))],
            condition: Some(UpdateCondition::ItemExists),
            ..ItemUpdate::default()
        };
        assert_eq!(
            port.update(&k, &exists).await.expect("update"),
            UpdateOutcome::ConditionFailed
        );
        assert!(tables.items("t").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_are_not_lost() {
        let (tables, port) = table(None);
        let port = Arc::new(port);
        let k = item(&[("CorrelationId", s("c1"))]);
        port.put(&item(&[("CorrelationId", s("c1")), ("n", n("0"))]))
            .await
            .expect("put");
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let port = Arc::clone(&port);
                let k = k.clone();
                tokio::spawn(async move {
                    let bump = ItemUpdate {
                        increment: vec![("n".to_owned(), 1)],
                        ..ItemUpdate::default()
                    };
                    port.update(&k, &bump).await.expect("update");
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("joined");
        }
        assert_eq!(tables.items("t")[0].get("n"), Some(&n("50")));
    }

    #[tokio::test]
    async fn a_missing_table_is_not_found() {
        let port = MemoryTable::new("absent", Arc::new(Tables::default()));
        let k = item(&[("id", s("1"))]);
        assert_eq!(
            port.get(&k, false).await.expect_err("get").kind,
            IoErrorKind::NotFound
        );
        assert_eq!(
            port.query("id", &s("1"), false)
                .await
                .expect_err("query")
                .kind,
            IoErrorKind::NotFound
        );
        assert_eq!(
            port.update(&k, &ItemUpdate::default())
                .await
                .expect_err("update")
                .kind,
            IoErrorKind::NotFound
        );
        assert_eq!(
            port.put(&k).await.expect_err("put").kind,
            IoErrorKind::NotFound
        );
    }
}
