//! The object writes of steps 1 and 2 as execution sends them: the change the plan holds, for
//! real (no `dryRun`), as `fieldManager=custody`, sent once. What the API server answers is the
//! outcome journaled with the step: applied (the object as stored; a delete answers with a
//! Status, or with the object while finalizers hold it), a conflict (the object changed since the
//! plan read it — a guarded replace or delete answering 409, a JSON patch answered 422 (its
//! `test` failed or a path is gone) —
//! or a create's name is taken: the plan is stale), refused (the Status), or unknown (no answer,
//! 429, a 5xx, or an answer too large to keep: the write may have happened, and the caller finds
//! out by reading, never by sending it again). An unguarded replace or delete is never sent. The
//! new Secret is not written here: its values must never reach an error message, and it has a
//! path of its own.

use serde::Serialize;
use serde_json::Value;

use crate::containment::cluster::{status_text, DryRunRequest};
use crate::digest::Sha256Digest;
use crate::kube::Cluster;
use crate::plan::document::DryRun;
use crate::terminal::escape;

/// What became of one write.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Written {
    /// 2xx: the object as the server stored it (none for a delete), and its `resourceVersion`.
    Applied {
        code: u16,
        resource_version: Option<String>,
        object: Option<Value>,
        /// The SHA-256 of the answer's exact bytes.
        answer_sha256: Sha256Digest,
    },
    /// 409, or a JSON patch refused as not applying (422): the object changed since it was
    /// read, or a create's name is taken.
    Conflict { reason: String, message: String },
    /// Any other refusal, with its Status.
    Refused {
        code: u16,
        reason: String,
        message: String,
    },
    /// Nothing was sent (the request cannot be made), nothing was stored.
    NotSent { why: String },
    /// No judgement came: the write may or may not have happened.
    Unknown { why: String },
}

impl Written {
    /// Whether the object is now as the change made it.
    pub fn applied(&self) -> bool {
        matches!(self, Written::Applied { .. })
    }
}

/// Sends `change` once, for real, and says what the API server made of it.
pub async fn write(cluster: &Cluster, change: &DryRunRequest) -> Written {
    if change.target().resource == "secrets" {
        return Written::NotSent {
            why: "a Secret is created by the rotation step's own path, never as a plain write"
                .into(),
        };
    }
    let (method, path, content_type, body) = match change.http_as(false) {
        Ok(request) => request,
        Err(DryRun::NotRun { why } | DryRun::NotSupported { why }) => {
            return Written::NotSent { why }
        }
        Err(other) => {
            return Written::NotSent {
                why: format!("{other:?}"),
            }
        }
    };
    let answer = match cluster
        .send_once(&method, &path, Some(content_type), &body)
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            return Written::Unknown {
                why: format!(
                    "no judgement came, so the write may or may not have happened: {}",
                    escape(&e.message)
                ),
            }
        }
    };
    if (200..300).contains(&answer.status) {
        let object: Option<Value> = serde_json::from_slice(&answer.body).ok();
        let resource_version = object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let object = object.filter(|o| o["kind"] != "Status");
        return Written::Applied {
            code: answer.status,
            resource_version,
            object,
            answer_sha256: Sha256Digest::of(&answer.body),
        };
    }
    let (reason, mut message) = status_text(&answer);
    // The API server answers a JSON patch that does not apply (a `test` that fails, a path
    // gone) with a bare 422 — its generic message, no causes: the object is not as the plan
    // read it. A patched object that fails validation names its fields in `details.causes`, and
    // a webhook says what it likes: refusals.
    let causes = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|s| {
            s.pointer("/details/causes")
                .and_then(Value::as_array)
                .map(Vec::len)
        })
        .unwrap_or(0);
    let generic = reason == "Invalid"
        && message == "the server rejected our request due to an error in our request";
    if matches!(change, DryRunRequest::Patch { .. })
        && answer.status == 422
        && causes == 0
        && generic
    {
        message = format!(
            "the patch does not apply to the object as it is now (a test failed or a path is gone): {message}"
        );
        return Written::Conflict { reason, message };
    }
    if answer.status == 409 {
        Written::Conflict { reason, message }
    } else {
        Written::Refused {
            code: answer.status,
            reason,
            message,
        }
    }
}
