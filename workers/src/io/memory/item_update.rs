//! Applying an [`ItemUpdate`] to an item the way DynamoDB's UpdateItem does: the condition is
//! checked first and nothing changes unless it holds; then every `set`, every `increment` (the
//! attribute must exist and be a number) and every `add_to_set` (string sets). A request DynamoDB
//! would refuse with a ValidationException (a key attribute updated, one attribute named twice,
//! a missing or non-numeric increment) is an error here too, so code proven on the embedded
//! backend does not fail on AWS.

use std::collections::{BTreeSet, HashSet};

use crate::io::{AttributeValue, Item, ItemUpdate, UpdateCondition};

/// What applying an update produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Applied {
    /// The item as it is after the update (DynamoDB's ALL_NEW).
    Updated(Item),
    ConditionFailed,
}

/// Applies `update` to `current` (the stored item, if any) whose key is `key`; `key_names` are
/// the table's key attributes, which an update may not change. The error is a
/// ValidationException's message.
pub(super) fn apply(
    current: Option<&Item>,
    key: &Item,
    key_names: &[&str],
    update: &ItemUpdate,
) -> Result<Applied, String> {
    validate(key_names, update)?;
    if let Some(condition) = &update.condition
        && !holds(condition, current)
    {
        return Ok(Applied::ConditionFailed);
    }
    // Without a condition a missing item is created from its key (DynamoDB's upsert).
    let mut item = current.cloned().unwrap_or_else(|| key.clone());
    for (name, value) in &update.set {
        item.insert(name.clone(), value.clone());
    }
    for (name, delta) in &update.increment {
        let sum = match item.get(name) {
            None => {
                return Err(format!(
                    "the increment of `{name}` refers to an attribute that does not exist in \
                     the item; set it first (DynamoDB: `SET {name} = {name} + :n` needs `{name}`)"
                ));
            }
            Some(AttributeValue::N(number)) => number
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_add(*delta))
                .ok_or_else(|| {
                    format!("`{name}` = {number} cannot be incremented by {delta} as an integer")
                })?,
            Some(other) => {
                return Err(format!(
                    "`{name}` is {other:?}, not a number, so it cannot be incremented"
                ));
            }
        };
        item.insert(name.clone(), AttributeValue::N(sum.to_string()));
    }
    for (name, value) in &update.add_to_set {
        match item
            .entry(name.clone())
            .or_insert_with(|| AttributeValue::Ss(BTreeSet::new()))
        {
            AttributeValue::Ss(set) => {
                set.insert(value.clone());
            }
            other => {
                return Err(format!(
                    "`{name}` is {other:?}, not a string set, so `{value}` cannot be added to it"
                ));
            }
        }
    }
    Ok(Applied::Updated(item))
}

/// Refuses what DynamoDB refuses before looking at the item.
fn validate(key_names: &[&str], update: &ItemUpdate) -> Result<(), String> {
    let mut named = HashSet::new();
    let names = update
        .set
        .iter()
        .map(|(name, _)| name)
        .chain(update.increment.iter().map(|(name, _)| name))
        .chain(update.add_to_set.iter().map(|(name, _)| name));
    for name in names {
        if key_names.contains(&name.as_str()) {
            return Err(format!(
                "`{name}` is part of the key and cannot be updated; write a new item instead"
            ));
        }
        if !named.insert(name.as_str()) {
            return Err(format!(
                "`{name}` is named twice in one update (DynamoDB: two document paths overlap); \
                 combine the changes"
            ));
        }
    }
    for (name, value) in &update.set {
        if matches!(value, AttributeValue::Ss(set) if set.is_empty()) {
            return Err(format!(
                "`{name}` would be set to an empty string set, which DynamoDB does not store"
            ));
        }
    }
    Ok(())
}

