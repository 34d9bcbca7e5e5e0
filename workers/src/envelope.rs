//! Unwrapping message bodies: SNS notifications, S3 event notifications, Lambda-style
//! `Records`, the ReceiveMessage `Messages` shape, and base64 — detected automatically or as
//! the Pipeline's `source.sqs.envelope` says.
//!
//! Exactly one transport layer is removed (plus a base64 encoding of what it carried): what a
//! processor receives may itself contain `Records` (the infrastructure events do), and those
//! belong to the processor.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use wharf_crds::pipeline::Envelope;

/// One unit of work for a processor, cut out of a message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub body: String,
    /// Where in the message it came from, for errors and logs (`body`, `Records[1].Sns.Message`).
    pub origin: String,
}

impl Payload {
    fn new(body: impl Into<String>, origin: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            origin: origin.into(),
        }
    }
}

/// A body that does not have the shape the envelope setting promises.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("envelope {expected}: {reason}")]
pub struct EnvelopeError {
    /// The envelope setting, e.g. `sns`.
    pub expected: &'static str,
    pub reason: String,
}

impl EnvelopeError {
    fn new(expected: &'static str, reason: impl Into<String>) -> Self {
        Self {
            expected,
            reason: reason.into(),
        }
    }
}

/// Unwraps `body` into the payloads it carries (zero or more: an S3 test event carries none).
pub fn unwrap(body: &str, envelope: Envelope) -> Result<Vec<Payload>, EnvelopeError> {
    match envelope {
        Envelope::Raw => Ok(vec![Payload::new(body, "body")]),
        Envelope::Auto => Ok(unwrap_auto(body)),
        Envelope::Sns => unwrap_sns(body),
        Envelope::S3 => unwrap_s3(body),
        Envelope::Lambda => unwrap_lambda(body),
    }
}

/// Auto-detection never fails: a body that matches no known wrapper is the payload itself.
fn unwrap_auto(body: &str) -> Vec<Payload> {
    let Some(object) = parse_object(body) else {
        return vec![match decode_base64_json(body) {
            Some(decoded) => Payload::new(decoded, "body (base64)"),
            None => Payload::new(body, "body"),
        }];
    };
    if let Some(message) = sns_notification_message(&object) {
        return vec![inner_payload(message, "Message")];
    }
    if let Some(payloads) = batch_bodies(&object) {
        return payloads;
    }
    vec![Payload::new(body, "body")]
}

fn unwrap_sns(body: &str) -> Result<Vec<Payload>, EnvelopeError> {
    let object = parse_object(body)
        .ok_or_else(|| EnvelopeError::new("sns", "the body is not a JSON object"))?;
    if let Some(message) = sns_notification_message(&object) {
        return Ok(vec![inner_payload(message, "Message")]);
    }
    if let Some(records) = records(&object)
        && let Some(messages) = records
            .iter()
            .map(|r| r.pointer("/Sns/Message").and_then(Value::as_str))
            .collect::<Option<Vec<_>>>()
    {
        return Ok(messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| inner_payload(m, &format!("Records[{i}].Sns.Message")))
            .collect());
    }
    Err(EnvelopeError::new(
        "sns",
        "the body is not an SNS notification (no \"Type\": \"Notification\" with a \"Message\", \
         nor Records[].Sns.Message); if the subscription delivers raw messages, set \
         spec.source.sqs.envelope to raw or auto",
    ))
}

fn unwrap_s3(body: &str) -> Result<Vec<Payload>, EnvelopeError> {
    let object = parse_object(body)
        .ok_or_else(|| EnvelopeError::new("s3", "the body is not a JSON object"))?;
    // S3 notifications often reach a queue through an SNS topic.
    let (object, prefix) = match sns_notification_message(&object) {
        Some(message) => (
            parse_object(message).ok_or_else(|| {
                EnvelopeError::new("s3", "the SNS Message is not an S3 event notification")
            })?,
            "Message.",
        ),
        None => (object, ""),
    };
    // The test event S3 sends when a notification is configured carries no object.
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let records = records(&object).ok_or_else(|| {
        EnvelopeError::new("s3", "the body has no Records list of S3 event records")
    })?;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            if record.get("s3").is_some_and(Value::is_object) {
                Ok(Payload::new(
                    record.to_string(),
                    format!("{prefix}Records[{i}]"),
                ))
            } else {
                Err(EnvelopeError::new(
                    "s3",
                    format!("{prefix}Records[{i}] has no s3 object: not an S3 event record"),
                ))
            }
        })
        .collect()
}

