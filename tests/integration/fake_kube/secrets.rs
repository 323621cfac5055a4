//! Secrets (`v1` `secrets`) as the API server handles them (`pkg/apis/core/validation`'s
//! `ValidateSecret` and `ValidateSecretUpdate`, the `v1` conversion). On the way in, `data`
//! values are base64 (Go's padded standard alphabet; line feeds ignored) or the body cannot be
//! decoded: 400 `Secret in version "v1" cannot be handled as a Secret: illegal base64 data at
//! input byte N` (a patch whose result does not decode is 422 `Invalid`, field `patch`); then
//! `stringData` is merged into `data` (its values win) and never stored, and `type` defaults
//! to `Opaque`. Validation: the name a DNS-1123 subdomain, every key a valid config key
//! (`[-._a-zA-Z0-9]+`, at most 253 characters, not `.`, `..` or starting with `..`), at most
//! 1 MiB of data, the keys each `kubernetes.io/…` type requires. On update `type` cannot change,
//! and an `immutable: true` Secret can change neither `data` nor `immutable` (`Forbidden: field
//! is immutable when `immutable` is set`); its metadata can.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::store::status_with;
use super::validate::FieldError;
use super::{FakeKube, Reply};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `base64.StdEncoding.Decode`: the bytes, or the offset of the input byte where decoding
/// failed (as in `illegal base64 data at input byte N`).
pub fn decode(text: &str) -> Result<Vec<u8>, usize> {
    let value = |c: u8| ALPHABET.iter().position(|a| *a == c).map(|v| v as u32);
    let input = text.as_bytes();
    let (mut out, mut quantum, mut at) = (Vec::new(), Vec::new(), 0usize);
    while at < input.len() {
        let c = input[at];
        at += 1;
        if c == b'\n' || c == b'\r' {
            continue;
        }
        if c == b'=' {
            // Padding only in the third or fourth place, then nothing but line feeds.
            if quantum.len() < 2 {
                return Err(at - 1);
            }
            if quantum.len() == 2 {
                match input[at..].iter().position(|b| *b != b'\n' && *b != b'\r') {
                    Some(i) if input[at + i] == b'=' => at += i + 1,
                    Some(i) => return Err(at + i),
                    None => return Err(input.len()),
                }
            }
            if let Some(i) = input[at..].iter().position(|b| *b != b'\n' && *b != b'\r') {
                return Err(at + i);
            }
            let n = quantum
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
            out.extend_from_slice(&n.to_be_bytes()[1..quantum.len()]);
            return Ok(out);
        }
        let Some(v) = value(c) else {
            return Err(at - 1);
        };
        quantum.push(v);
        if quantum.len() == 4 {
            let n = quantum
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
            out.extend_from_slice(&n.to_be_bytes()[1..]);
            quantum.clear();
        }
    }
    match quantum.len() {
        0 => Ok(out),
        n => Err(input.len() - n),
    }
}

/// The body could not be decoded into a Secret: 400 on create and replace; a patch whose result
/// does not decode is refused as an invalid patch (the API server quotes the patched object).
fn undecodable(why: &str, patched: Option<&Value>) -> Reply {
    match patched {
        None => status_with(
            400,
            "BadRequest",
            &format!("Secret in version \"v1\" cannot be handled as a Secret: {why}"),
            Value::Null,
        ),
        Some(obj) => {
            let text = obj.to_string();
            status_with(
                422,
                "Invalid",
                &format!(
                    " {:?} is invalid: patch: Invalid value: {:?}: {why}",
                    "", text
                ),
                json!({"causes": [{"reason": "FieldValueInvalid", "message": format!("Invalid value: {text:?}: {why}"), "field": "patch"}]}),
            )
        }
    }
}

/// Decodes a Secret as the API server does on the way in: `data` from base64 (stored
/// re-encoded), `stringData` merged into it and dropped, `type` defaulted. `patch` says the
/// object is a patch's result.
pub fn decode_secret(obj: &mut Value, patch: bool) -> Result<(), Reply> {
    let patched = patch.then(|| obj.clone());
    let refuse = |why: String| undecodable(&why, patched.as_ref());
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    match obj.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                // A `null` value decodes as no bytes.
                let Some(text) = v.as_str().or(v.is_null().then_some("")) else {
                    return Err(refuse(format!("json: cannot unmarshal {} into Go struct field Secret.data of type []uint8", kind_word(v))));
                };
                let bytes = decode(text)
                    .map_err(|at| refuse(format!("illegal base64 data at input byte {at}")))?;
                data.insert(k.clone(), bytes);
            }
        }
        Some(other) => {
            return Err(refuse(format!(
            "json: cannot unmarshal {} into Go struct field Secret.data of type map[string][]uint8",
            kind_word(other)
        )))
        }
    }
    match obj.get("stringData") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let Some(text) = v.as_str().or(v.is_null().then_some("")) else {
                    return Err(refuse(format!("json: cannot unmarshal {} into Go struct field Secret.stringData of type string", kind_word(v))));
                };
                data.insert(k.clone(), text.as_bytes().to_vec());
            }
        }
        Some(other) => return Err(refuse(format!("json: cannot unmarshal {} into Go struct field Secret.stringData of type map[string]string", kind_word(other)))),
    }
    match obj.get("immutable") {
        None | Some(Value::Null) | Some(Value::Bool(_)) => {}
        Some(other) => {
            return Err(refuse(format!(
                "json: cannot unmarshal {} into Go struct field Secret.immutable of type bool",
                kind_word(other)
            )))
        }
    }
    let Some(o) = obj.as_object_mut() else {
        return Ok(());
    };
    o.remove("stringData");
    if data.is_empty() {
        o.remove("data");
    } else {
        let m: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), json!(encode(v))))
            .collect();
        o.insert("data".into(), Value::Object(m));
    }
    if o.get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        o.insert("type".into(), json!("Opaque"));
    }
    Ok(())
}

