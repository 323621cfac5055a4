//! The steps of an execution, applied: the block's policy writes, the rotation (the new Secret,
//! each Deployment repointed, each rollout awaited) and the session invalidation (the admin
//! call to each pod through `pods/proxy`). Every write is journaled before it is sent and after
//! (`step_write`); a step's intended state before its first write (`step_started`), its result
//! after (`step_done`, or `step_failed` with what it applied). A step that fails stops the
//! execution; a run that resumes it sends only what is not yet as intended.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::run::{
    detail_matches, done_entry, label, spec_sha256, started_entry, write_entry, ExecuteError,
    History, Recorder, StepOutcome, StepReport, Written,
};
use super::secret_create::{self, Created};
use super::secret_values::SecretValues;
use super::write::{self, Written as Write};
use crate::case::entry::{Details, Intended, StepFailed, WritePhase};
use crate::containment::cluster::DryRunRequest;
use crate::digest::Sha256Digest;
use crate::kube::Cluster;
use crate::plan::document::{ChangeOp, ObjectChange, PlanDoc, Step, StepDetail};
use crate::policy::containment::ContainmentPolicy;
use crate::terminal::escape as esc;

/// What a step needs before anything is sent: for a rotation, the new Secret's name and values.
pub enum Prepared {
    Other,
    Rotate {
        name: String,
        /// `None` when an earlier run created the Secret (its values are not needed again).
        values: Option<SecretValues>,
    },
}

impl Prepared {
    /// The new Secret's name, for a rotation.
    pub fn new_secret(&self) -> Option<&str> {
        match self {
            Prepared::Rotate { name, .. } => Some(name),
            Prepared::Other => None,
        }
    }
}

/// The Secret an earlier run of `step` created, with its values' SHA-256: the name a resumed run
/// uses again. Only a name of the plan's template, journaled as intended by a `step_started`,
/// sent (`sending`) and then answered as created with the values sent, counts; a create with any
/// other record (unknown, taken, refused) is never adopted.
fn created_before(history: &History, step: &Step) -> Option<(String, Value)> {
    let template = planned_secret_name(step)?;
    let writes = history.writes.get(&step.number)?;
    let intended = |object: &str| {
        history.started.get(&step.number).is_some_and(|s| {
            s.iter()
                .any(|st| st.intended.iter().any(|i| i.object == object))
        })
    };
    writes.iter().enumerate().rev().find_map(|(at, w)| {
        let name = w.object.strip_prefix("Secret ")?.split_once('/')?.1;
        let created = w.phase == WritePhase::Answered
            && w.outcome.as_deref() == Some("applied")
            && w.values_sha256.is_some()
            && secret_create::from_template(template, name)
            && intended(&w.object)
            && writes[..at]
                .iter()
                .any(|x| x.object == w.object && x.phase == WritePhase::Sending);
        created.then(|| {
            (
                name.to_owned(),
                serde_json::to_value(&w.values_sha256).unwrap_or(Value::Null),
            )
        })
    })
}

/// The plan's name for the new Secret (`<secret>-<plan>-{{random}}`).
fn planned_secret_name(step: &Step) -> Option<&str> {
    secret_change(step)?
        .after
        .as_ref()?
        .pointer("/metadata/name")?
        .as_str()
}

/// Prepares `step`: for a rotation whose Secret no earlier run created, a fresh name (never one
/// whose create had an unknown outcome) and the values — generated, or read from
/// `secret_values` — checked before anything is sent.
pub fn prepare(
    step: &Step,
    plan: &crate::id::PlanId,
    history: &History,
    secret_values: Option<&Path>,
) -> Result<Prepared, ExecuteError> {
    let StepDetail::RotateSecrets { keys, .. } = &step.detail else {
        return Ok(Prepared::Other);
    };
    if let Some((name, _)) = created_before(history, step) {
        return Ok(Prepared::Rotate { name, values: None });
    }
    let template = planned_secret_name(step).unwrap_or_default();
    let name = secret_create::fresh_name(template).map_err(|message| ExecuteError::Plan {
        plan: plan.clone(),
        message,
    })?;
    let values = SecretValues::for_plan(keys, secret_values)?;
    Ok(Prepared::Rotate {
        name,
        values: Some(values),
    })
}

