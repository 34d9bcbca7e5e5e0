//! What sensors send: a submission (device, creation time, lists of events) as JSON, usually
//! base64-encoded, sometimes still inside the SQS batch it was received in. This module finds
//! the submission text and parses it; whether the values make sense is `validate`'s job.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// A submission as sent, strings borrowed from the message body where JSON allows it.
#[derive(Debug, Deserialize)]
pub struct Submission<'a> {
    #[serde(borrow)]
    pub submission_id: Cow<'a, str>,
    #[serde(borrow)]
    pub device_id: Cow<'a, str>,
    /// Device local time, ISO 8601. Validated but not carried over (as in the original).
    #[serde(borrow)]
    pub time_created: Cow<'a, str>,
    #[serde(borrow)]
    pub events: Events<'a>,
}

/// Both lists are required (the original failed on a missing one); either may be empty.
#[derive(Debug, Deserialize)]
pub struct Events<'a> {
    #[serde(borrow)]
    pub new_process: Vec<EventItem<'a>>,
    #[serde(borrow)]
    pub network_connection: Vec<EventItem<'a>>,
}

/// One item of either list. Every field is optional here because an item's type is decided by
/// which fields it has, not by the list it is in.
#[derive(Debug, Default, Deserialize)]
pub struct EventItem<'a> {
    #[serde(default, borrow)]
    pub cmdl: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub user: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub source_ip: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub destination_ip: Option<Cow<'a, str>>,
    /// Any JSON number, so that a float or an out-of-range value is reported by validation
    /// with the field's name rather than as a parse error.
    #[serde(default)]
    pub destination_port: Option<serde_json::Number>,
}

/// The text of one submission and where in the payload it was found.
#[derive(Debug, PartialEq, Eq)]
pub struct SubmissionText<'p> {
    /// `body`, or `Messages[2].Body` / `Records[0].body` when the payload was an SQS batch.
    pub origin: String,
    pub json: Cow<'p, [u8]>,
}

/// A payload from which no submission could be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    #[error(
        "{origin}: neither a JSON object nor base64-encoded JSON ({reason}); \
         sensors send the submission JSON, optionally base64-encoded"
    )]
    NotBase64 { origin: String, reason: String },
    #[error("{origin}: the SQS batch shape is malformed: {reason}")]
    MalformedBatch { origin: String, reason: String },
    #[error("{origin}: `{field}`: {reason}")]
    Malformed {
        origin: String,
        field: String,
        reason: String,
    },
}

/// Finds the submissions in a payload: the payload itself (plain JSON or base64), or every
/// message body of a ReceiveMessage `{"Messages": [{"Body"}]}` or Lambda SQS
/// `{"Records": [{"body"}]}` batch — the shape the original service was invoked with — so
/// the processor works whether or not the envelope setting already removed that layer.
pub fn submission_texts(payload: &str) -> Result<Vec<SubmissionText<'_>>, SubmissionError> {
    const ORIGIN: &str = "body";
    let trimmed = payload.trim_start();
    if !trimmed.starts_with('{') {
        return Ok(vec![decode(ORIGIN, payload)?]);
    }
    // A cheap test first: a plain submission never needs the batch probe.
    if !(trimmed.contains("\"Messages\"") || trimmed.contains("\"Records\"")) {
        return Ok(vec![plain(ORIGIN, payload)]);
    }
    let probe: BatchProbe<'_> =
        serde_json::from_str(payload).map_err(|error| SubmissionError::Malformed {
            origin: ORIGIN.to_owned(),
            field: "submission".to_owned(),
            reason: error.to_string(),
        })?;
    if probe.events.is_some() {
        return Ok(vec![plain(ORIGIN, payload)]);
    }
    match (probe.messages, probe.records) {
        (Some(messages), _) => batch_bodies("Messages", "Body", messages),
        (None, Some(records)) => batch_bodies("Records", "body", records),
        (None, None) => Ok(vec![plain(ORIGIN, payload)]),
    }
}

impl SubmissionText<'_> {
    /// Parses the submission; a missing field or a value of the wrong type is named by its
    /// path (`events.network_connection[1].source_ip`).
    pub fn parse(&self) -> Result<Submission<'_>, SubmissionError> {
        let mut deserializer = serde_json::Deserializer::from_slice(&self.json);
        let submission: Submission<'_> = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| {
                let field = field_of(error.path().to_string());
                self.malformed(field, error.into_inner())
            })?;
        deserializer
            .end()
            .map_err(|error| self.malformed("submission".to_owned(), error))?;
        Ok(submission)
    }

    fn malformed(&self, field: String, error: serde_json::Error) -> SubmissionError {
        SubmissionError::Malformed {
            origin: self.origin.clone(),
            field,
            reason: error.to_string(),
        }
    }
}

