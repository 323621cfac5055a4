//! Canonical JSON (RFC 8785, JCS) for the records whose exact bytes are signed: plans and
//! approval statements. Encoding sorts object keys by their UTF-16 code units, writes no
//! whitespace and escapes strings as JCS does. Decoding is strict: bytes that are not exactly the
//! canonical encoding of what they decode to, duplicate keys (which `serde_json` would silently
//! resolve to the last) and — through `#[serde(deny_unknown_fields)]` on the types read — unknown
//! fields are refused, so two parties can never read one signed record two ways.
//!
//! Numbers are integers only, within ±(2^53 − 1) where every JSON reader agrees on them: custody
//! writes no fractions, and JCS's float formatting is a reader disagreement waiting to happen.

use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserializer, Serialize};
use serde_json::{Map, Number, Value};

/// The largest integer every IEEE-754 double reader represents exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    #[error("cannot represent the value as JSON: {0}")]
    Encode(String),
    #[error(
        "the number {0} is not an integer within ±(2^53 - 1); canonical records hold integers only"
    )]
    Number(String),
    #[error("not valid JSON: {0}")]
    Parse(String),
    #[error("duplicate key {0:?} in a JSON object")]
    DuplicateKey(String),
    #[error(
        "not canonical JSON (RFC 8785): the bytes differ from the canonical encoding at byte {at}"
    )]
    NotCanonical { at: usize },
    #[error("does not fit the record: {0}")]
    Shape(String),
}

/// The canonical bytes of `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value).map_err(|e| CanonicalError::Encode(e.to_string()))?;
    encode(&value)
}

/// The canonical bytes of a JSON value.
pub fn encode(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::new();
    write_value(value, &mut out)?;
    Ok(out)
}

/// Reads `bytes` as a `T`, refusing anything but the canonical encoding of a value without
/// duplicate keys; unknown fields are refused by `T`'s own `deny_unknown_fields`. The record
/// read back must encode to exactly `bytes` again, so one record has one encoding (a field
/// written `null` and the same field left out are not two spellings of one plan).
pub fn from_slice<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, CanonicalError> {
    let value = decode(bytes)?;
    let record: T =
        serde_json::from_value(value).map_err(|e| CanonicalError::Shape(e.to_string()))?;
    let again = to_vec(&record)?;
    if again != bytes {
        return Err(CanonicalError::NotCanonical {
            at: first_difference(&again, bytes),
        });
    }
    Ok(record)
}

/// Where `a` and `b` first differ.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Reads `bytes` as a JSON value, refusing duplicate keys and non-canonical bytes.
pub fn decode(bytes: &[u8]) -> Result<Value, CanonicalError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de).map_err(|e| {
        match e.to_string().strip_prefix(DUPLICATE) {
            Some(rest) => CanonicalError::DuplicateKey(cut_position(rest)),
            None => CanonicalError::Parse(e.to_string()),
        }
    })?;
    de.end().map_err(|e| CanonicalError::Parse(e.to_string()))?;
    let again = encode(&value)?;
    if again != bytes {
        return Err(CanonicalError::NotCanonical {
            at: first_difference(&again, bytes),
        });
    }
    Ok(value)
}

const DUPLICATE: &str = "duplicate key: ";

/// The key of a duplicate-key error, without the position serde_json appends.
fn cut_position(rest: &str) -> String {
    let key = rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k);
    serde_json::from_str::<String>(key).unwrap_or_else(|_| key.to_owned())
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out)?,
    }
    Ok(())
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // RFC 8785 §3.2.3: keys sorted by their UTF-16 code units, not by UTF-8 bytes (they differ
    // for characters above U+FFFF against U+E000..U+FFFF).
    entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_value(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_number(n: &Number, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    let safe = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u <= MAX_SAFE_INTEGER,
        (None, Some(i)) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
        _ => false,
    };
    if !safe {
        return Err(CanonicalError::Number(n.to_string()));
    }
    out.extend_from_slice(n.to_string().as_bytes());
    Ok(())
}

