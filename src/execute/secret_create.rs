//! The rotation's new Secret, created once: immutable, under a fresh name
//! `<secret>-<plan>-<8 random hex digits>` (custody cannot read Secrets, so a Secret of a
//! predictable name that someone created first could carry their values: a name is never reused,
//! and a create whose outcome is unknown is never adopted — the next attempt takes a new name),
//! labelled as custody's, with the case and plan that own it. Only the name, the answer's status
//! and each value's SHA-256 are kept; whatever the API server says back is redacted of the values
//! before it is kept.

use rand_core::{OsRng, RngCore};
use serde::Serialize;
use serde_json::{json, Value};

use super::secret_values::SecretValues;
use crate::containment::cluster::{status_text, FIELD_MANAGER};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::kube::{encode, Cluster};

/// The longest name a Secret may have.
const MAX_NAME: usize = 253;

/// What became of the create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Created {
    /// The Secret exists under `name`, with exactly the values given.
    Created {
        name: String,
        resource_version: Option<String>,
        /// Each key's SHA-256.
        values_sha256: std::collections::BTreeMap<String, Sha256Digest>,
    },
    /// The name was taken (409): not ours, never used.
    NameTaken { name: String },
    /// Refused, with the Status (redacted of the values).
    Refused {
        name: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// No judgement came: the Secret may exist. It is never adopted.
    Unknown { name: String, why: String },
}

/// A fresh name for the new Secret of `secret` in plan `plan`, or why there is none.
pub fn fresh_name(secret: &str, plan: &PlanId) -> Result<String, String> {
    let mut random = [0u8; 4];
    OsRng.fill_bytes(&mut random);
    let name = format!("{secret}-{}-{}", plan.as_str(), hex::encode(random));
    if name.len() > MAX_NAME {
        return Err(format!(
            "the new Secret's name for {secret:?} would be longer than {MAX_NAME} characters"
        ));
    }
    Ok(name)
}

/// Creates the Secret `name` in `namespace` with `values`, immutable, sent once.
pub async fn create(
    cluster: &Cluster,
    (namespace, name): (&str, &str),
    (case, plan): (&CaseId, &PlanId),
    values: &SecretValues,
) -> Created {
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "custody",
                "custody.io/case": case.as_str(),
                "custody.io/plan": plan.as_str(),
            },
        },
        "immutable": true,
        "type": "Opaque",
        "data": Value::Object(values.data()),
    });
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
            return Created::Unknown {
                name,
                why: values.redact(&crate::terminal::escape(&e.message)),
            }
        }
    };
    if (200..300).contains(&answer.status) {
        let stored: Option<Value> = serde_json::from_slice(&answer.body).ok();
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
    let (reason, message) = status_text(&answer);
    Created::Refused {
        name,
        code: answer.status,
        reason: values.redact(&reason),
        message: values.redact(&message),
    }
}
