//! [`Table`] on Amazon DynamoDB: consistent or eventual gets, partition queries over every
//! page, whole-item puts, and an [`ItemUpdate`] as ONE conditional `UpdateItem` call — so a
//! status change, a counter increment and the "already counted" set stay atomic together.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue as SdkValue, ReturnValue};

use super::errors::io_error;
use crate::io::{
    AttributeValue, IoError, IoErrorKind, Item, ItemUpdate, Table, UpdateCondition, UpdateOutcome,
};

/// An SDK item: attribute values by name.
type SdkItem = HashMap<String, SdkValue>;

/// A DynamoDB table, named by its table name.
#[derive(Clone, Debug)]
pub struct DynamoTable {
    client: Client,
    name: String,
}

impl DynamoTable {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    fn rejected(&self, operation: &'static str, message: String) -> IoError {
        IoError::new(operation, &self.name, IoErrorKind::Rejected, message)
    }

    fn item_from_sdk(&self, operation: &'static str, item: &SdkItem) -> Result<Item, IoError> {
        item_from_sdk(item).map_err(|message| self.rejected(operation, message))
    }
}

#[async_trait]
impl Table for DynamoTable {
    fn name(&self) -> &str {
        &self.name
    }

    async fn get(&self, key: &Item, consistent: bool) -> Result<Option<Item>, IoError> {
        const OPERATION: &str = "GetItem";
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(item_to_sdk(key)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| io_error(OPERATION, &self.name, e))?;
        output
            .item()
            .map(|item| self.item_from_sdk(OPERATION, item))
            .transpose()
    }

    async fn query(
        &self,
        partition_attribute: &str,
        value: &AttributeValue,
        consistent: bool,
    ) -> Result<Vec<Item>, IoError> {
        const OPERATION: &str = "Query";
        let mut items = Vec::new();
        let mut start_key: Option<SdkItem> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", partition_attribute)
                .expression_attribute_values(":p", value_to_sdk(value))
                .consistent_read(consistent)
                .set_exclusive_start_key(start_key.take())
                .send()
                .await
                .map_err(|e| io_error(OPERATION, &self.name, e))?;
            for item in output.items() {
                items.push(self.item_from_sdk(OPERATION, item)?);
            }
            // Every page ends with the key to continue from; the last one has none.
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    async fn update(&self, key: &Item, update: &ItemUpdate) -> Result<UpdateOutcome, IoError> {
        const OPERATION: &str = "UpdateItem";
        let request =
            UpdateRequest::new(key, update).map_err(|message| self.rejected(OPERATION, message))?;
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(item_to_sdk(key)))
            .set_update_expression(request.update_expression)
            .set_condition_expression(request.condition_expression)
            .set_expression_attribute_names(non_empty(request.names))
            .set_expression_attribute_values(non_empty(request.values))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output
                    .attributes()
                    .map(|item| self.item_from_sdk(OPERATION, item))
                    .transpose()?
                    .unwrap_or_default();
                Ok(UpdateOutcome::Applied(item))
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(UpdateOutcome::ConditionFailed)
            }
            Err(error) => Err(io_error(OPERATION, &self.name, error)),
        }
    }

    async fn put(&self, item: &Item) -> Result<(), IoError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item_to_sdk(item)))
            .send()
            .await
            .map_err(|e| io_error("PutItem", &self.name, e))?;
        Ok(())
    }
}

/// DynamoDB rejects empty expression attribute maps, so an empty map is left out.
fn non_empty<V>(map: HashMap<String, V>) -> Option<HashMap<String, V>> {
    (!map.is_empty()).then_some(map)
}

/// The expressions and placeholders of one `UpdateItem` request.
#[derive(Debug, Default, PartialEq)]
struct UpdateRequest {
    update_expression: Option<String>,
    condition_expression: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, SdkValue>,
}

