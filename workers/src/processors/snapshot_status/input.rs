//! Reading snapshot-sender file notifications out of a payload: the direct message form or a
//! Lambda-style `Records` list whose bodies are objects or JSON strings, the four mandatory
//! fields and the original's defaults.

use serde_json::{Map, Value};

/// The fields every message must carry (present, not null, not empty).
pub const MANDATORY_FIELDS: [&str; 4] = [
    "correlation_id",
    "collection_name",
    "snapshot_type",
    "export_date",
];

/// `file_name` when a message names no file; the original logged this value.
pub const FILE_NAME_NOT_SET: &str = "NOT_SET";

/// One file notification from the snapshot sender.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotMessage {
    pub correlation_id: String,
    pub collection_name: String,
    pub snapshot_type: String,
    pub export_date: String,
    /// Passed through to the export-state notification unchanged (even `null`); `"true"` when
    /// the key is absent.
    pub shutdown_flag: Value,
    /// As `shutdown_flag`.
    pub reprocess_files: Value,
    /// The `_success` marker file of a collection rather than a data file.
    pub is_success_file: bool,
    /// `file_name` (what the original code reads) or `filename` (what its README documents);
    /// [`FILE_NAME_NOT_SET`] when neither is given.
    pub file_name: String,
    /// Where in the payload the message was (`payload`, `Records[2].body`).
    pub origin: String,
}

impl SnapshotMessage {
    /// Whether the message names the file it reports (so redeliveries can be recognised by it).
    pub fn names_a_file(&self) -> bool {
        !self.file_name.is_empty() && self.file_name != FILE_NAME_NOT_SET
    }
}

/// Why a payload holds no usable message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(
        "the payload is not JSON: {0}; send a JSON object with correlation_id, collection_name, snapshot_type and export_date"
    )]
    NotJson(String),
    #[error(
        "{origin} is not a JSON object; send an object with correlation_id, collection_name, snapshot_type and export_date"
    )]
    NotAnObject { origin: String },
    #[error("{origin} is a string that is not JSON: {reason}")]
    BodyNotJson { origin: String, reason: String },
    #[error("{origin}: mandatory field `{field}` is missing, null or empty")]
    MissingField { origin: String, field: &'static str },
    #[error("{origin}: field `{field}` must be a string, not {found}")]
    NotAString {
        origin: String,
        field: &'static str,
        found: &'static str,
    },
}

/// Every message in `payload`, validated. One invalid message fails the whole payload before
/// anything is written, so a payload is never half applied.
pub fn extract(payload: &str) -> Result<Vec<SnapshotMessage>, InputError> {
    let event: Value =
        serde_json::from_str(payload).map_err(|e| InputError::NotJson(e.to_string()))?;
    extract_messages(&event)?
        .into_iter()
        .map(|(origin, message)| parse_message(&message, origin))
        .collect()
}

/// The raw messages in an event, as the original extracted them: the `body` of every record
/// in a `Records` list (an object as it is, a string parsed as JSON; records without `body`
/// skipped), or the whole event when that yields nothing.
pub fn extract_messages(event: &Value) -> Result<Vec<(String, Value)>, InputError> {
    let mut messages = Vec::new();
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        for (index, record) in records.iter().enumerate() {
            let Some(body) = record.as_object().and_then(|r| r.get("body")) else {
                continue;
            };
            let origin = format!("Records[{index}].body");
            let message = match body {
                Value::String(text) => {
                    serde_json::from_str(text).map_err(|e| InputError::BodyNotJson {
                        origin: origin.clone(),
                        reason: e.to_string(),
                    })?
                }
                other => other.clone(),
            };
            messages.push((origin, message));
        }
    }
    if messages.is_empty() {
        messages.push(("payload".to_owned(), event.clone()));
    }
    Ok(messages)
}

/// The first mandatory field that is absent, `null` or `""`, as the original checked them
/// (any other value, a boolean included, counts as present).
pub fn missing_mandatory_field(message: &Map<String, Value>) -> Option<&'static str> {
    MANDATORY_FIELDS.into_iter().find(|field| {
        matches!(message.get(*field), None | Some(Value::Null))
            || message.get(*field) == Some(&Value::String(String::new()))
    })
}

/// Whether `is_success_file` selects the success path: a string equal to `true` in any case.
/// Absent, `null` or any other string is a data file.
pub fn is_success_file(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::String(s)) if s.eq_ignore_ascii_case("true"))
}

