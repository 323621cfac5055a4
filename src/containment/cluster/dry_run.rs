//! Server-side dry-runs: each write a plan proposes is sent to the API server with
//! `?dryRun=All`, so admission and validation judge it exactly as they will at execution, and
//! nothing is stored. The answer becomes the plan's `DryRun`: accepted (with the server's
//! warnings), refused (the Status), or not run (no answer). A dry-run needs the same RBAC verb as
//! the real write.
//!
//! Secrets are never dry-run: their values exist only at execution, and custody never sends a
//! Secret's data anywhere before then. `dry_run` answers `NotSupported` for any request on
//! `secrets` without sending it; the planner does not ask.

use serde_json::Value;

use crate::kube::{encode, Answer, Cluster};
use crate::terminal::escape;

use super::DryRun;

/// The `fieldManager` of every write custody makes.
pub const FIELD_MANAGER: &str = "custody";

/// The object a change is about: enough to build its REST path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `v1`, `apps/v1`, `networking.k8s.io/v1`, `cilium.io/v2`.
    pub api_version: String,
    /// The resource, plural and lower case: `networkpolicies`, `deployments`.
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Target {
    /// `/api/v1/namespaces/NS/RES` or `/apis/GROUP/VERSION/namespaces/NS/RES`.
    pub fn collection_path(&self) -> String {
        let root = if self.api_version.contains('/') {
            format!("/apis/{}", self.api_version)
        } else {
            format!("/api/{}", self.api_version)
        };
        format!(
            "{root}/namespaces/{}/{}",
            encode(&self.namespace),
            encode(&self.resource)
        )
    }

    /// The collection path and the object's name.
    pub fn object_path(&self) -> String {
        format!("{}/{}", self.collection_path(), encode(&self.name))
    }
}

/// One write to dry-run.
#[derive(Clone, Debug, PartialEq)]
pub enum DryRunRequest {
    /// POST the whole object to its collection.
    Create { target: Target, object: Value },
    /// PUT the whole object; it must carry the `metadata.resourceVersion` it was read at, so a
    /// change since is a 409.
    Replace { target: Target, object: Value },
    /// A JSON patch (RFC 6902, `application/json-patch+json`), its `test` ops first.
    Patch { target: Target, patch: Value },
    /// DELETE, with the `resourceVersion` it was read at as a precondition (never sent
    /// without one).
    Delete {
        target: Target,
        resource_version: Option<String>,
    },
}

impl DryRunRequest {
    pub fn target(&self) -> &Target {
        match self {
            DryRunRequest::Create { target, .. }
            | DryRunRequest::Replace { target, .. }
            | DryRunRequest::Patch { target, .. }
            | DryRunRequest::Delete { target, .. } => target,
        }
    }

    /// The method, path (with `dryRun=All`), content type and body; or why it is not sent.
    fn http(&self) -> Result<(http::Method, String, &'static str, Vec<u8>), DryRun> {
        self.http_as(true)
    }

    /// The same request, dry (`dryRun=All`) or for real: what execution sends. A replace
    /// without the `resourceVersion` it was read at is never sent either way.
    pub fn http_as(
        &self,
        dry: bool,
    ) -> Result<(http::Method, String, &'static str, Vec<u8>), DryRun> {
        let write = if dry {
            format!("dryRun=All&fieldManager={FIELD_MANAGER}")
        } else {
            format!("fieldManager={FIELD_MANAGER}")
        };
        let delete_query = if dry { "?dryRun=All" } else { "" };
        let json = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
        Ok(match self {
            DryRunRequest::Create { target, object } => (
                http::Method::POST,
                format!("{}?{write}", target.collection_path()),
                "application/json",
                json(object),
            ),
            DryRunRequest::Replace { target, object } => {
                let rv = object.pointer("/metadata/resourceVersion");
                if rv.and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Err(DryRun::NotRun {
                        why: "a replace must carry the resourceVersion it was read at".into(),
                    });
                }
                (
                    http::Method::PUT,
                    format!("{}?{write}", target.object_path()),
                    "application/json",
                    json(object),
                )
            }
            DryRunRequest::Patch { target, patch } => (
                http::Method::PATCH,
                format!("{}?{write}", target.object_path()),
                "application/json-patch+json",
                json(patch),
            ),
            DryRunRequest::Delete {
                target,
                resource_version,
            } => {
                let Some(rv) = resource_version.as_deref().filter(|rv| !rv.is_empty()) else {
                    return Err(DryRun::NotRun {
                        why: "a delete must carry the resourceVersion it was read at".into(),
                    });
                };
                let mut options = serde_json::json!({"apiVersion": "v1", "kind": "DeleteOptions"});
                options["preconditions"] = serde_json::json!({"resourceVersion": rv});
                (
                    http::Method::DELETE,
                    format!("{}{delete_query}", target.object_path()),
                    "application/json",
                    json(&options),
                )
            }
        })
    }
}

