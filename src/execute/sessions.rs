//! Step 3 applied: the gateway's admin call through `pods/proxy` to each running pod of the
//! target (`per_pod`) or to one Ready pod (`once`), listed when the step runs and again after
//! the calls, for pods that started meanwhile. Each call is journaled before it is sent and
//! after; a non-idempotent call that was sent and not answered with success is never repeated.
//! The token is read from the one Secret key the plan names and sent only in the plan's header.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};

use super::admin_call::{self, Outcome};
use super::apply::{done, fail, Cx, Progress};
use super::run::{started_entry, write_entry, ExecuteError, History, StepReport};
use crate::case::entry::{Details, Intended, WritePhase};
use crate::containment::cluster::status_text;
use crate::kube::{encode, Cluster};
use crate::plan::document::{ChangeOp, ObjectChange, Step, StepDetail};
use crate::policy::containment::{ContainmentPolicy, Scope};
use crate::terminal::escape as esc;

/// How many times the target's pods are listed again after the calls, for new ones.
const POD_ROUNDS: usize = 3;

/// A pod of the target as it is now.
struct LivePod {
    name: String,
    ready: bool,
}

/// The target's pods whose containers have started (phase Running, not being deleted).
async fn running_pods(
    cluster: &Cluster,
    namespace: &str,
    policy: &ContainmentPolicy,
    target: &str,
) -> Result<Vec<LivePod>, String> {
    use k8s_openapi::api::core::v1::Pod;
    let Some(t) = policy.targets.iter().find(|t| t.name.as_str() == target) else {
        return Err(format!("target {} is not in containment.yaml", esc(target)));
    };
    let path = format!("/api/v1/namespaces/{}/pods", encode(namespace));
    let bytes = cluster.list(&path).await.map_err(|e| {
        format!(
            "cannot list the pods of {}: {}",
            esc(namespace),
            esc(&e.message)
        )
    })?;
    #[derive(serde::Deserialize)]
    struct List {
        items: Vec<Pod>,
    }
    let list: List = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the pod list of {} does not parse: {e}", esc(namespace)))?;
    let mut pods: Vec<LivePod> = list
        .items
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && t.pod_selector
                    .matches(&p.metadata.labels.clone().unwrap_or_default())
        })
        .map(|p| LivePod {
            name: p.metadata.name.clone().unwrap_or_default(),
            ready: p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
        })
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(pods)
}