/// RFC 8785 §3.2.2.2: the two-character escapes, `\u00xx` (lowercase) for the other controls,
/// every other character as its UTF-8.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Builds a `serde_json::Value` like its own `Deserialize`, but refuses an object with a key
/// twice.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Err(E::custom(format!(
            "the number {v} is not an integer; canonical records hold integers only"
        )))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                let quoted = serde_json::to_string(&key).unwrap_or_default();
                return Err(serde::de::Error::custom(format!("{DUPLICATE}{quoted}")));
            }
            let value = access.next_value_seed(StrictValue)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_by_utf16_and_writes_no_whitespace() {
        // RFC 8785 §3.2.3's example order: "\r" < "1" < "\u{80}" < "\u{f6}" < "\u{20ac}" <
        // "\u{1f600}" < "\u{fb33}" (the emoji's surrogates sort before U+FB33).
        let v = json!({"\u{20ac}": 4, "\r": 0, "\u{fb33}": 6, "1": 1, "\u{1f600}": 5,
                       "\u{80}": 2, "\u{f6}": 3});
        let got = String::from_utf8(encode(&v).unwrap()).unwrap();
        assert_eq!(
            got,
            "{\"\\r\":0,\"1\":1,\"\u{80}\":2,\"\u{f6}\":3,\"\u{20ac}\":4,\"\u{1f600}\":5,\"\u{fb33}\":6}"
        );
        assert_eq!(
            encode(&json!({"b": [1, {"d": null, "c": true}], "a": "x"})).unwrap(),
            br#"{"a":"x","b":[1,{"c":true,"d":null}]}"#
        );
    }

    #[test]
    fn escapes_strings_as_jcs() {
        let v = json!("\u{0}\u{1f}\u{7f}\"\\/\u{8}\u{c}\n\r\t\u{2028}é");
        assert_eq!(
            String::from_utf8(encode(&v).unwrap()).unwrap(),
            "\"\\u0000\\u001f\u{7f}\\\"\\\\/\\b\\f\\n\\r\\t\u{2028}é\""
        );
    }

    #[test]
    fn refuses_fractions_and_unsafe_integers() {
        assert!(matches!(
            encode(&json!(1.5)),
            Err(CanonicalError::Number(_))
        ));
        assert!(matches!(
            encode(&json!(MAX_SAFE_INTEGER + 1)),
            Err(CanonicalError::Number(_))
        ));
        assert_eq!(
            encode(&json!(-9007199254740991i64)).unwrap(),
            b"-9007199254740991"
        );
        assert!(decode(b"1.0").is_err());
        assert!(decode(b"1e3").is_err());
    }

    #[test]
    fn refuses_duplicate_keys() {
        let err = decode(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(
            matches!(&err, CanonicalError::DuplicateKey(k) if k == "a"),
            "{err}"
        );
        assert!(matches!(
            decode(br#"{"x":[{"b":1,"b":1}]}"#),
            Err(CanonicalError::DuplicateKey(_))
        ));
    }

    #[test]
    fn refuses_bytes_that_are_not_canonical() {
        for bad in [
            &br#"{"b":1,"a":2}"#[..],
            br#"{"a": 1}"#,
            b"{\"a\":1}\n",
            br#"{"a":"\u0041"}"#,
            br#"{"a":"\/"}"#,
            br#"{"a":-0}"#,
            br#"{"a":01}"#,
            b" {}",
        ] {
            assert!(
                decode(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            decode(br#"{"b":1,"a":2}"#),
            Err(CanonicalError::NotCanonical { at: 2 })
        ));
    }

    #[test]
    fn unknown_fields_are_refused_by_the_type() {
        #[derive(serde::Deserialize, serde::Serialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u32,
            b: Option<u32>,
        }
        assert!(from_slice::<T>(br#"{"a":1,"b":null}"#).is_ok());
        assert!(matches!(
            from_slice::<T>(br#"{"a":1,"b":2,"c":3}"#),
            Err(CanonicalError::Shape(_))
        ));
        // A field left out that the record writes as null is a second spelling: refused.
        assert!(matches!(
            from_slice::<T>(br#"{"a":1}"#),
            Err(CanonicalError::NotCanonical { .. })
        ));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(MAX_SAFE_INTEGER as i64)..=MAX_SAFE_INTEGER as i64).prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn decode_of_encode_is_identity(v in json_value()) {
            let bytes = encode(&v).unwrap();
            let back = decode(&bytes).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(encode(&back).unwrap(), bytes.clone());
            // Any JSON reader reads the canonical bytes as the same value.
            prop_assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), v);
        }
    }
}
