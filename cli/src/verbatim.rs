//! Showing processor outputs as they were produced: a JSON body is embedded as JSON exactly as
//! written (field order and spacing included — the original services' consumers may depend on
//! them), anything else as text or base64.

use base64::Engine;
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Verbatim {
    Json(Box<RawValue>),
    Text(String),
    Binary { base64: String },
}

impl Verbatim {
    pub fn from_text(text: &str) -> Self {
        let trimmed = text.trim();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(raw) = RawValue::from_string(trimmed.to_owned())
        {
            return Self::Json(raw);
        }
        Self::Text(text.to_owned())
    }

    pub fn from_bytes(data: &[u8]) -> Self {
        match std::str::from_utf8(data) {
            Ok(text) => Self::from_text(text),
            Err(_) => Self::Binary {
                base64: base64::engine::general_purpose::STANDARD.encode(data),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(v: &Verbatim) -> String {
        serde_json::to_string(v).expect("serialisable")
    }

    #[test]
    fn json_keeps_its_field_order_and_spacing() {
        let body = r#"{"timestampMillis": 1, "participant": "p", "challengeId": "c"}"#;
        assert_eq!(shown(&Verbatim::from_text(body)), body);
    }

    #[test]
    fn other_text_is_a_string_and_binary_is_base64() {
        assert_eq!(shown(&Verbatim::from_text("plain")), r#""plain""#);
        assert_eq!(shown(&Verbatim::from_text("{not json")), r#""{not json""#);
        assert_eq!(
            shown(&Verbatim::from_bytes(&[0xff, 0x00])),
            r#"{"base64":"/wA="}"#
        );
    }
}