/// Sends `change` with `dryRun=All` and says what the API server made of it. Never fails:
/// whatever happens is the outcome recorded in the plan. A 4xx is `Refused` with its Status; a
/// 5xx (after `kube.rs`'s retries) or no answer is `NotRun`, since the server did not judge the
/// change.
pub async fn dry_run(cluster: &Cluster, change: &DryRunRequest) -> DryRun {
    if change.target().resource == "secrets" {
        return DryRun::NotSupported {
            why: "a Secret is never dry-run: its values exist only at execution".into(),
        };
    }
    let (method, path, content_type, body) = match change.http() {
        Ok(request) => request,
        Err(outcome) => return outcome,
    };
    match cluster
        .send(&method, &path, Some(content_type), &body)
        .await
    {
        Ok(answer) => outcome(&answer),
        Err(e) => DryRun::NotRun {
            why: format!("the dry-run got no judgement: {}", escape(&e.message)),
        },
    }
}

/// The outcome of an answer: 2xx accepted, anything else refused with its Status.
fn outcome(answer: &Answer) -> DryRun {
    if (200..300).contains(&answer.status) {
        return DryRun::Accepted {
            warnings: answer.warnings.iter().map(|w| warning_text(w)).collect(),
        };
    }
    let (reason, message) = status_text(answer);
    DryRun::Refused {
        code: answer.status,
        reason,
        message,
    }
}

/// A refusal's `reason` and `message` from its Status (with a failed JSON patch `test`'s
/// causes), or the start of a body that is not one; escaped, since admission webhooks write
/// whatever they like.
pub fn status_text(answer: &Answer) -> (String, String) {
    let status: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (reason, mut message) = if status["kind"] == "Status" {
        (text(&status["reason"]), text(&status["message"]))
    } else {
        let body = String::from_utf8_lossy(&answer.body);
        (String::new(), body.chars().take(500).collect())
    };
    // A refused object names its invalid fields only in its causes.
    for cause in status
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let said = text(&cause["message"]);
        if !said.is_empty() && !message.contains(&said) {
            let field = text(&cause["field"]);
            message.push_str("; ");
            if !field.is_empty() {
                message.push_str(&field);
                message.push_str(": ");
            }
            message.push_str(&said);
        }
    }
    (escape(&reason).into_owned(), escape(&message).into_owned())
}

