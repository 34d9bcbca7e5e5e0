//! The shapes an infrastructure event arrives in, cut down to the records the classifier and
//! the field reader work on. Two layers:
//!
//! - transport ([`messages`]): the SNS-wrapped Lambda event the original service received
//!   (`{"Records":[{"Sns":{"Message":"<text>"}}]}`, every record, not only the first), the SNS
//!   notification JSON a queue gets when raw delivery is off (`{"Type":"Notification",
//!   "Message":"<text>"}`), or the message text itself (raw delivery, a plain body, or a body
//!   the envelope already unwrapped);
//! - message ([`records`]): `{"Records":[{"s3":{...}} | {"ecsevent":{...}}, ...]}`, or one such
//!   record on its own (what an envelope that splits `Records` hands over).

use serde_json::{Map, Value};

/// One SNS message text, and where in the payload it was found (empty: the payload itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceMessage {
    pub origin: String,
    pub text: String,
}

/// One event record of a message, as JSON and as text (the classifier reads the text).
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    /// Where in the message the record is (`Records[2]`; empty: the message is the record).
    pub origin: String,
    pub text: String,
    pub value: Map<String, Value>,
}

/// A payload or message that does not have any of the shapes above.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error(
        "{location}: key \"{key}\" not found; SNS carries the event text in `Sns.Message` (Lambda) or `Message` (notification JSON)"
    )]
    MissingKey { location: String, key: &'static str },
    #[error("{location}: must be {expected}")]
    WrongType {
        location: String,
        expected: &'static str,
    },
    #[error(
        "{location}: not JSON ({reason}); an infrastructure event is {{\"Records\":[{{\"s3\":..}} or {{\"ecsevent\":..}}]}}"
    )]
    NotJson { location: String, reason: String },
    #[error(
        "{location}: key \"Records\" not found; an infrastructure event is {{\"Records\":[{{\"s3\":..}} or {{\"ecsevent\":..}}]}}"
    )]
    NoRecords { location: String },
}

/// Joins the non-empty parts of a location (`Records[1].Sns.Message > Records[0].s3`).
pub fn location(parts: &[&str]) -> String {
    let parts: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        "payload".to_owned()
    } else {
        parts.join(" > ")
    }
}

/// The SNS message texts a payload body carries, in order.
pub fn messages(body: &str) -> Result<Vec<SourceMessage>, ShapeError> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body) else {
        // Not a JSON object: the body is the message text; `records` judges it.
        return Ok(vec![plain(body)]);
    };
    if let Some(records) = lambda_sns_records(&object) {
        return records
            .iter()
            .enumerate()
            .map(|(i, record)| sns_record_message(i, record))
            .collect();
    }
    if object.get("Type").and_then(Value::as_str) == Some("Notification") {
        return match object.get("Message") {
            Some(Value::String(text)) => Ok(vec![SourceMessage {
                origin: "Message".to_owned(),
                text: text.clone(),
            }]),
            Some(_) => Err(ShapeError::WrongType {
                location: "Message".to_owned(),
                expected: "a string",
            }),
            None => Err(ShapeError::MissingKey {
                location: "payload".to_owned(),
                key: "Message",
            }),
        };
    }
    Ok(vec![plain(body)])
}

fn plain(body: &str) -> SourceMessage {
    SourceMessage {
        origin: String::new(),
        text: body.to_owned(),
    }
}

/// `Records` of a Lambda SNS event: an array whose first record has `Sns`.
fn lambda_sns_records(object: &Map<String, Value>) -> Option<&Vec<Value>> {
    let records = object.get("Records")?.as_array()?;
    records.first()?.as_object()?.get("Sns").map(|_| records)
}

fn sns_record_message(index: usize, record: &Value) -> Result<SourceMessage, ShapeError> {
    let here = format!("Records[{index}]");
    let sns = record
        .as_object()
        .ok_or_else(|| ShapeError::WrongType {
            location: here.clone(),
            expected: "an object",
        })?
        .get("Sns")
        .ok_or_else(|| ShapeError::MissingKey {
            location: here.clone(),
            key: "Sns",
        })?
        .as_object()
        .ok_or_else(|| ShapeError::WrongType {
            location: format!("{here}.Sns"),
            expected: "an object",
        })?;
    match sns.get("Message") {
        Some(Value::String(text)) => Ok(SourceMessage {
            origin: format!("{here}.Sns.Message"),
            text: text.clone(),
        }),
        Some(_) => Err(ShapeError::WrongType {
            location: format!("{here}.Sns.Message"),
            expected: "a string",
        }),
        None => Err(ShapeError::MissingKey {
            location: format!("{here}.Sns"),
            key: "Message",
        }),
    }
}