/// The path of the value being read, `submission` for the whole document. An unknown key
/// (the error came while reading a key) shows as `?` and is left out.
fn field_of(path: String) -> String {
    let known = path.trim_end_matches('?').trim_end_matches('.');
    if known.is_empty() {
        "submission".to_owned()
    } else {
        known.to_owned()
    }
}

/// Only what is needed to tell a batch from a submission; everything else is skipped.
#[derive(Deserialize)]
struct BatchProbe<'a> {
    #[serde(rename = "Messages", borrow, default)]
    messages: Option<Vec<BatchEntry<'a>>>,
    #[serde(rename = "Records", borrow, default)]
    records: Option<Vec<BatchEntry<'a>>>,
    #[serde(default)]
    events: Option<IgnoredAny>,
}

/// A ReceiveMessage message (`Body`) or a Lambda SQS record (`body`).
#[derive(Deserialize)]
struct BatchEntry<'a> {
    #[serde(rename = "Body", alias = "body", borrow, default)]
    body: Option<Cow<'a, str>>,
}

fn batch_bodies<'p>(
    list: &str,
    key: &str,
    entries: Vec<BatchEntry<'p>>,
) -> Result<Vec<SubmissionText<'p>>, SubmissionError> {
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let origin = format!("{list}[{index}].{key}");
            match entry.body {
                Some(Cow::Borrowed(body)) => text(origin, body),
                // An escaped body (plain JSON inside a JSON string) has to be owned.
                Some(Cow::Owned(body)) => text(origin, &body).map(|found| SubmissionText {
                    origin: found.origin,
                    json: Cow::Owned(found.json.into_owned()),
                }),
                None => Err(SubmissionError::MalformedBatch {
                    origin,
                    reason: format!("the entry has no `{key}`"),
                }),
            }
        })
        .collect()
}

fn text(origin: String, body: &str) -> Result<SubmissionText<'_>, SubmissionError> {
    if body.trim_start().starts_with('{') {
        Ok(plain(&origin, body))
    } else {
        decode(&origin, body)
    }
}

fn plain<'p>(origin: &str, body: &'p str) -> SubmissionText<'p> {
    SubmissionText {
        origin: origin.to_owned(),
        json: Cow::Borrowed(body.as_bytes()),
    }
}