impl UpdateRequest {
    /// Translates an [`ItemUpdate`]: `SET #n0 = :v0, #n1 = #n1 + :v1 ADD #n2 :v2`, with
    /// `attribute_exists(#k0)` on the key's first attribute when the item must exist. Every
    /// attribute name goes through a placeholder, so reserved words (`status`, `name`) work.
    fn new(key: &Item, update: &ItemUpdate) -> Result<Self, String> {
        let mut request = Self::default();
        let mut names = BTreeMap::new();

        let condition_expression = match &update.condition {
            None => None,
            Some(condition) => {
                let key_attribute = key.keys().next().ok_or_else(|| {
                    "a conditional update needs the item's key, and the key is empty".to_owned()
                })?;
                names.insert(key_attribute.clone(), "#k0".to_owned());
                request.names.insert("#k0".into(), key_attribute.clone());
                let exists = "attribute_exists(#k0)".to_owned();
                Some(match condition {
                    UpdateCondition::ItemExists => exists,
                    UpdateCondition::NotInSet { attribute, value } => {
                        let set = request.name(&mut names, attribute);
                        let member = request.value(SdkValue::S(value.clone()));
                        format!("{exists} AND NOT contains({set}, {member})")
                    }
                })
            }
        };

        let mut set_clauses = Vec::new();
        for (attribute, value) in &update.set {
            let name = request.name(&mut names, attribute);
            let value = request.value(value_to_sdk(value));
            set_clauses.push(format!("{name} = {value}"));
        }
        for (attribute, by) in &update.increment {
            let name = request.name(&mut names, attribute);
            let by = request.value(SdkValue::N(by.to_string()));
            set_clauses.push(format!("{name} = {name} + {by}"));
        }
        // One ADD per set: two ADDs on the same attribute would overlap and be refused.
        let mut additions: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (attribute, member) in &update.add_to_set {
            additions
                .entry(attribute)
                .or_default()
                .insert(member.clone());
        }
        let mut add_clauses = Vec::new();
        for (attribute, members) in additions {
            let name = request.name(&mut names, attribute);
            let members = request.value(SdkValue::Ss(members.into_iter().collect()));
            add_clauses.push(format!("{name} {members}"));
        }

        let mut sections = Vec::new();
        if !set_clauses.is_empty() {
            sections.push(format!("SET {}", set_clauses.join(", ")));
        }
        if !add_clauses.is_empty() {
            sections.push(format!("ADD {}", add_clauses.join(", ")));
        }
        request.update_expression = (!sections.is_empty()).then(|| sections.join(" "));
        request.condition_expression = condition_expression;
        Ok(request)
    }