fn secret_change(step: &Step) -> Option<&ObjectChange> {
    step.changes
        .iter()
        .find(|c| c.object.kind == "Secret" && c.op == ChangeOp::Create)
}

/// What applying a step needs.
pub struct Cx<'a, 'b> {
    pub cluster: &'a Cluster,
    pub rec: &'a mut Recorder<'b>,
    pub plan: &'a PlanDoc,
    pub digest: Sha256Digest,
    pub history: &'a History,
    pub policy: &'a ContainmentPolicy,
    pub rollout_timeout: Duration,
}

/// One step's progress: what it applied, and each object before and after.
pub(super) struct Progress {
    pub(super) report: StepReport,
    pub(super) resumed: bool,
}

impl Progress {
    fn new(cx: &Cx<'_, '_>, step: &Step) -> Self {
        Progress {
            report: StepReport {
                number: step.number,
                kind: step.kind,
                target: step.target.clone(),
                outcome: StepOutcome::Done,
                applied: Vec::new(),
                error: None,
                warnings: Vec::new(),
                result: Value::Null,
                objects: Vec::new(),
            },
            resumed: cx.history.started.contains_key(&step.number),
        }
    }
}

/// Applies `step` (planned, not done): its report, failed or done, each journaled. An error is
/// a journal that cannot be written: the execution stops there.
pub async fn apply(
    cx: &mut Cx<'_, '_>,
    step: &Step,
    prepared: Option<Prepared>,
) -> Result<StepReport, ExecuteError> {
    let mut p = Progress::new(cx, step);
    if !detail_matches(step) {
        return fail(cx, step, p, "the step's detail is not of its kind".into());
    }
    match (&step.detail, prepared) {
        (StepDetail::BlockIps { .. } | StepDetail::ReleaseIps { .. }, _) => {
            block(cx, step, p).await
        }
        (StepDetail::RotateSecrets { .. }, Some(Prepared::Rotate { name, values })) => {
            rotate(cx, step, p, name, values).await
        }
        (StepDetail::InvalidateSessions { .. }, _) => {
            super::sessions::invalidate(cx, step, p).await
        }
        _ => {
            p.report.result = Value::Null;
            fail(cx, step, p, "the step was not prepared".into())
        }
    }
}

/// Journals `step_failed` and returns the failed report.
pub(super) fn fail(
    cx: &mut Cx<'_, '_>,
    step: &Step,
    mut p: Progress,
    error: String,
) -> Result<StepReport, ExecuteError> {
    cx.rec.append(Details::StepFailed(StepFailed {
        applied: p.report.applied.clone(),
        error: error.clone(),
        kind: step.kind,
        number: step.number,
        plan: cx.plan.plan.clone(),
        plan_sha256: cx.digest,
    }))?;
    p.report.outcome = StepOutcome::Failed;
    p.report.error = Some(error);
    Ok(p.report)
}

/// Journals `step_done` with `result` and returns the done report.
pub(super) fn done(
    cx: &mut Cx<'_, '_>,
    step: &Step,
    mut p: Progress,
    result: Value,
) -> Result<StepReport, ExecuteError> {
    cx.rec.append(done_entry(
        &cx.plan.plan,
        cx.digest,
        step,
        result.clone(),
        p.report.warnings.clone(),
    ))?;
    p.report.result = result;
    Ok(p.report)
}

