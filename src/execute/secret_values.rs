//! The values of the new Secret a rotation creates: each key the plan lists, generated from the
//! operating system's CSPRNG in the plan's encoding, or provided by the operator in a file
//! (`--secret-values FILE`: a JSON object of string values, every key the plan marks `provided`
//! and nothing else). A value never appears in a journal entry, a log line, an error message,
//! the store or a bundle: only its SHA-256 (`digests`) is recorded. `Debug` shows key names only,
//! and every error names keys, never values.

use std::collections::BTreeMap;
use std::path::Path;

use rand_core::{OsRng, RngCore};

use crate::digest::Sha256Digest;
use crate::plan::document::KeyPlan;

/// The largest `--secret-values` file read (a Secret holds at most 1 MiB).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretValuesError {
    #[error(
        "the plan marks keys {0:?} as provided: give --secret-values FILE with a value for each"
    )]
    NoFile(Vec<String>),
    #[error("--secret-values {path}: {message}")]
    File { path: String, message: String },
    #[error("--secret-values {path}: no value for {keys:?}, which the plan marks as provided")]
    Missing { path: String, keys: Vec<String> },
    #[error("--secret-values {path}: {keys:?} are not keys the plan provides (the new Secret has exactly the plan's keys)")]
    Unexpected { path: String, keys: Vec<String> },
    #[error("--secret-values {path}: the value of {key:?} is empty")]
    Empty { path: String, key: String },
    #[error("key {key:?}: the plan's encoding {encoding:?} is not base64, base64url or hex")]
    Encoding { key: String, encoding: String },
    #[error(
        "key {key:?}: the plan asks for {bytes} random bytes, outside what containment.yaml allows"
    )]
    Length { key: String, bytes: u16 },
}

/// The new Secret's values, by key.
pub struct SecretValues {
    values: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValues")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SecretValues {
    /// Every key's value: generated, or read from `provided` for the keys the plan marks so.
    pub fn for_plan(
        keys: &BTreeMap<String, KeyPlan>,
        provided: Option<&Path>,
    ) -> Result<Self, SecretValuesError> {
        let wanted: Vec<String> = keys
            .iter()
            .filter(|(_, k)| matches!(k, KeyPlan::Provided))
            .map(|(name, _)| name.clone())
            .collect();
        let mut given = match (provided, wanted.is_empty()) {
            (Some(path), _) => read_file(path, &wanted)?,
            (None, true) => BTreeMap::new(),
            (None, false) => return Err(SecretValuesError::NoFile(wanted)),
        };
        let mut values = BTreeMap::new();
        for (name, plan) in keys {
            let value = match plan {
                KeyPlan::Provided => given.remove(name).unwrap_or_default(),
                KeyPlan::Generate { bytes, encoding } => generate(name, *bytes, encoding)?,
            };
            values.insert(name.clone(), value);
        }
        Ok(Self { values })
    }

    /// Each key's SHA-256: what the journal and the actions bundle record.
    pub fn digests(&self) -> BTreeMap<String, Sha256Digest> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), Sha256Digest::of(v)))
            .collect()
    }

    /// The Secret's `data`: each value in base64, as the API takes it.
    pub fn data(&self) -> serde_json::Map<String, serde_json::Value> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), aws_smithy_types::base64::encode(v).into()))
            .collect()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Whether `text` (as the API server sent it, before any escaping or cutting) holds any
    /// part of a value: 8 characters in a row of it (all of it, when shorter) as written,
    /// JSON-quoted, in hex or in base64 (padded or not, standard or URL-safe), or 8 of its bytes
    /// in a row as Go prints a byte slice (`[112 97 …]`); also inside every string of `text` read
    /// as JSON, with one more layer of quoting undone. Text that does is never kept: a server or
    /// webhook may echo what it was sent, whole or cut off. Text longer than 64 KiB is not
    /// searched: it counts as echoing (a refusal's message is never that long).
    pub fn echoed_in(&self, text: &str) -> bool {
        if text.len() > MAX_EXAMINED {
            return true;
        }
        let mut texts = vec![text.to_owned()];
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            strings_of(&v, &mut texts);
        }
        let unquoted: Vec<String> = texts.iter().map(|t| unescape(t)).collect();
        texts.extend(unquoted);
        texts.iter().any(|t| self.echoed_in_one(t))
    }

    fn echoed_in_one(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let windows: std::collections::HashSet<String> =
            chars.windows(WINDOW).map(|w| w.iter().collect()).collect();
        let runs = byte_runs(text);
        self.values.values().any(|value| {
            let raw = String::from_utf8_lossy(value).into_owned();
            let b64 = aws_smithy_types::base64::encode(value);
            let url = b64
                .trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_");
            let quoted = serde_json::to_string(&raw).unwrap_or_default();
            let quoted = quoted.trim_matches('"').to_owned();
            let forms = [
                raw,
                b64.trim_end_matches('=').to_owned(),
                url,
                quoted,
                hex::encode(value),
            ];
            let as_text = forms.iter().filter(|f| !f.is_empty()).any(|form| {
                let fc: Vec<char> = form.chars().collect();
                if fc.len() <= WINDOW {
                    return text.contains(form.as_str());
                }
                fc.windows(WINDOW)
                    .any(|w| windows.contains(&w.iter().collect::<String>()))
            });
            as_text
                || value
                    .windows(WINDOW.min(value.len()).max(1))
                    .any(|w| runs.contains(w))
        })
    }
}