/// Whether `condition` holds for the stored item.
fn holds(condition: &UpdateCondition, current: Option<&Item>) -> bool {
    let Some(item) = current else {
        return false;
    };
    match condition {
        UpdateCondition::ItemExists => true,
        // DynamoDB's `NOT contains(attribute, :value)`: a set's element or a string's substring.
        UpdateCondition::NotInSet { attribute, value } => match item.get(attribute) {
            Some(AttributeValue::Ss(set)) => !set.contains(value),
            Some(AttributeValue::S(text)) => !text.contains(value.as_str()),
            _ => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["id"];

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn key() -> Item {
        item(&[("id", s("1"))])
    }

    fn updated(result: Result<Applied, String>) -> Item {
        match result.expect("valid update") {
            Applied::Updated(item) => item,
            Applied::ConditionFailed => panic!("the condition held"),
        }
    }

    #[test]
    fn set_then_increment_then_add_to_set_in_one_update() {
        let current = item(&[("id", s("1")), ("count", n(4))]);
        let update = ItemUpdate {
            set: vec![("status".to_owned(), s("Sent"))],
            increment: vec![("count".to_owned(), 3)],
            add_to_set: vec![("files".to_owned(), "a.csv".to_owned())],
            condition: None,
        };
        let after = updated(apply(Some(&current), &key(), KEYS, &update));
        assert_eq!(after.get("status"), Some(&s("Sent")));
        assert_eq!(after.get("count"), Some(&n(7)));
        assert_eq!(
            after.get("files"),
            Some(&AttributeValue::Ss(BTreeSet::from(["a.csv".to_owned()])))
        );
        assert_eq!(after.get("id"), Some(&s("1")));
    }

    #[test]
    fn without_a_condition_a_missing_item_is_created_from_its_key() {
        let update = ItemUpdate {
            set: vec![("status".to_owned(), s("Exported"))],
            ..ItemUpdate::default()
        };
        let created = updated(apply(None, &key(), KEYS, &update));
        assert_eq!(created, item(&[("id", s("1")), ("status", s("Exported"))]));
    }

    #[test]
    fn incrementing_a_missing_or_non_numeric_attribute_is_an_error() {
        let update = ItemUpdate {
            increment: vec![("count".to_owned(), 1)],
            ..ItemUpdate::default()
        };
        let missing = apply(Some(&key()), &key(), KEYS, &update).expect_err("missing");
        assert!(missing.contains("does not exist"), "{missing}");
        apply(None, &key(), KEYS, &update).expect_err("no item, so no attribute");
        let text = item(&[("id", s("1")), ("count", s("x"))]);
        apply(Some(&text), &key(), KEYS, &update).expect_err("not a number");
        let huge = item(&[("id", s("1")), ("count", n(i64::MAX))]);
        apply(Some(&huge), &key(), KEYS, &update).expect_err("overflow");
    }

    #[test]
    fn item_exists_fails_on_a_missing_item_and_changes_nothing() {
        let update = ItemUpdate {
            set: vec![("status".to_owned(), s("Sent"))],
            condition: Some(UpdateCondition::ItemExists),
            ..ItemUpdate::default()
        };
        assert_eq!(
            apply(None, &key(), KEYS, &update),
            Ok(Applied::ConditionFailed)
        );
        let after = updated(apply(Some(&key()), &key(), KEYS, &update));
        assert_eq!(after.get("status"), Some(&s("Sent")));
    }

    #[test]
    fn not_in_set_makes_a_repeated_increment_a_no_op() {
        let update = ItemUpdate {
            increment: vec![("received".to_owned(), 1)],
            add_to_set: vec![("seen".to_owned(), "m1".to_owned())],
            condition: Some(UpdateCondition::NotInSet {
                attribute: "seen".to_owned(),
                value: "m1".to_owned(),
            }),
            ..ItemUpdate::default()
        };
        let current = item(&[("id", s("1")), ("received", n(0))]);
        let once = updated(apply(Some(&current), &key(), KEYS, &update));
        assert_eq!(once.get("received"), Some(&n(1)));
        assert_eq!(
            apply(Some(&once), &key(), KEYS, &update),
            Ok(Applied::ConditionFailed),
            "the same message again counts nothing"
        );
        assert_eq!(
            apply(None, &key(), KEYS, &update),
            Ok(Applied::ConditionFailed),
            "NotInSet needs the item to exist"
        );
    }

    #[test]
    fn updating_a_key_or_naming_an_attribute_twice_is_an_error() {
        let key_update = ItemUpdate {
            set: vec![("id".to_owned(), s("2"))],
            ..ItemUpdate::default()
        };
        apply(Some(&key()), &key(), KEYS, &key_update).expect_err("key attribute");
        let twice = ItemUpdate {
            set: vec![("count".to_owned(), n(1))],
            increment: vec![("count".to_owned(), 1)],
            ..ItemUpdate::default()
        };
        apply(Some(&key()), &key(), KEYS, &twice).expect_err("overlapping paths");
        let empty_set = ItemUpdate {
            set: vec![("tags".to_owned(), AttributeValue::Ss(BTreeSet::new()))],
            ..ItemUpdate::default()
        };
        apply(Some(&key()), &key(), KEYS, &empty_set).expect_err("empty set");
    }

    #[test]
    fn adding_to_a_non_set_is_an_error() {
        let current = item(&[("id", s("1")), ("tags", s("plain"))]);
        let update = ItemUpdate {
            add_to_set: vec![("tags".to_owned(), "x".to_owned())],
            ..ItemUpdate::default()
        };
        apply(Some(&current), &key(), KEYS, &update).expect_err("not a set");
    }
}
