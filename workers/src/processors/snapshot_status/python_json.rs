//! JSON text exactly as Python's `json.dumps` writes it by default (`", "` and `": "`
//! separators, non-ASCII escaped as `\uXXXX`), so consumers of the original service's
//! messages — and FIFO content-based deduplication — see the same bytes.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// Serialises `value` as Python's `json.dumps(value)` would (map order is the value's own).
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let mut serializer = Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer)?;
    // The formatter only writes ASCII.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `json.dumps` defaults: `separators=(", ", ": ")`, `ensure_ascii=True`.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                let mut buf = [0u8; 1];
                w.write_all(c.encode_utf8(&mut buf).as_bytes())?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        // Python escapes control characters other than \b \f \n \r \t as \u00XX, like serde.
        let text: String = match escape {
            CharEscape::Quote => "\\\"".into(),
            CharEscape::ReverseSolidus => "\\\\".into(),
            CharEscape::Solidus => "/".into(),
            CharEscape::Backspace => "\\b".into(),
            CharEscape::FormFeed => "\\f".into(),
            CharEscape::LineFeed => "\\n".into(),
            CharEscape::CarriageReturn => "\\r".into(),
            CharEscape::Tab => "\\t".into(),
            CharEscape::AsciiControl(byte) => format!("\\u{byte:04x}"),
        };
        w.write_all(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn uses_python_default_separators() {
        let value = json!({"test_key": "test_value"});
        assert_eq!(dumps(&value).unwrap(), r#"{"test_key": "test_value"}"#);
        let value = json!({"a": [1, {"b": null}], "c": true});
        assert_eq!(
            dumps(&value).unwrap(),
            r#"{"a": [1, {"b": null}], "c": true}"#
        );
    }

    #[test]
    fn escapes_non_ascii_like_ensure_ascii() {
        assert_eq!(dumps("é😀").unwrap(), r#""\u00e9\ud83d\ude00""#);
        assert_eq!(dumps("a\"b\\c\n\u{1}").unwrap(), r#""a\"b\\c\n\u0001""#);
    }
}