fn parse_message(message: &Value, origin: String) -> Result<SnapshotMessage, InputError> {
    let Some(fields) = message.as_object() else {
        return Err(InputError::NotAnObject { origin });
    };
    if let Some(field) = missing_mandatory_field(fields) {
        return Err(InputError::MissingField { origin, field });
    }
    let text = |field: &'static str| -> Result<String, InputError> {
        match fields.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            other => Err(InputError::NotAString {
                origin: origin.clone(),
                field,
                found: json_type(other),
            }),
        }
    };
    let defaulted = |field: &str| {
        fields
            .get(field)
            .cloned()
            .unwrap_or_else(|| Value::String("true".to_owned()))
    };
    let file_name = match fields.get("file_name").or_else(|| fields.get("filename")) {
        None | Some(Value::Null) => FILE_NAME_NOT_SET.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok(SnapshotMessage {
        correlation_id: text("correlation_id")?,
        collection_name: text("collection_name")?,
        snapshot_type: text("snapshot_type")?,
        export_date: text("export_date")?,
        shutdown_flag: defaulted("shutdown_flag"),
        reprocess_files: defaulted("reprocess_files"),
        is_success_file: success_flag(fields.get("is_success_file"), &origin)?,
        file_name,
        origin,
    })
}

/// `is_success_file` must be a string when given: the original failed on anything else (a
/// JSON `true` included), and guessing would count a success marker as a data file.
fn success_flag(value: Option<&Value>, origin: &str) -> Result<bool, InputError> {
    match value {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(is_success_file(value)),
        other => Err(InputError::NotAString {
            origin: origin.to_owned(),
            field: "is_success_file",
            found: json_type(other),
        }),
    }
}