/// The object as it is now: `None` when it does not exist (404); an error when it cannot be
/// read, which a resumed step never takes for "absent" (it would send the write again).
async fn current(cluster: &Cluster, request: &DryRunRequest) -> Result<Option<Value>, String> {
    let path = request.target().object_path();
    let t = request.target();
    let what = format!(
        "{}/{} {}",
        esc(&t.namespace),
        esc(&t.name),
        esc(&t.resource)
    );
    let answer = cluster
        .send(&http::Method::GET, &path, None, &[])
        .await
        .map_err(|e| {
            format!(
                "cannot read {what} to tell whether an earlier run's write landed: {}",
                esc(&e.message)
            )
        })?;
    match answer.status {
        200 => serde_json::from_slice(&answer.body)
            .map(Some)
            .map_err(|e| format!("{what}: the answer is not an object: {e}")),
        404 => Ok(None),
        code => {
            let (reason, message) = crate::containment::cluster::status_text(&answer);
            Err(format!("cannot read {what} to tell whether an earlier run's write landed: {code} {reason}: {message}"))
        }
    }
}

/// Sends one write, journaled before and after: the object as stored, or why not.
async fn send(
    cx: &mut Cx<'_, '_>,
    number: u32,
    change: &ObjectChange,
    request: &DryRunRequest,
) -> Result<Result<Option<Value>, String>, ExecuteError> {
    let plan = &cx.plan.plan;
    cx.rec.append(Details::StepWrite(write_entry(
        (plan, cx.digest),
        number,
        change,
        WritePhase::Sending,
    )))?;
    let written = write::write(cx.cluster, request).await;
    let mut entry = write_entry((plan, cx.digest), number, change, WritePhase::Answered);
    let what = format!("{} {}", change.op.as_str(), esc(&label(&change.object)));
    let result = match &written {
        Write::Applied {
            code,
            resource_version,
            object,
            answer_sha256,
        } => {
            entry.outcome = Some("applied".into());
            entry.status = Some(*code);
            entry.resource_version = resource_version.clone();
            entry.answer_sha256 = Some(*answer_sha256);
            Ok(object.clone())
        }
        Write::Conflict { reason, message } => {
            entry.outcome = Some("conflict".into());
            entry.message = Some(format!("{reason}: {message}"));
            Err(format!("{what}: the object changed since the plan read it ({message}): the plan is stale; propose again"))
        }
        Write::Refused {
            code,
            reason,
            message,
        } => {
            entry.outcome = Some("refused".into());
            entry.status = Some(*code);
            entry.message = Some(format!("{reason}: {message}"));
            Err(format!(
                "{what}: the API server refused it: {code} {reason}: {message}"
            ))
        }
        Write::NotSent { why } => {
            entry.outcome = Some("not_sent".into());
            entry.message = Some(why.clone());
            Err(format!("{what}: not sent: {why}"))
        }
        Write::Unknown { why } => {
            entry.outcome = Some("unknown".into());
            entry.message = Some(why.clone());
            Err(format!("{what}: {why}; run execute again: it finds out from the object whether the write landed, and never sends it blind"))
        }
    };
    cx.rec.append(Details::StepWrite(entry))?;
    Ok(result)
}