fn decode<'p>(origin: &str, body: &str) -> Result<SubmissionText<'p>, SubmissionError> {
    crate::envelope::decode_base64(body)
        .map(|json| SubmissionText {
            origin: origin.to_owned(),
            json: Cow::Owned(json),
        })
        .map_err(|error| SubmissionError::NotBase64 {
            origin: origin.to_owned(),
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVE_MESSAGE_SHAPE: &str =
        include_str!("../../../tests/fixtures/telemetry/event.json");
    const DECODED: &str = include_str!("../../../tests/fixtures/telemetry/event-body-decoded.json");

    fn json_of(text: &SubmissionText<'_>) -> serde_json::Value {
        serde_json::from_slice(&text.json).unwrap()
    }

    fn fixture_body() -> String {
        let event: serde_json::Value = serde_json::from_str(RECEIVE_MESSAGE_SHAPE).unwrap();
        event["Messages"][0]["Body"].as_str().unwrap().to_owned()
    }

    #[test]
    fn plain_json_body_is_the_submission() {
        let texts = submission_texts(DECODED).unwrap();
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0].origin, "body");
        assert!(matches!(texts[0].json, Cow::Borrowed(_)));
        assert_eq!(
            json_of(&texts[0]),
            serde_json::from_str::<serde_json::Value>(DECODED).unwrap()
        );
    }

    #[test]
    fn base64_body_decodes_to_the_fixture_submission() {
        let body = fixture_body();
        let texts = submission_texts(&body).unwrap();
        assert_eq!(texts.len(), 1);
        assert_eq!(
            json_of(&texts[0]),
            serde_json::from_str::<serde_json::Value>(DECODED).unwrap()
        );
    }

    #[test]
    fn base64_with_line_breaks_and_without_padding_is_accepted() {
        let body = fixture_body();
        let unpadded = body.trim_end_matches('=');
        let wrapped: String = unpadded
            .as_bytes()
            .chunks(76)
            .map(|line| format!("{}\n", std::str::from_utf8(line).unwrap()))
            .collect();
        let texts = submission_texts(&wrapped).unwrap();
        assert_eq!(
            json_of(&texts[0]),
            serde_json::from_str::<serde_json::Value>(DECODED).unwrap()
        );
    }

    #[test]
    fn receive_message_shape_yields_each_body() {
        let texts = submission_texts(RECEIVE_MESSAGE_SHAPE).unwrap();
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0].origin, "Messages[0].Body");
        assert_eq!(
            json_of(&texts[0]),
            serde_json::from_str::<serde_json::Value>(DECODED).unwrap()
        );
    }

    #[test]
    fn lambda_records_shape_yields_each_body_plain_or_base64() {
        let plain_body = serde_json::to_string(DECODED).unwrap();
        let records = format!(
            r#"{{"Records": [{{"messageId": "a", "body": "{}"}}, {{"messageId": "b", "body": {plain_body}}}]}}"#,
            fixture_body()
        );
        let texts = submission_texts(&records).unwrap();
        let origins: Vec<&str> = texts.iter().map(|t| t.origin.as_str()).collect();
        assert_eq!(origins, ["Records[0].body", "Records[1].body"]);
        let expected = serde_json::from_str::<serde_json::Value>(DECODED).unwrap();
        assert_eq!(json_of(&texts[0]), expected);
        assert_eq!(json_of(&texts[1]), expected);
    }

    #[test]
    fn batch_entry_without_a_body_is_named() {
        let error = submission_texts(r#"{"Messages": [{"MessageId": "m"}]}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Messages[0].Body: the SQS batch shape is malformed: the entry has no `Body`"
        );
    }

    #[test]
    fn body_that_is_neither_json_nor_base64_is_rejected() {
        let error = submission_texts("not base64!").unwrap_err();
        assert!(
            matches!(error, SubmissionError::NotBase64 { .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("body: neither a JSON object nor base64")
        );
    }

    #[test]
    fn base64_of_broken_json_names_the_submission() {
        let text = submission_texts("eyJzdWJtaXNzaW9u").unwrap(); // {"submission
        let error = text[0].parse().unwrap_err();
        let SubmissionError::Malformed { field, reason, .. } = error else {
            panic!("expected a parse error");
        };
        assert_eq!(field, "submission");
        assert!(reason.contains("EOF"), "{reason}");
    }

    #[test]
    fn unknown_path_segments_are_left_out_of_the_field() {
        assert_eq!(field_of(".".to_owned()), "submission");
        assert_eq!(field_of("?".to_owned()), "submission");
        assert_eq!(
            field_of("events.new_process[0].?".to_owned()),
            "events.new_process[0]"
        );
        assert_eq!(field_of("device_id".to_owned()), "device_id");
    }

    #[test]
    fn missing_field_is_named() {
        let json = DECODED.replace("\"device_id\"", "\"device\"");
        let error = submission_texts(&json).unwrap()[0].parse().unwrap_err();
        assert!(
            error.to_string().contains("missing field `device_id`"),
            "{error}"
        );
    }

    #[test]
    fn missing_event_list_is_named_with_its_path() {
        let json = DECODED.replace("\"network_connection\"", "\"network\"");
        let error = submission_texts(&json).unwrap()[0].parse().unwrap_err();
        let SubmissionError::Malformed { field, reason, .. } = error else {
            panic!("expected a parse error");
        };
        assert_eq!(field, "events");
        assert!(
            reason.contains("missing field `network_connection`"),
            "{reason}"
        );
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let json = DECODED.replace("\"user\": \"john\"", "\"user\": 7");
        let error = submission_texts(&json).unwrap()[0].parse().unwrap_err();
        let SubmissionError::Malformed { field, reason, .. } = error else {
            panic!("expected a parse error");
        };
        assert_eq!(field, "events.new_process[1].user");
        assert!(reason.contains("expected a string"), "{reason}");
    }

    #[test]
    fn trailing_garbage_after_the_submission_is_rejected() {
        let json = format!("{DECODED} x");
        assert!(submission_texts(&json).unwrap()[0].parse().is_err());
    }

    #[test]
    fn fixture_parses_with_both_lists_in_order() {
        let texts = submission_texts(DECODED).unwrap();
        let submission = texts[0].parse().unwrap();
        assert_eq!(submission.device_id, "a6829ee2-871f-485e-9253-fbd02ba091cc");
        assert_eq!(submission.events.new_process.len(), 4);
        assert_eq!(submission.events.network_connection.len(), 3);
        assert_eq!(
            submission.events.new_process[2].cmdl.as_deref(),
            Some("calculator.exe")
        );
    }
}