fn unwrap_lambda(body: &str) -> Result<Vec<Payload>, EnvelopeError> {
    let object = parse_object(body)
        .ok_or_else(|| EnvelopeError::new("lambda", "the body is not a JSON object"))?;
    let records = records(&object)
        .ok_or_else(|| EnvelopeError::new("lambda", "the body has no Records list"))?;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            if let Some(body) = record.get("body").and_then(Value::as_str) {
                Ok(inner_payload(body, &format!("Records[{i}].body")))
            } else if let Some(message) = record.pointer("/Sns/Message").and_then(Value::as_str) {
                Ok(inner_payload(message, &format!("Records[{i}].Sns.Message")))
            } else {
                Err(EnvelopeError::new(
                    "lambda",
                    format!("Records[{i}] has neither a body nor Sns.Message"),
                ))
            }
        })
        .collect()
}

/// `Records[].body` (Lambda SQS event), `Records[].Sns.Message` (Lambda SNS event) or
/// `Messages[].Body` (a ReceiveMessage response), when every entry has that field.
fn batch_bodies(object: &Map<String, Value>) -> Option<Vec<Payload>> {
    let (entries, name, field) = match (records(object), object.get("Messages")) {
        (Some(records), _) => (records, "Records", None),
        (None, Some(Value::Array(messages))) if !messages.is_empty() => {
            (messages, "Messages", Some("/Body"))
        }
        _ => return None,
    };
    let pointers: &[&str] = match field {
        Some(pointer) => &[pointer][..],
        None => &["/body", "/Sns/Message"],
    };
    pointers.iter().find_map(|pointer| {
        let texts = entries
            .iter()
            .map(|entry| entry.pointer(pointer).and_then(Value::as_str))
            .collect::<Option<Vec<_>>>()?;
        let path = pointer.trim_start_matches('/').replace('/', ".");
        Some(
            texts
                .into_iter()
                .enumerate()
                .map(|(i, text)| inner_payload(text, &format!("{name}[{i}].{path}")))
                .collect(),
        )
    })
}

/// The `Message` of an SNS notification as SNS delivers it to a queue (not raw).
fn sns_notification_message(object: &Map<String, Value>) -> Option<&str> {
    if object.get("Type").and_then(Value::as_str) != Some("Notification") {
        return None;
    }
    object.get("Message").and_then(Value::as_str)
}

/// A non-empty `Records` list of objects.
fn records(object: &Map<String, Value>) -> Option<&Vec<Value>> {
    match object.get("Records") {
        Some(Value::Array(records))
            if !records.is_empty() && records.iter().all(Value::is_object) =>
        {
            Some(records)
        }
        _ => None,
    }
}

/// What a wrapper carried, base64-decoded when it is base64 text that is not JSON itself.
fn inner_payload(text: &str, origin: &str) -> Payload {
    if !is_json(text)
        && let Some(decoded) = decode_base64_json(text)
    {
        return Payload::new(decoded, format!("{origin} (base64)"));
    }
    Payload::new(text, origin)
}

/// Whether `text` is one JSON document (object or array). Every message passes through here,
/// so the document is only scanned, never built.
fn is_json(text: &str) -> bool {
    let trimmed = text.trim_start();
    (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// The top-level fields that mark a transport wrapper. Deserialising only these skips the rest
/// of a body (usually the payload itself, which its processor parses) without building it.
#[derive(Deserialize)]
struct WrapperFields {
    #[serde(rename = "Type")]
    kind: Option<Value>,
    #[serde(rename = "Message")]
    message: Option<Value>,
    #[serde(rename = "Records")]
    records: Option<Value>,
    #[serde(rename = "Messages")]
    messages: Option<Value>,
    #[serde(rename = "Event")]
    event: Option<Value>,
}

/// The wrapper fields of a JSON object, by name; `None` when `text` is not a JSON object.
fn parse_object(text: &str) -> Option<Map<String, Value>> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let fields: WrapperFields = serde_json::from_str(text).ok()?;
    Some(
        [
            ("Type", fields.kind),
            ("Message", fields.message),
            ("Records", fields.records),
            ("Messages", fields.messages),
            ("Event", fields.event),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?)))
        .collect(),
    )
}