/// Step 1: each NetworkPolicy (or CiliumNetworkPolicy) replaced or created as the plan shows it;
/// for a rollback's release, replaced or deleted as its plan shows it.
async fn block(
    cx: &mut Cx<'_, '_>,
    step: &Step,
    mut p: Progress,
) -> Result<StepReport, ExecuteError> {
    let mut result = match &step.detail {
        StepDetail::BlockIps {
            method,
            addresses,
            owners,
        } => json!({"method": method, "addresses": addresses, "owners": owners}),
        StepDetail::ReleaseIps {
            method,
            plan,
            plan_sha256,
            step: lifted,
            released,
            kept,
            owners,
        } => json!({
            "method": method, "plan": plan, "plan_sha256": plan_sha256, "step": lifted,
            "released": released, "kept": kept, "owners": owners,
        }),
        _ => return fail(cx, step, p, "not a block step".into()),
    };
    let intended = step
        .changes
        .iter()
        .map(|c| Intended {
            object: label(&c.object),
            state: c
                .after
                .as_ref()
                .and_then(spec_sha256)
                .map_or_else(|| "delete".to_owned(), |d| d.to_hex()),
        })
        .collect();
    cx.rec
        .append(started_entry(&cx.plan.plan, cx.digest, step, intended))?;
    let mut objects = Vec::new();
    for change in &step.changes {
        let what = format!("{} {}", change.op.as_str(), label(&change.object));
        let Some(request) = crate::propose::request_naming(change, "") else {
            return fail(cx, step, p, format!("{}: cannot be sent", esc(&what)));
        };
        let wanted = change.after.as_ref().and_then(spec_sha256);
        if p.resumed {
            let now = match current(cx.cluster, &request).await {
                Ok(now) => now,
                Err(e) => return fail(cx, step, p, e),
            };
            // A delete an earlier run's write already did.
            if now.is_none() && change.op == ChangeOp::Delete {
                objects.push(json!({"object": label(&change.object), "applied": "before"}));
                p.report.applied.push(what);
                continue;
            }
            if let Some(now) = now {
                if wanted.is_some() && spec_sha256(&now) == wanted {
                    objects.push(json!({"object": label(&change.object), "resource_version": now.pointer("/metadata/resourceVersion"), "applied": "before"}));
                    p.report.objects.push(Written {
                        object: label(&change.object),
                        before: change.before.clone(),
                        after: Some(now),
                    });
                    p.report.applied.push(what);
                    continue;
                }
            }
        }
        match send(cx, step.number, change, &request).await? {
            Ok(stored) => {
                objects.push(json!({"object": label(&change.object), "resource_version": stored.as_ref().and_then(|s| s.pointer("/metadata/resourceVersion"))}));
                p.report.objects.push(Written {
                    object: label(&change.object),
                    before: change.before.clone(),
                    after: stored,
                });
                p.report.applied.push(what);
            }
            Err(e) => return fail(cx, step, p, e),
        }
    }
    result["objects"] = Value::Array(objects);
    done(cx, step, p, result)
}