/// The admin token: key `key` of Secret `namespace/secret` (the one Secret custody may read).
async fn admin_token(
    cluster: &Cluster,
    namespace: &str,
    secret: &str,
    key: &str,
) -> Result<Vec<u8>, String> {
    let path = format!(
        "/api/v1/namespaces/{}/secrets/{}",
        encode(namespace),
        encode(secret)
    );
    let what = format!(
        "the admin token (Secret {}/{}, key {})",
        esc(namespace),
        esc(secret),
        esc(key)
    );
    let answer = cluster
        .send(&http::Method::GET, &path, None, &[])
        .await
        .map_err(|e| format!("cannot read {what}: {}", esc(&e.message)))?;
    if answer.status != 200 {
        let (reason, message) = status_text(&answer);
        return Err(format!(
            "cannot read {what}: {} {reason}: {message}",
            answer.status
        ));
    }
    let secret: Value = serde_json::from_slice(&answer.body)
        .map_err(|_| format!("cannot read {what}: the answer is not a Secret"))?;
    let text = secret
        .pointer(&format!(
            "/data/{}",
            key.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: the Secret has no such key"))?;
    aws_smithy_types::base64::decode(text).map_err(|_| format!("{what}: the value is not base64"))
}

/// How each pod's earlier calls ended: done, or not to be repeated unless the call is
/// idempotent (sent with no answer, no judgement, or refused: an error answer does not prove
/// the endpoint did nothing).
fn earlier_calls(history: &History, number: u32) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut last: BTreeMap<String, (WritePhase, Option<String>)> = BTreeMap::new();
    for w in history.writes.get(&number).into_iter().flatten() {
        if w.op != ChangeOp::Call.as_str() {
            continue;
        }
        let Some(pod) = w
            .object
            .strip_prefix("Pod ")
            .and_then(|o| o.split_once('/'))
        else {
            continue;
        };
        last.insert(pod.1.to_owned(), (w.phase, w.outcome.clone()));
    }
    let mut done = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for (pod, (phase, outcome)) in last {
        match (phase, outcome.as_deref()) {
            (WritePhase::Answered, Some("applied")) => {
                done.insert(pod);
            }
            _ => {
                unknown.insert(pod);
            }
        }
    }
    (done, unknown)
}

/// Step 3: the admin call to each running pod of the target (or one Ready pod), listed when the
/// step runs and again afterwards.
pub(super) async fn invalidate(
    cx: &mut Cx<'_, '_>,
    step: &Step,
    mut p: Progress,
) -> Result<StepReport, ExecuteError> {
    let StepDetail::InvalidateSessions {
        call,
        scope,
        idempotent,
        timeout_seconds,
        ..
    } = &step.detail
    else {
        return fail(cx, step, p, "not an invalidation step".into());
    };
    let scope = if scope == "once" {
        Scope::Once
    } else {
        Scope::PerPod
    };
    let ns = step.namespace.clone();
    let (done_before, unknown) = earlier_calls(cx.history, step.number);
    // A call that is not idempotent, sent by an earlier run and not answered with success, is
    // never repeated: its pod is left out and reported; the others are called.
    let mut failures: Vec<String> = Vec::new();
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    if !*idempotent {
        for pod in &unknown {
            failures.push(format!("the call to pod {} was sent by an earlier run and not answered with success (its outcome is unknown, or it was refused), and the call is not idempotent: it is never repeated; find out from the gateway whether that pod's sessions were revoked", esc(pod)));
            skipped.insert(pod.clone());
        }
    }
    let token = match admin_token(cx.cluster, &ns, &call.token_secret, &call.token_key).await {
        Ok(t) => t,
        Err(e) => {
            failures.push(e);
            return fail(cx, step, p, failures.join("; "));
        }
    };
    let timeout = Duration::from_secs((*timeout_seconds).max(1));
    let mut called: BTreeSet<String> = done_before.union(&skipped).cloned().collect();
    let mut calls = Vec::new();
    let mut started = false;
    for round in 0..=POD_ROUNDS {
        let pods = match running_pods(cx.cluster, &ns, cx.policy, &step.target).await {
            Ok(pods) => pods,
            Err(e) => return fail(cx, step, p, e),
        };
        let to_call: Vec<&LivePod> = match scope {
            Scope::PerPod => pods.iter().filter(|x| !called.contains(&x.name)).collect(),
            Scope::Once if called.is_empty() => pods.iter().filter(|x| x.ready).take(1).collect(),
            Scope::Once => Vec::new(),
        };
        if !started {
            if to_call.is_empty() && called.is_empty() {
                return fail(
                    cx,
                    step,
                    p,
                    match scope {
                        Scope::PerPod => "no pod of the target is running".into(),
                        Scope::Once => "scope: once, but no pod of the target is Ready".into(),
                    },
                );
            }
            let intended = to_call
                .iter()
                .map(|x| Intended {
                    object: format!("Pod {ns}/{}", x.name),
                    state: "call".into(),
                })
                .collect();
            cx.rec
                .append(started_entry(&cx.plan.plan, cx.digest, step, intended))?;
            started = true;
        }
        if to_call.is_empty() {
            break;
        }
        if round == POD_ROUNDS {
            // Every pod running when the step runs must be called: the step is not done.
            let left = to_call
                .iter()
                .map(|x| esc(&x.name).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            return fail(cx, step, p, format!("new pods of the target kept starting: {left} were not called; run execute again to call them"));
        }
        for pod in to_call {
            let request = match admin_call::request(&ns, &pod.name, call, &token) {
                Ok(r) => r,
                Err(e) => return fail(cx, step, p, e.to_string()),
            };
            let change = ObjectChange {
                op: ChangeOp::Call,
                object: crate::plan::document::ObjectRef {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                    namespace: Some(ns.clone()),
                    name: pod.name.clone(),
                    resource_version: None,
                },
                before: None,
                after: None,
                patch: None,
                dry_run: crate::plan::document::DryRun::NotSupported { why: String::new() },
            };
            let mut entry = write_entry(
                (&cx.plan.plan, cx.digest),
                step.number,
                &change,
                WritePhase::Sending,
            );
            cx.rec.append(Details::StepWrite(entry.clone()))?;
            let headers = [(request.header.clone(), request.token.clone())];
            let body = request.body.clone().unwrap_or_default();
            let content_type = request.body.as_ref().map(|_| "application/json");
            let sent = tokio::time::timeout(
                timeout,
                cx.cluster.call_once(
                    (&request.method, &request.path, content_type),
                    &headers,
                    &body,
                    admin_call::MAX_ANSWER_BYTES as u64,
                ),
            )
            .await;
            let outcome = match sent {
                Ok(Some((status, answer))) => Outcome::of(status, &answer),
                Ok(None) => Outcome::Unknown {
                    error: format!(
                        "no answer came (the connection failed or closed), or it was longer than {} bytes",
                        admin_call::MAX_ANSWER_BYTES
                    ),
                },
                Err(_) => Outcome::Unknown {
                    error: format!("no answer within {} s", timeout.as_secs()),
                },
            };
            entry.phase = WritePhase::Answered;
            let (name, status, sha) = match &outcome {
                Outcome::Done(a) => ("applied", Some(a.status), Some(a.body_sha256)),
                Outcome::Refused(a) => ("refused", Some(a.status), Some(a.body_sha256)),
                Outcome::Unknown { .. } => ("unknown", None, None),
            };
            entry.outcome = Some(name.into());
            entry.status = status;
            entry.answer_sha256 = sha;
            if let Outcome::Unknown { error } = &outcome {
                entry.message = Some(error.clone());
            }
            cx.rec.append(Details::StepWrite(entry))?;
            calls.push(json!({"pod": pod.name, "ready": pod.ready, "outcome": outcome}));
            called.insert(pod.name.clone());
            if matches!(outcome, Outcome::Done(_)) {
                p.report.applied.push(format!("call Pod {ns}/{}", pod.name));
                continue;
            }
            let why = match &outcome {
                Outcome::Refused(a) => format!("answered {}", a.status),
                Outcome::Unknown { error } => format!("outcome unknown: {error}"),
                Outcome::Done(_) => String::new(),
            };
            let text = format!("the call to pod {} {why}", esc(&pod.name));
            if pod.ready {
                failures.push(text);
            } else {
                p.report.warnings.push(format!("{text}; the pod is not Ready: its sessions survive if it becomes Ready again: delete it"));
            }
        }
        if scope == Scope::Once {
            break;
        }
    }
    if !failures.is_empty() {
        let retry = if *idempotent {
            "run execute again to call them again"
        } else {
            "the call is not idempotent: a call whose outcome is unknown is never repeated"
        };
        return fail(cx, step, p, format!("{}; {retry}", failures.join("; ")));
    }
    let result = json!({"calls": calls, "called_before": done_before});
    done(cx, step, p, result)
}
