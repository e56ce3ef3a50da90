//! Canonical JSON and its SHA-256: the one text form that payload hashes
//! (gates) and the audit chain's event hashes are computed over.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Canonical JSON: object keys sorted at every level, no insignificant
/// whitespace, numbers as serde_json writes them except negative zero,
/// written `0.0`. Whatever serde_json's map order, the same value always gives
/// the same text.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_canonical(v, &mut out);
    out
}

/// Appends the canonical JSON of `v` to `out` (verification writes a
/// million of them: no allocation per key or string).
pub fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // serde_json's default map iterates in key order already; with
            // `preserve_order` (any crate of the build may turn it on) it
            // does not.
            if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, k);
                out.push(':');
                write_canonical(x, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::String(s) => push_str(out, s),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // Negative zero is written as zero: PostgreSQL's JSON numbers have
        // no sign of zero, so `-0.0` comes back from the database as `0.0`,
        // and a hash over `-0.0` would no longer verify.
        Value::Number(n) if n.is_f64() && n.as_f64() == Some(0.0) => out.push_str("0.0"),
        Value::Number(n) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{n}");
        }
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it
/// (`"` `\` and the control characters; `\b \f \n \r \t` short, the rest
/// as `\u00xx`; everything else, DEL and non-ASCII included, as is).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// SHA-256 (hex) of the canonical JSON.
pub fn hash_json(v: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(v).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every: String = (0u8..=0x7f).map(char::from).collect();
        every.push_str("é€😀\u{2028}\u{2029}\u{fffd}");
        for s in [
            every.as_str(),
            "",
            "plain",
            "\"",
            "a\\b",
            "\u{7f}",
            "\u{0}x\u{1f}",
        ] {
            let mut ours = String::new();
            push_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_string(s).unwrap_or_default(), "{s:?}");
        }
    }

    #[test]
    fn canonical_text_sorts_keys_and_keeps_values() {
        let v =
            json!({"b": [1, 2.5, -3, null, true, false, {"z": "\n", "a": {}}], "a": "x", "": 1e300, "é": []});
        let text = canonical_json(&v);
        assert_eq!(
            text,
            r#"{"":1e+300,"a":"x","b":[1,2.5,-3,null,true,false,{"a":{},"z":"\n"}],"é":[]}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, v);
        assert_eq!(
            text,
            serde_json::to_string(&v).unwrap_or_default(),
            "serde_json's map is ordered"
        );
    }
}