fn json_type(value: Option<&Value>) -> &'static str {
    match value {
        None | Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message() -> Value {
        json!({
            "correlation_id": "correlation_id_1",
            "collection_name": "db.database.collection",
            "snapshot_type": "incremental",
            "export_date": "2020-01-01",
        })
    }

    fn with(field: &str, value: Value) -> String {
        let mut m = message();
        m[field] = value;
        m.to_string()
    }

    fn only(payload: &str) -> SnapshotMessage {
        let mut messages = extract(payload).expect("valid payload");
        assert_eq!(messages.len(), 1);
        messages.remove(0)
    }

    #[test]
    fn fixture_event_is_one_normal_message() {
        let m = only(include_str!(
            "../../../tests/fixtures/snapshot_status/event.json"
        ));
        assert_eq!(m.correlation_id, "test_1");
        assert_eq!(m.collection_name, "db.test.collection");
        assert_eq!(m.snapshot_type, "incremental");
        assert_eq!(m.export_date, "2020-01-22");
        assert_eq!(m.shutdown_flag, json!("true"));
        assert!(!m.is_success_file);
        assert_eq!(m.file_name, FILE_NAME_NOT_SET);
        assert_eq!(m.origin, "payload");
    }

    #[test]
    fn records_with_object_body_are_extracted() {
        let event = json!({"Records": [{"body": message()}]});
        assert_eq!(
            extract_messages(&event).unwrap(),
            vec![("Records[0].body".to_owned(), message())]
        );
    }

    #[test]
    fn multiple_records_with_object_bodies_are_all_extracted() {
        let event = json!({"Records": [{"body": message()}, {"body": {"a": 1}}]});
        let messages = extract_messages(&event).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1], ("Records[1].body".to_owned(), json!({"a": 1})));
    }

    #[test]
    fn escaped_json_body_is_parsed() {
        let event = json!({"Records": [{"body": message().to_string()}]});
        assert_eq!(extract_messages(&event).unwrap()[0].1, message());
    }

    #[test]
    fn multiple_escaped_json_bodies_are_parsed() {
        let body = message().to_string();
        let event = json!({"Records": [{"body": body}, {"body": body}]});
        let messages = extract_messages(&event).unwrap();
        assert_eq!(messages.len(), 2);
        assert!(messages.iter().all(|(_, m)| *m == message()));
    }

    #[test]
    fn records_that_is_not_a_list_means_the_whole_event() {
        let event = json!({"Records": {"body": message()}});
        assert_eq!(
            extract_messages(&event).unwrap(),
            vec![("payload".to_owned(), event)]
        );
    }

    #[test]
    fn no_records_means_the_whole_event() {
        let event = message();
        assert_eq!(extract_messages(&event).unwrap()[0].1, event);
    }

    #[test]
    fn empty_records_means_the_whole_event() {
        let event = json!({"Records": []});
        assert_eq!(extract_messages(&event).unwrap()[0].1, event);
    }

    #[test]
    fn records_without_body_mean_the_whole_event() {
        let event = json!({"Records": [{"messageId": "1"}]});
        assert_eq!(extract_messages(&event).unwrap()[0].1, event);
    }

    #[test]
    fn mandatory_fields_all_present() {
        assert_eq!(
            missing_mandatory_field(message().as_object().unwrap()),
            None
        );
    }

    #[test]
    fn mandatory_field_missing_is_named() {
        let mut m = message();
        m.as_object_mut().unwrap().remove("export_date");
        assert_eq!(
            missing_mandatory_field(m.as_object().unwrap()),
            Some("export_date")
        );
    }

    #[test]
    fn mandatory_field_null_is_missing() {
        let m: Value = serde_json::from_str(&with("export_date", Value::Null)).unwrap();
        assert_eq!(
            missing_mandatory_field(m.as_object().unwrap()),
            Some("export_date")
        );
    }

    #[test]
    fn mandatory_field_empty_is_missing() {
        let m: Value = serde_json::from_str(&with("export_date", json!(""))).unwrap();
        assert_eq!(
            missing_mandatory_field(m.as_object().unwrap()),
            Some("export_date")
        );
    }

    #[test]
    fn boolean_mandatory_value_counts_as_present() {
        let m: Value = serde_json::from_str(&with("export_date", json!(false))).unwrap();
        assert_eq!(missing_mandatory_field(m.as_object().unwrap()), None);
    }

    #[test]
    fn missing_mandatory_field_fails_naming_it() {
        let mut m = message();
        m.as_object_mut().unwrap().remove("snapshot_type");
        assert_eq!(
            extract(&m.to_string()),
            Err(InputError::MissingField {
                origin: "payload".to_owned(),
                field: "snapshot_type"
            })
        );
    }

    #[test]
    fn non_string_key_field_is_rejected_naming_it() {
        let error = extract(&with("correlation_id", json!(true))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "payload: field `correlation_id` must be a string, not a boolean"
        );
    }

    #[test]
    fn one_invalid_record_fails_the_payload() {
        let event = json!({"Records": [{"body": message()}, {"body": {"correlation_id": "x"}}]});
        let error = extract(&event.to_string()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("Records[1].body: mandatory field `collection_name`"),
            "{error}"
        );
    }

    #[test]
    fn body_string_that_is_not_json_is_rejected() {
        let event = json!({"Records": [{"body": "not json"}]});
        assert!(matches!(
            extract(&event.to_string()),
            Err(InputError::BodyNotJson { .. })
        ));
    }

    #[test]
    fn payload_that_is_not_json_is_rejected() {
        assert!(matches!(extract("{"), Err(InputError::NotJson(_))));
        assert!(matches!(
            extract("[1]"),
            Err(InputError::NotAnObject { .. })
        ));
    }

    #[test]
    fn shutdown_flag_and_reprocess_files_default_to_true() {
        let m = only(&message().to_string());
        assert_eq!(m.shutdown_flag, json!("true"));
        assert_eq!(m.reprocess_files, json!("true"));
    }

    #[test]
    fn present_flags_pass_through_unchanged_even_null() {
        let mut event = message();
        event["shutdown_flag"] = Value::Null;
        event["reprocess_files"] = json!("false");
        let m = only(&event.to_string());
        assert_eq!(m.shutdown_flag, Value::Null);
        assert_eq!(m.reprocess_files, json!("false"));
    }

    #[test]
    fn success_file_field_not_present_null_empty_or_not_true_is_normal() {
        assert!(!only(&message().to_string()).is_success_file);
        for value in [Value::Null, json!(""), json!("false"), json!("yes")] {
            assert!(
                !only(&with("is_success_file", value.clone())).is_success_file,
                "{value}"
            );
        }
    }

    #[test]
    fn success_file_field_true_in_any_case_selects_success_path() {
        assert!(only(&with("is_success_file", json!("true"))).is_success_file);
        assert!(only(&with("is_success_file", json!("TRUE"))).is_success_file);
        assert!(only(&with("is_success_file", json!("True"))).is_success_file);
    }

    #[test]
    fn boolean_success_flag_is_rejected_naming_the_field() {
        let error = extract(&with("is_success_file", json!(true))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "payload: field `is_success_file` must be a string, not a boolean"
        );
    }

    #[test]
    fn file_name_and_filename_are_both_accepted() {
        let m = only(&with("file_name", json!("a/db.x.gz.enc")));
        assert_eq!(m.file_name, "a/db.x.gz.enc");
        assert!(m.names_a_file());
        let m = only(&with("filename", json!("b/db.y.gz.enc")));
        assert_eq!(m.file_name, "b/db.y.gz.enc");
        let m = only(&message().to_string());
        assert_eq!(m.file_name, FILE_NAME_NOT_SET);
        assert!(!m.names_a_file());
    }
}