/// How many characters (or bytes) in a row of a value count as echoing it.
const WINDOW: usize = 8;

/// The longest text `echoed_in` searches.
const MAX_EXAMINED: usize = 64 * 1024;

/// Every string inside `v`.
fn strings_of(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings_of(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| strings_of(x, out)),
        _ => {}
    }
}

/// `text` with one layer of backslash quoting undone (`\"`, `\\`, `\n`, `\t`, `\uXXXX`, …).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let code: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&code, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => out.push_str(&code),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Every run of 8 numbers 0–255 in a row (space- or comma-separated) in `text`, as bytes: how
/// Go prints a byte slice.
fn byte_runs(text: &str) -> std::collections::HashSet<Vec<u8>> {
    let mut runs = std::collections::HashSet::new();
    let mut current: Vec<u8> = Vec::new();
    let flush = |current: &mut Vec<u8>, runs: &mut std::collections::HashSet<Vec<u8>>| {
        for w in current.windows(WINDOW.min(current.len()).max(1)) {
            runs.insert(w.to_vec());
        }
        current.clear();
    };
    for token in text.split(|c: char| c.is_whitespace() || c == ',') {
        let number = token.trim_matches(|c| c == '[' || c == ']');
        match number.parse::<u8>() {
            Ok(b) if !number.is_empty() => current.push(b),
            _ => flush(&mut current, &mut runs),
        }
        if token.ends_with(']') {
            flush(&mut current, &mut runs);
        }
    }
    flush(&mut current, &mut runs);
    runs.retain(|r| r.len() >= WINDOW);
    runs
}

/// `bytes` bytes from the CSPRNG, written in `encoding`.
fn generate(key: &str, bytes: u16, encoding: &str) -> Result<Vec<u8>, SecretValuesError> {
    if !crate::policy::containment::secrets::GENERATE_BYTES.contains(&bytes) {
        return Err(SecretValuesError::Length {
            key: key.to_owned(),
            bytes,
        });
    }
    let mut raw = vec![0u8; usize::from(bytes)];
    OsRng.fill_bytes(&mut raw);
    let text = match encoding {
        "base64" => aws_smithy_types::base64::encode(&raw),
        "base64url" => aws_smithy_types::base64::encode(&raw)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_"),
        "hex" => hex::encode(&raw),
        other => {
            return Err(SecretValuesError::Encoding {
                key: key.to_owned(),
                encoding: other.to_owned(),
            })
        }
    };
    Ok(text.into_bytes())
}