/// The event records of one message, in order. An empty list means the message has
/// `Records` but none in it.
pub fn records(message: &SourceMessage) -> Result<Vec<EventRecord>, ShapeError> {
    let here = location(&[&message.origin]);
    let value: Value =
        serde_json::from_str(&message.text).map_err(|error| ShapeError::NotJson {
            location: here.clone(),
            reason: error.to_string(),
        })?;
    let Value::Object(object) = value else {
        return Err(ShapeError::NoRecords { location: here });
    };
    match object.get("Records") {
        Some(Value::Array(records)) => records
            .iter()
            .enumerate()
            .map(|(i, record)| event_record(format!("Records[{i}]"), &message.origin, record))
            .collect(),
        Some(_) => Err(ShapeError::WrongType {
            location: location(&[&message.origin, "Records"]),
            expected: "an array",
        }),
        None if object.contains_key("s3") || object.contains_key("ecsevent") => {
            Ok(vec![EventRecord {
                origin: String::new(),
                text: message.text.clone(),
                value: object,
            }])
        }
        None => Err(ShapeError::NoRecords { location: here }),
    }
}

fn event_record(
    origin: String,
    message_origin: &str,
    record: &Value,
) -> Result<EventRecord, ShapeError> {
    match record {
        Value::Object(object) => Ok(EventRecord {
            // Serialising keeps every marker the original's substring tests look for: they
            // are plain words inside keys and (escaped) strings.
            text: record.to_string(),
            value: object.clone(),
            origin,
        }),
        _ => Err(ShapeError::WrongType {
            location: location(&[message_origin, &origin]),
            expected: "an object",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const INNER: &str = r#"{"Records":[{"s3":{"s3event":{"participantId":"p"}}}]}"#;

    #[test]
    fn lambda_sns_event_yields_every_record_message_in_order() {
        let body = json!({"Records": [
            {"EventSource": "aws:sns", "Sns": {"Message": "first"}},
            {"EventSource": "aws:sns", "Sns": {"Message": "second"}},
        ]})
        .to_string();
        let messages = messages(&body).unwrap();
        assert_eq!(
            messages,
            vec![
                SourceMessage {
                    origin: "Records[0].Sns.Message".into(),
                    text: "first".into()
                },
                SourceMessage {
                    origin: "Records[1].Sns.Message".into(),
                    text: "second".into()
                },
            ]
        );
    }

    #[test]
    fn lambda_sns_record_without_message_names_the_missing_key() {
        let body = json!({"Records": [{"Sns": {"Message": "ok"}}, {"Sns": {}}]}).to_string();
        assert_eq!(
            messages(&body),
            Err(ShapeError::MissingKey {
                location: "Records[1].Sns".into(),
                key: "Message"
            })
        );
    }

    #[test]
    fn lambda_sns_record_with_a_non_string_message_is_refused() {
        let body = json!({"Records": [{"Sns": {"Message": {"Records": []}}}]}).to_string();
        assert!(matches!(
            messages(&body),
            Err(ShapeError::WrongType { location, .. }) if location == "Records[0].Sns.Message"
        ));
    }

    #[test]
    fn sns_notification_json_yields_its_message() {
        let body = json!({"Type": "Notification", "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:eu-west-2:123456789012:infra", "Message": INNER})
        .to_string();
        assert_eq!(
            messages(&body).unwrap(),
            vec![SourceMessage {
                origin: "Message".into(),
                text: INNER.into()
            }]
        );
    }

    #[test]
    fn raw_message_is_its_own_message() {
        assert_eq!(messages(INNER).unwrap(), vec![plain(INNER)]);
    }

    #[test]
    fn non_json_body_is_passed_on_as_the_message_text() {
        assert_eq!(messages("junk").unwrap(), vec![plain("junk")]);
    }

    #[test]
    fn message_records_keep_their_text_and_position() {
        let text = r#"{"Records":[{"s3":{"a":"aws:s3"}},{"ecsevent":{"b":1}}]}"#;
        let records = records(&plain(text)).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].origin, "Records[0]");
        assert!(records[0].text.contains("aws:s3"));
        assert_eq!(records[1].origin, "Records[1]");
        assert!(records[1].value.contains_key("ecsevent"));
    }

    #[test]
    fn a_bare_record_is_a_message_of_one_record() {
        let text = r#"{"ecsevent":{"participantId":"p"}}"#;
        let records = records(&plain(text)).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].origin, "");
        assert_eq!(records[0].text, text);
    }

    #[test]
    fn empty_records_yield_no_records() {
        assert_eq!(records(&plain(r#"{"Records":[]}"#)).unwrap(), vec![]);
    }

    #[test]
    fn message_without_records_is_refused() {
        assert_eq!(
            records(&plain(r#"{"other":1}"#)),
            Err(ShapeError::NoRecords {
                location: "payload".into()
            })
        );
    }

    #[test]
    fn message_that_is_not_json_is_refused_with_its_origin() {
        let message = SourceMessage {
            origin: "Records[0].Sns.Message".into(),
            text: "aws:s3 but not json".into(),
        };
        assert!(matches!(
            records(&message),
            Err(ShapeError::NotJson { location, .. }) if location == "Records[0].Sns.Message"
        ));
    }

    #[test]
    fn a_record_that_is_not_an_object_is_refused() {
        assert!(matches!(
            records(&plain(r#"{"Records":["aws:s3"]}"#)),
            Err(ShapeError::WrongType { location, .. }) if location == "Records[0]"
        ));
    }
}
