//! The rotation's new Secret, created once, as the plan shows it: the plan's own object (its
//! labels, annotations, `immutable: true`), named by the plan's `<secret>-<plan>-{{random}}`
//! with 16 fresh random hex digits, its `data` the values. Custody cannot read Secrets, so a
//! Secret of a predictable name that someone created first could carry their values: a name is
//! never reused, a taken one is never adopted, and neither is a create whose outcome is unknown —
//! the next attempt takes a new name. Only the name, the answer's status and each value's
//! SHA-256 are kept; what the API server says back is kept only when it holds no part of a value
//! (`SecretValues::echoed_in`), judged before it is escaped or cut.

use std::collections::BTreeSet;

use rand_core::{OsRng, RngCore};
use serde::Serialize;
use serde_json::Value;

use super::secret_values::SecretValues;
use crate::containment::cluster::{status_text, FIELD_MANAGER};
use crate::digest::Sha256Digest;
use crate::kube::{encode, Cluster};

/// The longest name a Secret may have.
const MAX_NAME: usize = 253;

/// Where the plan's name for the new Secret takes its random part.
pub const RANDOM_PLACEHOLDER: &str = "{{random}}";

/// What is kept instead of an answer that repeats part of a value.
const WITHHELD: &str = "(the API server's message is not kept: it repeats part of a value)";

/// What became of the create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Created {
    /// The Secret exists under `name`, and the answer's `data` is the values sent.
    Created {
        name: String,
        resource_version: Option<String>,
        /// Each key's SHA-256.
        values_sha256: std::collections::BTreeMap<String, Sha256Digest>,
    },
    /// The name was taken (409): not ours, never used.
    NameTaken { name: String },
    /// Refused, with the Status (or a note that it was withheld).
    Refused {
        name: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// Nothing was sent: the plan's object cannot be made into this Secret.
    NotSent { why: String },
    /// No judgement came, or the answer does not show the values sent: the Secret may exist,
    /// and is never adopted.
    Unknown { name: String, why: String },
}

/// The plan's name for the new Secret with a fresh random part.
pub fn fresh_name(planned: &str) -> Result<String, String> {
    if planned.matches(RANDOM_PLACEHOLDER).count() != 1 {
        return Err(format!(
            "the plan's name for the new Secret must hold {RANDOM_PLACEHOLDER} once"
        ));
    }
    let mut random = [0u8; 8];
    OsRng.fill_bytes(&mut random);
    let name = planned.replace(RANDOM_PLACEHOLDER, &hex::encode(random));
    if name.len() > MAX_NAME {
        return Err(format!(
            "the new Secret's name would be longer than {MAX_NAME} characters"
        ));
    }
    Ok(name)
}

/// Whether `name` is `template` with its placeholder replaced by 16 hex digits.
pub fn from_template(template: &str, name: &str) -> bool {
    let Some((head, tail)) = template.split_once(RANDOM_PLACEHOLDER) else {
        return false;
    };
    name.len() == head.len() + 16 + tail.len()
        && name.starts_with(head)
        && name.ends_with(tail)
        && name[head.len()..head.len() + 16]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Creates the Secret the plan's object `planned` describes, named `name` (from `fresh_name`),
/// with `values`, sent once.
pub async fn create(
    cluster: &Cluster,
    planned: &Value,
    name: &str,
    values: &SecretValues,
) -> Created {
    let not_sent = |why: &str| Created::NotSent {
        why: why.to_owned(),
    };
    if planned["kind"] != "Secret" || planned["immutable"] != true {
        return not_sent("the plan's object is not an immutable Secret");
    }
    let template = planned
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !from_template(template, name) {
        return not_sent("the name is not the plan's name with a fresh random part");
    }
    let Some(namespace) = planned
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    else {
        return not_sent("the plan's Secret names no namespace");
    };
    let planned_keys: BTreeSet<&str> = planned["data"]
        .as_object()
        .map(|d| d.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if planned_keys != values.keys().collect::<BTreeSet<&str>>() {
        return not_sent("the values given are not exactly the plan's keys");
    }
    let mut body = planned.clone();
    body["metadata"]["name"] = Value::String(name.to_owned());
    body["data"] = Value::Object(values.data());
    let path = format!(
        "/api/v1/namespaces/{}/secrets?fieldManager={FIELD_MANAGER}",
        encode(namespace)
    );
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let name = name.to_owned();
    let answer = match cluster
        .send_once(&http::Method::POST, &path, Some("application/json"), &bytes)
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            let why = if values.echoed_in(&e.message) {
                WITHHELD.to_owned()
            } else {
                crate::terminal::escape(&e.message).into_owned()
            };
            return Created::Unknown { name, why };
        }
    };
    if (200..300).contains(&answer.status) {
        let stored: Option<Value> = serde_json::from_slice(&answer.body).ok();
        let as_sent = stored.as_ref().is_some_and(|s| {
            s["data"] == Value::Object(values.data())
                && s["immutable"] == true
                && s.pointer("/metadata/name").and_then(Value::as_str) == Some(name.as_str())
        });
        if !as_sent {
            return Created::Unknown {
                name,
                why: "the API server's answer is not the immutable Secret sent, with its values (a webhook may have changed it): the Secret is not used".into(),
            };
        }
        return Created::Created {
            name,
            resource_version: stored
                .as_ref()
                .and_then(|s| s.pointer("/metadata/resourceVersion"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            values_sha256: values.digests(),
        };
    }
    if answer.status == 409 {
        return Created::NameTaken { name };
    }
    let (reason, message) = if values.echoed_in(&String::from_utf8_lossy(&answer.body)) {
        (String::new(), WITHHELD.to_owned())
    } else {
        status_text(&answer)
    };
    Created::Refused {
        name,
        code: answer.status,
        reason,
        message,
    }
}