fn kind_word(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

const CONFIG_KEY: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// What `IsConfigMapKey` says of `key`.
fn key_problems(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push("must be no more than 253 characters".to_owned());
    }
    let charset = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    if key.is_empty() || !key.bytes().all(charset) {
        out.push(CONFIG_KEY.to_owned());
    }
    if key == "." {
        out.push("must not be '.'".to_owned());
    } else if key == ".." {
        out.push("must not be '..'".to_owned());
    } else if key.starts_with("..") {
        out.push("must not start with '..'".to_owned());
    }
    out
}

/// The decoded `data` of a (decoded) Secret.
fn data_of(obj: &Value) -> BTreeMap<String, Vec<u8>> {
    obj.get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let bytes = decode(v.as_str().unwrap_or_default()).unwrap_or_default();
            (k.clone(), bytes)
        })
        .collect()
}

/// `ValidateSecret`, after the name (checked for every kind).
pub fn validate(obj: &Value, errors: &mut Vec<FieldError>) {
    let data = data_of(obj);
    for key in data.keys() {
        for why in key_problems(key) {
            errors.push(FieldError::invalid(&format!("data[{key}]"), key, &why));
        }
    }
    if data.values().map(Vec::len).sum::<usize>() > 1024 * 1024 {
        errors.push(FieldError {
            field: "data".into(),
            message: "Too long: must have at most 1048576 bytes".into(),
            reason: "FieldValueTooLong",
        });
    }
    let required = |key: &str, errors: &mut Vec<FieldError>| {
        errors.push(FieldError::required(&format!("data[{key}]"), ""));
    };
    match obj.get("type").and_then(Value::as_str).unwrap_or("Opaque") {
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    required(key, errors);
                }
            }
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            required("username", errors);
            required("password", errors);
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
            required("ssh-privatekey", errors);
        }
        "kubernetes.io/dockerconfigjson" => match data.get(".dockerconfigjson") {
            None => required(".dockerconfigjson", errors),
            Some(v) if serde_json::from_slice::<Map<String, Value>>(v).is_err() => {
                errors.push(FieldError::invalid(
                    "data[.dockerconfigjson]",
                    "<secret contents redacted>",
                    "invalid character in JSON",
                ))
            }
            Some(_) => {}
        },
        "kubernetes.io/service-account-token" => {
            let name = obj.pointer("/metadata/annotations/kubernetes.io~1service-account.name");
            if name.and_then(Value::as_str).is_none_or(str::is_empty) {
                errors.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        _ => {}
    }
}

/// `ValidateSecretUpdate`'s own checks (`ValidateSecret` runs after them).
pub fn validate_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    let type_of = |v: &Value| {
        v.get("type")
            .and_then(Value::as_str)
            .unwrap_or("Opaque")
            .to_owned()
    };
    if type_of(old) != type_of(new) {
        errors.push(FieldError::invalid(
            "type",
            &type_of(new),
            "field is immutable",
        ));
    }
    if old.get("immutable") == Some(&Value::Bool(true)) {
        const WHY: &str = "field is immutable when `immutable` is set";
        if new.get("immutable") != Some(&Value::Bool(true)) {
            errors.push(FieldError::forbidden("immutable", WHY));
        }
        if data_of(old) != data_of(new) {
            errors.push(FieldError::forbidden("data", WHY));
        }
    }
}

impl FakeKube {
    /// A stored Secret as it is (its `data` base64), read past the API and its RBAC: for tests
    /// to check what was written, and what never was.
    pub fn secret(&self, name: &str) -> Option<Value> {
        self.stored("v1", "secrets", name)
    }

    /// A stored Secret's `data`, decoded.
    pub fn secret_data(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.secret(name).map(|s| data_of(&s))
    }
}