    /// The placeholder for an attribute name, the same one each time the name recurs.
    fn name(&mut self, assigned: &mut BTreeMap<String, String>, attribute: &str) -> String {
        if let Some(placeholder) = assigned.get(attribute) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", assigned.len());
        assigned.insert(attribute.to_owned(), placeholder.clone());
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    /// A fresh placeholder for a value.
    fn value(&mut self, value: SdkValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }
}

fn value_to_sdk(value: &AttributeValue) -> SdkValue {
    match value {
        AttributeValue::S(s) => SdkValue::S(s.clone()),
        AttributeValue::N(n) => SdkValue::N(n.clone()),
        AttributeValue::Bool(b) => SdkValue::Bool(*b),
        AttributeValue::Ss(set) => SdkValue::Ss(set.iter().cloned().collect()),
        AttributeValue::Null => SdkValue::Null(true),
    }
}

fn item_to_sdk(item: &Item) -> SdkItem {
    item.iter()
        .map(|(name, value)| (name.clone(), value_to_sdk(value)))
        .collect()
}

/// The port value of attribute `name`; a type the ports do not model is an error naming the
/// attribute, so a table written by something else fails loudly instead of losing data.
fn value_from_sdk(name: &str, value: &SdkValue) -> Result<AttributeValue, String> {
    Ok(match value {
        SdkValue::S(s) => AttributeValue::S(s.clone()),
        SdkValue::N(n) => AttributeValue::N(n.clone()),
        SdkValue::Bool(b) => AttributeValue::Bool(*b),
        SdkValue::Ss(set) => AttributeValue::Ss(set.iter().cloned().collect()),
        SdkValue::Null(_) => AttributeValue::Null,
        other => {
            let kind = match other {
                SdkValue::B(_) => "B",
                SdkValue::Bs(_) => "BS",
                SdkValue::L(_) => "L",
                SdkValue::M(_) => "M",
                SdkValue::Ns(_) => "NS",
                _ => "an unknown type",
            };
            return Err(format!(
                "attribute `{name}` is of type {kind}, which Wharf does not read (S, N, BOOL, SS \
                 and NULL are supported); store it as one of those"
            ));
        }
    })
}

fn item_from_sdk(item: &SdkItem) -> Result<Item, String> {
    item.iter()
        .map(|(name, value)| Ok((name.clone(), value_from_sdk(name, value)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Item {
        Item::from([
            ("pk".to_owned(), AttributeValue::S("file-1".into())),
            ("sk".to_owned(), AttributeValue::S("v1".into())),
        ])
    }

    fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn set_increment_and_add_become_one_expression() {
        let update = ItemUpdate {
            set: vec![("status".into(), AttributeValue::S("Sent".into()))],
            increment: vec![("count".into(), 2)],
            add_to_set: vec![("seen".into(), "m-2".into()), ("seen".into(), "m-1".into())],
            condition: None,
        };
        let request = UpdateRequest::new(&key(), &update).expect("valid update");
        assert_eq!(
            request.update_expression.as_deref(),
            Some("SET #n0 = :v0, #n1 = #n1 + :v1 ADD #n2 :v2")
        );
        assert_eq!(request.condition_expression, None);
        assert_eq!(
            request.names,
            names(&[("#n0", "status"), ("#n1", "count"), ("#n2", "seen")])
        );
        assert_eq!(
            request.values,
            HashMap::from([
                (":v0".to_owned(), SdkValue::S("Sent".into())),
                (":v1".to_owned(), SdkValue::N("2".into())),
                (
                    ":v2".to_owned(),
                    SdkValue::Ss(vec!["m-1".into(), "m-2".into()])
                ),
            ])
        );
    }

    #[test]
    fn item_exists_checks_the_first_key_attribute() {
        let update = ItemUpdate {
            set: vec![("status".into(), AttributeValue::S("Received".into()))],
            condition: Some(UpdateCondition::ItemExists),
            ..ItemUpdate::default()
        };
        let request = UpdateRequest::new(&key(), &update).expect("valid update");
        assert_eq!(
            request.condition_expression.as_deref(),
            Some("attribute_exists(#k0)")
        );
        assert_eq!(request.update_expression.as_deref(), Some("SET #n1 = :v0"));
        assert_eq!(request.names, names(&[("#k0", "pk"), ("#n1", "status")]));
    }

    #[test]
    fn not_in_set_also_requires_the_item() {
        let update = ItemUpdate {
            increment: vec![("received".into(), 1)],
            add_to_set: vec![("counted".into(), "m-7".into())],
            condition: Some(UpdateCondition::NotInSet {
                attribute: "counted".into(),
                value: "m-7".into(),
            }),
            ..ItemUpdate::default()
        };
        let request = UpdateRequest::new(&key(), &update).expect("valid update");
        assert_eq!(
            request.condition_expression.as_deref(),
            Some("attribute_exists(#k0) AND NOT contains(#n1, :v0)")
        );
        assert_eq!(
            request.update_expression.as_deref(),
            Some("SET #n2 = #n2 + :v1 ADD #n1 :v2")
        );
        assert_eq!(request.values[":v0"], SdkValue::S("m-7".into()));
        assert_eq!(request.values[":v2"], SdkValue::Ss(vec!["m-7".into()]));
    }

    #[test]
    fn a_conditional_update_without_a_key_is_refused() {
        let update = ItemUpdate {
            condition: Some(UpdateCondition::ItemExists),
            ..ItemUpdate::default()
        };
        let message = UpdateRequest::new(&Item::new(), &update).expect_err("no key");
        assert!(message.contains("key is empty"), "{message}");
    }

    #[test]
    fn an_empty_update_has_no_expressions() {
        let request = UpdateRequest::new(&key(), &ItemUpdate::default()).expect("valid update");
        assert_eq!(request, UpdateRequest::default());
    }

    #[test]
    fn supported_values_round_trip() {
        let item = Item::from([
            ("s".to_owned(), AttributeValue::S("text".into())),
            ("n".to_owned(), AttributeValue::N("-12.5".into())),
            ("b".to_owned(), AttributeValue::Bool(true)),
            (
                "ss".to_owned(),
                AttributeValue::Ss(BTreeSet::from(["a".to_owned(), "b".to_owned()])),
            ),
            ("null".to_owned(), AttributeValue::Null),
        ]);
        let sdk = item_to_sdk(&item);
        assert_eq!(sdk["null"], SdkValue::Null(true));
        assert_eq!(item_from_sdk(&sdk), Ok(item));
    }

    #[test]
    fn unsupported_types_name_the_attribute() {
        let sdk = SdkItem::from([
            ("ok".to_owned(), SdkValue::S("x".into())),
            (
                "details".to_owned(),
                SdkValue::M(HashMap::from([("a".to_owned(), SdkValue::S("b".into()))])),
            ),
        ]);
        let message = item_from_sdk(&sdk).expect_err("maps are not supported");
        assert!(message.contains("`details`"), "{message}");
        assert!(message.contains("type M"), "{message}");
    }
}