/// Step 2: the new immutable Secret, each Deployment repointed, each rollout awaited.
async fn rotate(
    cx: &mut Cx<'_, '_>,
    step: &Step,
    mut p: Progress,
    name: String,
    values: Option<SecretValues>,
) -> Result<StepReport, ExecuteError> {
    let StepDetail::RotateSecrets {
        secret,
        deployments,
        ..
    } = &step.detail
    else {
        return fail(cx, step, p, "not a rotation step".into());
    };
    let namespace = step.namespace.clone();
    let secret_label = format!("Secret {namespace}/{name}");
    let patches: Vec<&ObjectChange> = step
        .changes
        .iter()
        .filter(|c| c.op == ChangeOp::Patch && c.object.kind == "Deployment")
        .collect();
    let mut intended = vec![Intended {
        object: secret_label.clone(),
        state: "create".into(),
    }];
    for d in deployments {
        intended.push(Intended {
            object: format!("Deployment {namespace}/{}", d.deployment),
            state: d
                .references
                .iter()
                .map(|r| format!("{}={name}", r.path))
                .collect::<Vec<_>>()
                .join(","),
        });
    }
    cx.rec
        .append(started_entry(&cx.plan.plan, cx.digest, step, intended))?;
    let values_sha256 = match values {
        Some(values) => {
            let Some(change) = secret_change(step) else {
                return fail(cx, step, p, "the plan has no Secret to create".into());
            };
            let Some(planned) = change.after.as_ref() else {
                return fail(cx, step, p, "the plan's Secret has no object".into());
            };
            let mut entry = write_entry(
                (&cx.plan.plan, cx.digest),
                step.number,
                change,
                WritePhase::Sending,
            );
            entry.object = secret_label.clone();
            cx.rec.append(Details::StepWrite(entry.clone()))?;
            let created = secret_create::create(cx.cluster, planned, &name, &values).await;
            entry.phase = WritePhase::Answered;
            let error = match &created {
                Created::Created {
                    resource_version,
                    values_sha256,
                    ..
                } => {
                    entry.outcome = Some("applied".into());
                    entry.resource_version = resource_version.clone();
                    entry.values_sha256 = Some(values_sha256.clone());
                    None
                }
                Created::NameTaken { .. } => {
                    entry.outcome = Some("name_taken".into());
                    Some(format!("{secret_label}: the name is taken (409): a Secret custody did not create is never used; run execute again for a fresh name"))
                }
                Created::Refused {
                    code,
                    reason,
                    message,
                    ..
                } => {
                    entry.outcome = Some("refused".into());
                    entry.status = Some(*code);
                    entry.message = Some(format!("{reason}: {message}"));
                    Some(format!("{secret_label}: the API server refused the create: {code} {reason}: {message}"))
                }
                Created::NotSent { why } => {
                    entry.outcome = Some("not_sent".into());
                    entry.message = Some(why.clone());
                    Some(format!("{secret_label}: not sent: {why}"))
                }
                Created::Unknown { why, .. } => {
                    entry.outcome = Some("unknown".into());
                    entry.message = Some(why.clone());
                    Some(format!("{secret_label}: the create's outcome is unknown ({why}): that Secret is never used; run execute again to create one under a fresh name"))
                }
            };
            cx.rec.append(Details::StepWrite(entry))?;
            if let Some(e) = error {
                return fail(cx, step, p, e);
            }
            p.report.applied.push(format!("create {secret_label}"));
            serde_json::to_value(values.digests()).unwrap_or(Value::Null)
        }
        None => {
            p.report
                .applied
                .push(format!("create {secret_label} (by an earlier run)"));
            created_before(cx.history, step).map_or(Value::Null, |(_, v)| v)
        }
    };
    for change in &patches {
        let what = format!("patch {}", label(&change.object));
        let Some(request) = crate::propose::request_naming(change, &name) else {
            return fail(cx, step, p, format!("{}: cannot be sent", esc(&what)));
        };
        // The Deployment as it is before the patch, for the actions bundle (and, resumed,
        // whether an earlier run's patch landed).
        let before = match current(cx.cluster, &request).await {
            Ok(before) => before,
            Err(e) if p.resumed => return fail(cx, step, p, e),
            Err(_) => None,
        };
        if p.resumed {
            let refs = deployments
                .iter()
                .find(|d| d.deployment == change.object.name)
                .map(|d| d.references.as_slice())
                .unwrap_or_default();
            if let Some(now) = &before {
                let repointed = !refs.is_empty()
                    && refs
                        .iter()
                        .all(|r| now.pointer(&r.path).and_then(Value::as_str) == Some(&name));
                if repointed {
                    p.report.objects.push(Written {
                        object: label(&change.object),
                        before: None,
                        after: before.clone(),
                    });
                    p.report.applied.push(format!("{what} (by an earlier run)"));
                    continue;
                }
            }
        }
        match send(cx, step.number, change, &request).await? {
            Ok(stored) => {
                p.report.objects.push(Written {
                    object: label(&change.object),
                    before,
                    after: stored,
                });
                p.report.applied.push(what);
            }
            Err(e) => return fail(cx, step, p, e),
        }
    }
    let mut rolled = Vec::new();
    for change in &patches {
        let expect: Vec<(String, String)> = deployments
            .iter()
            .find(|d| d.deployment == change.object.name)
            .map(|d| d.references.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|r| (r.path.clone(), name.clone()))
            .collect();
        match super::rollout::rollout(
            cx.cluster,
            (&namespace, &change.object.name),
            &expect,
            cx.rollout_timeout,
        )
        .await
        {
            Ok(status) => rolled.push(json!({"deployment": change.object.name, "status": status})),
            Err(e) => return fail(cx, step, p, e),
        }
    }
    let result = json!({
        "secret": secret,
        "new_secret": name,
        "values_sha256": values_sha256,
        "deployments": rolled,
        "note": "the old Secret is left in place as evidence: revoke its key at the issuer",
    });
    done(cx, step, p, result)
}
