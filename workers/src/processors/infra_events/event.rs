//! Participant events: the body the consumers of the participant-events queue read, in the
//! original `queue-client` wire format (fields in this order, `timestampMillis` in epoch ms at
//! the time of sending), read from the fields of a classified record.

use serde::Serialize;
use serde_json::{Map, Value};

use super::classify::EventKind;

/// The message-attribute `version` of every participant event the original sent.
pub const EVENT_VERSION: &str = "0.2";

/// `recorderStarted`: a participant's recording upload began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecorderStarted {
    pub timestamp_millis: i64,
    pub participant: String,
    pub challenge_id: String,
}

/// `videoProcessingFailed`: a participant's video could not be processed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoProcessingFailed {
    pub timestamp_millis: i64,
    pub participant: String,
    pub challenge_id: String,
    pub error_message: String,
}

/// `coverageProcessingFailed`: a participant's round could not be measured for coverage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CoverageProcessingFailed {
    pub timestamp_millis: i64,
    pub participant: String,
    pub round_id: String,
    pub error_message: String,
}

/// One participant event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ParticipantEvent {
    RecorderStarted(RecorderStarted),
    VideoProcessingFailed(VideoProcessingFailed),
    CoverageProcessingFailed(CoverageProcessingFailed),
}

/// A classified record without the fields its kind needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{path}: not found; a {kind} event needs {needs}")]
    Missing {
        path: String,
        kind: EventKind,
        needs: &'static str,
    },
    #[error("{path}: must be {expected}; a {kind} event needs {needs}")]
    WrongType {
        path: String,
        expected: &'static str,
        kind: EventKind,
        needs: &'static str,
    },
}

impl ParticipantEvent {
    /// Reads the event of `kind` from `record` (one element of a message's `Records`);
    /// `record_location` names it in errors.
    pub fn from_record(
        kind: EventKind,
        record: &Map<String, Value>,
        record_location: &str,
        timestamp_millis: i64,
    ) -> Result<Self, FieldError> {
        let fields = Fields::locate(kind, record, record_location)?;
        Ok(match kind {
            EventKind::RecorderStarted => Self::RecorderStarted(RecorderStarted {
                timestamp_millis,
                participant: fields.required("participantId")?,
                challenge_id: fields.required("challengeId")?,
            }),
            EventKind::VideoProcessingFailed => {
                Self::VideoProcessingFailed(VideoProcessingFailed {
                    timestamp_millis,
                    participant: fields.required("participantId")?,
                    challenge_id: fields.required("challengeId")?,
                    error_message: fields.optional("errorMessage")?,
                })
            }
            EventKind::CoverageProcessingFailed => {
                Self::CoverageProcessingFailed(CoverageProcessingFailed {
                    timestamp_millis,
                    participant: fields.required("participantId")?,
                    round_id: fields.required("roundId")?,
                    error_message: fields.optional("errorMessage")?,
                })
            }
        })
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Self::RecorderStarted(_) => EventKind::RecorderStarted,
            Self::VideoProcessingFailed(_) => EventKind::VideoProcessingFailed,
            Self::CoverageProcessingFailed(_) => EventKind::CoverageProcessingFailed,
        }
    }

    pub fn participant(&self) -> &str {
        match self {
            Self::RecorderStarted(e) => &e.participant,
            Self::VideoProcessingFailed(e) => &e.participant,
            Self::CoverageProcessingFailed(e) => &e.participant,
        }
    }

    /// The message body, as the original's JSON mapper wrote it.
    pub fn body(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// The object holding a classified record's fields, and where it is.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    location: String,
    kind: EventKind,
}

impl<'a> Fields<'a> {
    /// S3 events nest their fields as `s3.s3event`; ECS events as `ecsevent.ecsevent` (the
    /// original's seed version) or `ecsevent` (its final version). Both are accepted.
    fn locate(
        kind: EventKind,
        record: &'a Map<String, Value>,
        record_location: &str,
    ) -> Result<Self, FieldError> {
        let (outer, inner) = match kind {
            EventKind::RecorderStarted => ("s3", Some("s3event")),
            EventKind::VideoProcessingFailed | EventKind::CoverageProcessingFailed => {
                ("ecsevent", None)
            }
        };
        let whole = Self {
            object: record,
            location: record_location.to_owned(),
            kind,
        };
        let outer_fields = whole.object_at(outer)?;
        match inner {
            Some(inner) => outer_fields.object_at(inner),
            None => match outer_fields.object.get("ecsevent") {
                Some(Value::Object(_)) => outer_fields.object_at("ecsevent"),
                _ => Ok(outer_fields),
            },
        }
    }

    fn object_at(&self, key: &'static str) -> Result<Fields<'a>, FieldError> {
        match self.object.get(key) {
            Some(Value::Object(object)) => Ok(Fields {
                object,
                location: self.path(key),
                kind: self.kind,
            }),
            Some(_) => Err(self.wrong_type(key, "an object")),
            None => Err(self.missing(key)),
        }
    }

    fn required(&self, key: &'static str) -> Result<String, FieldError> {
        match self.object.get(key) {
            Some(Value::String(value)) => Ok(value.clone()),
            Some(_) => Err(self.wrong_type(key, "a string")),
            None => Err(self.missing(key)),
        }
    }

    /// `errorMessage`: absent in the seed version's video fixture, so absent or null is "".
    fn optional(&self, key: &'static str) -> Result<String, FieldError> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => self.required(key),
        }
    }

    fn needs(&self) -> &'static str {
        match self.kind {
            EventKind::RecorderStarted => "s3.s3event.{participantId, challengeId} strings",
            EventKind::VideoProcessingFailed => {
                "ecsevent[.ecsevent].{participantId, challengeId} strings and an optional errorMessage"
            }
            EventKind::CoverageProcessingFailed => {
                "ecsevent[.ecsevent].{participantId, roundId} strings and an optional errorMessage"
            }
        }
    }

    /// `key` under this object, dotted (`Records[0].s3.s3event.participantId`).
    fn path(&self, key: &str) -> String {
        if self.location.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.location)
        }
    }

    fn missing(&self, key: &'static str) -> FieldError {
        FieldError::Missing {
            path: self.path(key),
            kind: self.kind,
            needs: self.needs(),
        }
    }

    fn wrong_type(&self, key: &'static str, expected: &'static str) -> FieldError {
        FieldError::WrongType {
            path: self.path(key),
            expected,
            kind: self.kind,
            needs: self.needs(),
        }
    }
}
