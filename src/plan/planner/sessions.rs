//! Step 3, `invalidate_sessions`: the gateway's admin call through `pods/proxy`, to every pod of
//! the target whose containers have started (`per_pod`) or to one (`once`). There is no
//! server-side dry-run of a proxied call; the plan says so. The token is read at execution from
//! the one Secret key the policy names; it is never in the plan.

use serde_json::json;

use super::super::document::{
    AdminCall, ChangeOp, DryRun, ObjectChange, ObjectRef, PodState, Preconditions, Step,
    StepDetail, StepStatus,
};
use super::{is_ready, is_running, labels_of, Ctx};
use crate::policy::containment::{InvalidateSessions, Scope, StepKind};

pub(super) fn step(ctx: &Ctx<'_>, number: u32, call: &InvalidateSessions) -> Step {
    let mut pods: Vec<PodState> = ctx
        .ns
        .pods
        .iter()
        .filter(|p| is_running(p) && ctx.target.pod_selector.matches(&labels_of(p)))
        .map(|p| PodState {
            name: p.metadata.name.clone().unwrap_or_default(),
            ready: is_ready(p),
            resource_version: p.metadata.resource_version.clone(),
        })
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let addresses: Vec<std::net::IpAddr> = ctx.addresses.iter().map(|(ip, _)| *ip).collect();
    let admin = AdminCall {
        method: call.method.as_str().to_owned(),
        port: call.port,
        path: call.path.as_str().to_owned(),
        body: call.render_body(&addresses),
        header: call.header.to_string(),
        token_secret: call.token.secret.to_string(),
        token_key: call.token.key.to_string(),
    };
    let scope = match call.scope {
        Scope::PerPod => "per_pod",
        Scope::Once => "once",
    };
    let mut warnings = vec![
        "a pods/proxy call has no server-side dry-run: this step is checked only when it runs".to_owned(),
        "the pods are listed again when the step runs and afterwards: a rotation replaces the pods this plan saw, and new ones are called too".to_owned(),
    ];
    for p in pods.iter().filter(|p| !p.ready) {
        warnings.push(format!("pod {} is running but not Ready: it is called too, and a failure there is only a warning (its sessions survive if it becomes Ready: delete it)", p.name));
    }
    if !call.idempotent {
        warnings.push("the call is not idempotent: a call whose outcome is unknown is reported, never repeated".to_owned());
    }
    let mut refusals = Vec::new();
    if pods.is_empty() {
        refusals.push("no pod of the target is running".to_owned());
    }
    let called: Vec<&PodState> = match call.scope {
        Scope::PerPod => pods.iter().collect(),
        Scope::Once => pods.iter().filter(|p| p.ready).take(1).collect(),
    };
    if call.scope == Scope::Once && called.is_empty() && !pods.is_empty() {
        refusals.push("scope: once, but no pod of the target is Ready".to_owned());
    }
    let ns = ctx.target.namespace.to_string();
    let changes = if refusals.is_empty() {
        called
            .iter()
            .map(|p| ObjectChange {
                op: ChangeOp::Call,
                object: ObjectRef {
                    api_version: "v1".to_owned(),
                    kind: "Pod".to_owned(),
                    namespace: Some(ns.clone()),
                    name: p.name.clone(),
                    resource_version: p.resource_version.clone(),
                },
                before: None,
                after: Some(json!({
                    "request": format!("{} /api/v1/namespaces/{ns}/pods/{}:{}/proxy{}", admin.method, p.name, admin.port, admin.path),
                    "header": admin.header,
                    "body": admin.body,
                })),
                patch: None,
                dry_run: DryRun::NotSupported {
                    why: "pods/proxy does not support dryRun".to_owned(),
                },
            })
            .collect()
    } else {
        Vec::new()
    };
    Step {
        number,
        kind: StepKind::InvalidateSessions,
        target: ctx.target.name.to_string(),
        namespace: ns,
        status: if refusals.is_empty() {
            StepStatus::Planned
        } else {
            StepStatus::Refused
        },
        refusals,
        warnings,
        read: ctx
            .ns
            .pods
            .iter()
            .map(|p| super::block::object_ref("v1", "Pod", &p.metadata))
            .collect(),
        changes,
        preconditions: Preconditions::default(),
        detail: StepDetail::InvalidateSessions {
            call: admin,
            scope: scope.to_owned(),
            idempotent: call.idempotent,
            timeout_seconds: call.timeout.as_secs(),
            pods,
        },
    }
}