/// Decodes base64 the way producers write it: the standard alphabet (the URL-safe one is
/// accepted too), padding optional, whitespace and line breaks ignored.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

    let compact: Cow<'_, str> = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(text.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(text)
    };
    STANDARD
        .decode(compact.as_bytes())
        .or_else(|error| URL_SAFE.decode(compact.as_bytes()).map_err(|_| error))
}

/// Base64 of a JSON document, decoded; `None` for anything else, so plain text that happens
/// to be valid base64 (`test`) is never mangled.
pub fn decode_base64_json(text: &str) -> Option<String> {
    if text.trim().len() < 4 {
        return None;
    }
    let decoded = String::from_utf8(decode_base64(text).ok()?).ok()?;
    is_json(&decoded).then_some(decoded)
}

/// Encodes `text` the way the original producers did (standard alphabet, padded); for tests
/// and sample data.
pub fn encode_base64(text: &str) -> String {
    general_purpose::STANDARD.encode(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bodies(payloads: &[Payload]) -> Vec<&str> {
        payloads.iter().map(|p| p.body.as_str()).collect()
    }

    #[test]
    fn raw_hands_the_body_over_untouched() {
        let body = encode_base64("{\"a\": 1}");
        let payloads = unwrap(&body, Envelope::Raw).unwrap();
        assert_eq!(bodies(&payloads), [body.as_str()]);
    }

    #[test]
    fn auto_keeps_a_plain_json_body() {
        let payloads = unwrap("{\"submission_id\": \"x\"}", Envelope::Auto).unwrap();
        assert_eq!(
            payloads,
            [Payload::new("{\"submission_id\": \"x\"}", "body")]
        );
    }

    #[test]
    fn auto_decodes_a_base64_body_with_line_breaks_and_missing_padding() {
        let encoded = encode_base64("{\"submission_id\": \"abc\"}");
        let wrapped = format!(
            "{}\n{}",
            &encoded[..10],
            encoded[10..].trim_end_matches('=')
        );
        let payloads = unwrap(&wrapped, Envelope::Auto).unwrap();
        assert_eq!(payloads[0].body, "{\"submission_id\": \"abc\"}");
        assert_eq!(payloads[0].origin, "body (base64)");
    }

    #[test]
    fn auto_leaves_plain_words_alone() {
        for text in ["test", "hello world", "permanent p2", "ok a 1"] {
            let payloads = unwrap(text, Envelope::Auto).unwrap();
            assert_eq!(bodies(&payloads), [text], "{text}");
            assert_eq!(payloads[0].origin, "body");
        }
    }

    #[test]
    fn auto_unwraps_an_sns_notification_delivered_to_a_queue() {
        let body =
            json!({"Type": "Notification", "MessageId": "m", "Message": "{\"Records\": []}"})
                .to_string();
        let payloads = unwrap(&body, Envelope::Auto).unwrap();
        assert_eq!(payloads, [Payload::new("{\"Records\": []}", "Message")]);
    }

    #[test]
    fn auto_splits_lambda_sqs_records_and_decodes_their_base64_bodies() {
        let body = json!({"Records": [
            {"messageId": "1", "body": encode_base64("{\"n\": 1}")},
            {"messageId": "2", "body": "{\"n\": 2}"},
        ]})
        .to_string();
        let payloads = unwrap(&body, Envelope::Auto).unwrap();
        assert_eq!(bodies(&payloads), ["{\"n\": 1}", "{\"n\": 2}"]);
        assert_eq!(payloads[0].origin, "Records[0].body (base64)");
        assert_eq!(payloads[1].origin, "Records[1].body");
    }

    #[test]
    fn auto_splits_lambda_sns_records_keeping_the_inner_records_for_the_processor() {
        let inner = "{\"Records\": [{\"ecsevent\": {}}]}";
        let body = json!({"Records": [{"Sns": {"Message": inner}}, {"Sns": {"Message": inner}}]})
            .to_string();
        let payloads = unwrap(&body, Envelope::Auto).unwrap();
        assert_eq!(bodies(&payloads), [inner, inner]);
        assert_eq!(payloads[1].origin, "Records[1].Sns.Message");
    }

    #[test]
    fn auto_splits_a_receive_message_response() {
        let body = json!({"Messages": [
            {"MessageId": "a", "Body": encode_base64("{\"n\": 1}")},
            {"MessageId": "b", "Body": encode_base64("{\"n\": 2}")},
        ]})
        .to_string();
        let payloads = unwrap(&body, Envelope::Auto).unwrap();
        assert_eq!(bodies(&payloads), ["{\"n\": 1}", "{\"n\": 2}"]);
        assert_eq!(payloads[0].origin, "Messages[0].Body (base64)");
    }

    #[test]
    fn auto_keeps_records_that_are_not_a_transport_layer() {
        let body = json!({"Records": [{"ecsevent": {"eventJson": "{}"}}]}).to_string();
        let payloads = unwrap(&body, Envelope::Auto).unwrap();
        assert_eq!(bodies(&payloads), [body.as_str()]);
    }

    #[test]
    fn sns_setting_refuses_a_body_that_is_not_a_notification() {
        let error = unwrap("{\"a\": 1}", Envelope::Sns).unwrap_err();
        assert_eq!(error.expected, "sns");
        assert!(error.reason.contains("envelope to raw"), "{error}");
    }

    #[test]
    fn sns_setting_accepts_both_sns_shapes() {
        let notification = json!({"Type": "Notification", "Message": "x"}).to_string();
        assert_eq!(
            bodies(&unwrap(&notification, Envelope::Sns).unwrap()),
            ["x"]
        );
        let lambda = json!({"Records": [{"Sns": {"Message": "y"}}]}).to_string();
        assert_eq!(bodies(&unwrap(&lambda, Envelope::Sns).unwrap()), ["y"]);
    }

    #[test]
    fn s3_setting_yields_each_record_also_through_sns() {
        let event = json!({"Records": [
            {"eventSource": "aws:s3", "s3": {"object": {"key": "a.mp4"}}},
            {"eventSource": "aws:s3", "s3": {"object": {"key": "b.mp4"}}},
        ]});
        let direct = unwrap(&event.to_string(), Envelope::S3).unwrap();
        assert_eq!(direct.len(), 2);
        let record: Value = serde_json::from_str(&direct[1].body).unwrap();
        assert_eq!(record["s3"]["object"]["key"], "b.mp4");

        let via_sns = json!({"Type": "Notification", "Message": event.to_string()}).to_string();
        let payloads = unwrap(&via_sns, Envelope::S3).unwrap();
        assert_eq!(payloads.len(), 2);
        assert_eq!(payloads[0].origin, "Message.Records[0]");
    }

    #[test]
    fn s3_test_event_carries_nothing() {
        let body = json!({"Service": "Amazon S3", "Event": "s3:TestEvent"}).to_string();
        assert!(unwrap(&body, Envelope::S3).unwrap().is_empty());
    }

    #[test]
    fn s3_setting_names_a_record_without_an_object() {
        let body = json!({"Records": [{"eventSource": "aws:sqs"}]}).to_string();
        let error = unwrap(&body, Envelope::S3).unwrap_err();
        assert!(error.reason.contains("Records[0]"), "{error}");
    }

    #[test]
    fn lambda_setting_names_a_record_without_a_body() {
        let body = json!({"Records": [{"body": "a"}, {"other": 1}]}).to_string();
        let error = unwrap(&body, Envelope::Lambda).unwrap_err();
        assert_eq!(
            error.to_string(),
            "envelope lambda: Records[1] has neither a body nor Sns.Message"
        );
    }

    #[test]
    fn only_base64_of_json_is_decoded() {
        assert_eq!(decode_base64_json("AAECAwQF"), None);
        assert_eq!(decode_base64_json("not base64!"), None);
        assert_eq!(decode_base64_json(&encode_base64("plain text")), None);
    }
}