/// The text of a `Warning` header (RFC 7234 `299 - "text"`, as the API server writes it),
/// escaped: admission webhooks write whatever they like.
fn warning_text(header: &str) -> String {
    let rest = header.trim();
    let rest = rest
        .strip_prefix("299")
        .map(|r| r.trim_start())
        .and_then(|r| r.strip_prefix('-'))
        .map(str::trim)
        .unwrap_or(rest);
    let text = match rest
        .strip_prefix('"')
        .and_then(|r| r.rfind('"').map(|i| &r[..i]))
    {
        Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => rest.to_owned(),
    };
    escape(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(api_version: &str, resource: &str) -> Target {
        Target {
            api_version: api_version.into(),
            resource: resource.into(),
            namespace: "waqiti".into(),
            name: "custody-block-gw".into(),
        }
    }

    #[test]
    fn paths_carry_dry_run_and_the_field_manager() {
        let t = target("networking.k8s.io/v1", "networkpolicies");
        let create = DryRunRequest::Create {
            target: t.clone(),
            object: json!({}),
        };
        let (m, path, ct, _) = create.http().unwrap();
        assert_eq!(m, http::Method::POST);
        assert_eq!(
            path,
            "/apis/networking.k8s.io/v1/namespaces/waqiti/networkpolicies?dryRun=All&fieldManager=custody"
        );
        assert_eq!(ct, "application/json");
        let patch = DryRunRequest::Patch {
            target: target("apps/v1", "deployments"),
            patch: json!([]),
        };
        let (m, path, ct, _) = patch.http().unwrap();
        assert_eq!(m, http::Method::PATCH);
        assert!(path.starts_with(
            "/apis/apps/v1/namespaces/waqiti/deployments/custody-block-gw?dryRun=All"
        ));
        assert_eq!(ct, "application/json-patch+json");
        let delete = DryRunRequest::Delete {
            target: target("v1", "services"),
            resource_version: Some("7".into()),
        };
        let (m, path, _, body) = delete.http().unwrap();
        assert_eq!(m, http::Method::DELETE);
        assert_eq!(
            path,
            "/api/v1/namespaces/waqiti/services/custody-block-gw?dryRun=All"
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["preconditions"]["resourceVersion"], "7");
    }

    #[test]
    fn a_replace_without_its_resource_version_is_not_sent() {
        let replace = DryRunRequest::Replace {
            target: target("networking.k8s.io/v1", "networkpolicies"),
            object: json!({"metadata": {"name": "x"}}),
        };
        assert!(matches!(replace.http(), Err(DryRun::NotRun { .. })));
        // Nor a delete without one, dry or for real.
        for rv in [None, Some(String::new())] {
            let delete = DryRunRequest::Delete {
                target: target("networking.k8s.io/v1", "networkpolicies"),
                resource_version: rv,
            };
            assert!(matches!(delete.http(), Err(DryRun::NotRun { .. })));
            assert!(matches!(delete.http_as(false), Err(DryRun::NotRun { .. })));
        }
        // For real: no dryRun, custody's field manager.
        let delete = DryRunRequest::Delete {
            target: target("networking.k8s.io/v1", "networkpolicies"),
            resource_version: Some("7".into()),
        };
        let (_, path, _, _) = delete.http_as(false).unwrap();
        assert!(!path.contains("dryRun"), "{path}");
    }

    #[test]
    fn answers_become_outcomes() {
        let answer = |status: u16, body: Value, warnings: Vec<&str>| Answer {
            status,
            date: None,
            warnings: warnings.into_iter().map(str::to_owned).collect(),
            body: serde_json::to_vec(&body).unwrap(),
        };
        assert_eq!(
            outcome(&answer(
                201,
                json!({}),
                vec![
                    r#"299 - "spec.ingress[0]: use \"10.0.0.0/8\"""#,
                    "299 - \"bell\x07\""
                ]
            )),
            DryRun::Accepted {
                warnings: vec![
                    r#"spec.ingress[0]: use "10.0.0.0/8""#.into(),
                    "bell\\x07".into()
                ]
            }
        );
        let refused = outcome(&answer(
            422,
            json!({"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
                   "message": "the server rejected our request due to an error in our request",
                   "details": {"causes": [{"reason": "UnexpectedServerResponse", "message": "testing value /spec failed"}]}}),
            vec![],
        ));
        let DryRun::Refused {
            code,
            reason,
            message,
        } = refused
        else {
            panic!("{refused:?}")
        };
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        assert!(
            message.ends_with("; testing value /spec failed"),
            "{message}"
        );
        let not_status = outcome(&answer(405, json!("nope"), vec![]));
        assert!(matches!(not_status, DryRun::Refused { code: 405, .. }));
    }

    #[test]
    fn warning_headers_without_the_code_are_kept_whole() {
        assert_eq!(warning_text("plain text"), "plain text");
        assert_eq!(warning_text("299 - unquoted"), "unquoted");
    }
}
