//! JSON written the way Python's `json.dumps` writes it by default: `", "` and `": "` between
//! items and every character outside printable ASCII escaped as `\uXXXX`. The original Python
//! services serialised their messages and records that way, and their consumers (and FIFO
//! content-based deduplication) may compare bytes.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// Serialises `value` exactly as `json.dumps(value)` (default arguments) would.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer)?;
    // Every byte written is ASCII: non-ASCII characters are escaped by the formatter.
    String::from_utf8(out)
        .map_err(|error| serde_json::Error::io(io::Error::new(io::ErrorKind::InvalidData, error)))
}

/// `json.dumps` defaults: `separators=(", ", ": ")`, `ensure_ascii=True`.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    /// serde_json has already escaped quotes, backslashes and control characters (the same
    /// way Python does); what is left to do is Python's `\uXXXX` for DEL and non-ASCII.
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut plain_from = 0;
        for (at, ch) in fragment.char_indices() {
            if (' '..='~').contains(&ch) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[plain_from..at])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            plain_from = at + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[plain_from..])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn separators_match_json_dumps() {
        let value = json!({"a": 1, "b": [1, 2, {"c": "d"}], "e": {}});
        assert_eq!(
            to_string(&value).unwrap(),
            r#"{"a": 1, "b": [1, 2, {"c": "d"}], "e": {}}"#
        );
    }

    #[test]
    fn nested_values_keep_python_separators() {
        let value = json!({"a": [1, {"b": null}], "c": true});
        assert_eq!(
            to_string(&value).unwrap(),
            r#"{"a": [1, {"b": null}], "c": true}"#
        );
    }

    #[test]
    fn non_ascii_is_escaped_like_ensure_ascii() {
        // json.dumps("é€😀\x7f/") == '"\\u00e9\\u20ac\\ud83d\\ude00\\u007f/"'
        assert_eq!(
            to_string("é€😀\u{7f}/").unwrap(),
            r#""\u00e9\u20ac\ud83d\ude00\u007f/""#
        );
    }

    #[test]
    fn control_characters_and_quotes_are_escaped_like_python() {
        // json.dumps('C:\\x "y"\n\t\x01') == '"C:\\\\x \\"y\\"\\n\\t\\u0001"'
        assert_eq!(
            to_string("C:\\x \"y\"\n\t\u{1}").unwrap(),
            r#""C:\\x \"y\"\n\t\u0001""#
        );
    }
}