/// The provided values: a JSON object of non-empty strings naming exactly `wanted`.
fn read_file(
    path: &Path,
    wanted: &[String],
) -> Result<BTreeMap<String, Vec<u8>>, SecretValuesError> {
    let shown = path.display().to_string();
    let fail = |message: String| SecretValuesError::File {
        path: shown.clone(),
        message,
    };
    let bytes = if path == Path::new("-") {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(e.to_string()))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(fail(format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        bytes
    } else {
        let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(fail(format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        std::fs::read(path).map_err(|e| fail(e.to_string()))?
    };
    // serde_json's errors quote no input, only positions: safe to show.
    let object: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| fail(format!("not a JSON object of string values ({e})")))?;
    let unexpected: Vec<String> = object
        .keys()
        .filter(|k| !wanted.contains(k))
        .cloned()
        .collect();
    if !unexpected.is_empty() {
        return Err(SecretValuesError::Unexpected {
            path: shown,
            keys: unexpected,
        });
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|k| !object.contains_key(*k))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(SecretValuesError::Missing {
            path: shown,
            keys: missing,
        });
    }
    let mut out = BTreeMap::new();
    for (key, value) in object {
        let serde_json::Value::String(text) = value else {
            return Err(fail(format!("the value of {key:?} is not a string")));
        };
        if text.is_empty() {
            return Err(SecretValuesError::Empty { path: shown, key });
        }
        out.insert(key, text.into_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(keys: &[(&str, KeyPlan)]) -> BTreeMap<String, KeyPlan> {
        keys.iter()
            .map(|(k, p)| ((*k).to_owned(), p.clone()))
            .collect()
    }

    fn generated(bytes: u16, encoding: &str) -> KeyPlan {
        KeyPlan::Generate {
            bytes,
            encoding: encoding.into(),
        }
    }

    #[test]
    fn generated_values_are_random_and_encoded_as_the_plan_says() {
        let keys = plan(&[
            ("A", generated(32, "base64")),
            ("B", generated(32, "base64url")),
            ("C", generated(32, "hex")),
        ]);
        let one = SecretValues::for_plan(&keys, None).unwrap();
        let two = SecretValues::for_plan(&keys, None).unwrap();
        assert_ne!(one.digests(), two.digests(), "fresh randomness each time");
        let v = &one.values;
        assert_eq!(
            aws_smithy_types::base64::decode(std::str::from_utf8(&v["A"]).unwrap())
                .unwrap()
                .len(),
            32
        );
        let b = String::from_utf8(v["B"].clone()).unwrap();
        assert!(!b.contains(['+', '/', '=']), "{b}");
        assert_eq!(b.len(), 43);
        assert_eq!(hex::decode(&v["C"]).unwrap().len(), 32);
        assert_eq!(one.digests()["C"], Sha256Digest::of(&v["C"]));
        let data = one.data();
        assert_eq!(
            aws_smithy_types::base64::decode(data["C"].as_str().unwrap()).unwrap(),
            v["C"]
        );
    }

    #[test]
    fn provided_values_need_exactly_the_plans_keys_and_never_show_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("values.json");
        let keys = plan(&[("API_KEY", KeyPlan::Provided), ("B", generated(16, "hex"))]);
        let err = SecretValues::for_plan(&keys, None).unwrap_err();
        assert!(matches!(err, SecretValuesError::NoFile(_)), "{err}");

        std::fs::write(&file, r#"{"API_KEY": "s3cr3t-value", "B": "x"}"#).unwrap();
        let err = SecretValues::for_plan(&keys, Some(&file)).unwrap_err();
        assert!(matches!(err, SecretValuesError::Unexpected { .. }), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");

        std::fs::write(&file, r#"{}"#).unwrap();
        let err = SecretValues::for_plan(&keys, Some(&file)).unwrap_err();
        assert!(matches!(err, SecretValuesError::Missing { .. }), "{err}");

        for bad in [
            r#"{"API_KEY": 5}"#,
            r#"{"API_KEY": ""}"#,
            "s3cr3t-value",
            r#"{"API_KEY": "s3cr3t-value""#,
        ] {
            std::fs::write(&file, bad).unwrap();
            let err = SecretValues::for_plan(&keys, Some(&file)).unwrap_err();
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }

        std::fs::write(&file, r#"{"API_KEY": "s3cr3t-value"}"#).unwrap();
        let values = SecretValues::for_plan(&keys, Some(&file)).unwrap();
        assert_eq!(values.values["API_KEY"], b"s3cr3t-value");
        assert_eq!(values.keys().collect::<Vec<_>>(), ["API_KEY", "B"]);
        assert!(!format!("{values:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_plan_asking_for_an_unknown_encoding_or_length_is_refused() {
        let err =
            SecretValues::for_plan(&plan(&[("K", generated(32, "rot13"))]), None).unwrap_err();
        assert!(matches!(err, SecretValuesError::Encoding { .. }));
        let err = SecretValues::for_plan(&plan(&[("K", generated(8, "hex"))]), None).unwrap_err();
        assert!(matches!(err, SecretValuesError::Length { .. }));
    }

    #[test]
    fn any_part_of_a_value_is_found_in_any_form() {
        let values =
            SecretValues::for_plan(&plan(&[("K", generated(32, "hex"))]), None).expect("generated");
        let raw = String::from_utf8(values.values["K"].clone()).expect("hex text");
        let b64 = aws_smithy_types::base64::encode(&values.values["K"]);
        assert!(values.echoed_in(&format!("data.K: Invalid value: {raw:?}")));
        assert!(values.echoed_in(&format!("was {b64}")));
        // Cut off, mid-value.
        assert!(values.echoed_in(&format!("...{}", &raw[..9])));
        assert!(values.echoed_in(&format!("{}...", &b64[20..30])));
        assert!(!values.echoed_in("the server rejected our request due to an error in our request"));
        assert!(!values.echoed_in(&raw[..7]));
        // As Go prints a byte slice, in hex, JSON-quoted inside a JSON string.
        let bytes: Vec<String> = values.values["K"][10..20]
            .iter()
            .map(u8::to_string)
            .collect();
        assert!(values.echoed_in(&format!("data: map[K:[{}]]", bytes.join(" "))));
        assert!(values.echoed_in(&hex::encode(&values.values["K"][..8])));
        let nested =
            serde_json::json!({"message": format!("denied: {:?}", format!("value {raw}"))});
        assert!(values.echoed_in(&nested.to_string()));
        assert!(!values.echoed_in("[1 2 3 4 5 6 7 8 9 10]"));
        // Too long to search: not kept.
        assert!(values.echoed_in(&"x".repeat(MAX_EXAMINED + 1)));
    }

    #[test]
    fn a_provided_value_full_of_quotes_is_found_through_two_layers_of_quoting() {
        let keys = plan(&[("P", KeyPlan::Provided)]);
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("v.json");
        std::fs::write(&file, r#"{"P": "\"<&>\"\\\"<&>\"\\"}"#).expect("written");
        let values = SecretValues::for_plan(&keys, Some(&file)).expect("read");
        let raw = String::from_utf8(values.values["P"].clone()).expect("text");
        // Go-quoted (%q), then the whole message JSON-encoded by the API server.
        let go = serde_json::to_string(&raw).expect("quoted");
        let body = serde_json::json!({"kind": "Status", "message": format!("denied {go}")});
        assert!(values.echoed_in(&body.to_string()), "{body}");
    }
}
