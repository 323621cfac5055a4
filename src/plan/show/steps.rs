//! Each step of `plan show`: its kind, target, status and refusals, what it read, each change as
//! a human diff (or the JSON patch) with its dry-run outcome, what is particular to its kind
//! (the block's addresses, the rotated keys and repointed references, the admin call), and the
//! preconditions execution checks. Every string from the plan is escaped here.

use std::fmt::Write;

use crate::plan::document::{
    AdminCall, ChangeOp, DryRun, KeyPlan, ObjectChange, ObjectRef, Preconditions, Step, StepDetail,
    StepStatus,
};
use crate::terminal::{escape, quote};

use super::{diff, kind_name};

/// Appends step `step` (of `total`) to `out`.
pub(super) fn write_step(out: &mut String, step: &Step, total: usize) {
    let status = match step.status {
        StepStatus::Planned => "planned",
        StepStatus::Refused => "REFUSED",
        StepStatus::NothingToDo => "nothing to do",
    };
    let _ = writeln!(
        out,
        "STEP {} of {total}: {}  target {} in namespace {}  [{status}]",
        step.number,
        kind_name(step.kind),
        quote(&step.target),
        quote(&step.namespace),
    );
    for refusal in &step.refusals {
        let _ = writeln!(out, "  !! REFUSED: {}", escape(refusal));
    }
    for warning in &step.warnings {
        let _ = writeln!(out, "  ! warning: {}", escape(warning));
    }
    write_detail(out, &step.detail);
    if !step.read.is_empty() {
        let _ = writeln!(out, "  Read:");
        for r in &step.read {
            let _ = writeln!(out, "    {}", object_text(r));
        }
    }
    for (n, change) in step.changes.iter().enumerate() {
        write_change(out, n + 1, change);
    }
    write_preconditions(out, &step.preconditions);
    out.push('\n');
}

/// `networking.k8s.io/v1 NetworkPolicy shop/allow-web (resourceVersion 7)`.
pub(super) fn object_text(r: &ObjectRef) -> String {
    let mut s = format!("{} {} ", escape(&r.api_version), escape(&r.kind));
    if let Some(ns) = &r.namespace {
        let _ = write!(s, "{}/", escape(ns));
    }
    s.push_str(&escape(&r.name));
    if let Some(rv) = &r.resource_version {
        let _ = write!(s, " (resourceVersion {})", quote(rv));
    }
    s
}

fn write_detail(out: &mut String, detail: &StepDetail) {
    match detail {
        StepDetail::BlockIps {
            method,
            addresses,
            owners,
        } => {
            let _ = writeln!(out, "  Method: {}", escape(method));
            let _ = writeln!(out, "  Blocks {} address(es):", addresses.len());
            for a in addresses {
                let _ = writeln!(out, "    {}", escape(a));
            }
            write_owners(out, owners);
        }
        StepDetail::ReleaseIps {
            method,
            plan,
            plan_sha256,
            step,
            released,
            kept,
            owners,
        } => {
            let _ = writeln!(out, "  Method: {}", escape(method));
            let _ = writeln!(
                out,
                "  Lifts step {step} of plan {plan} (SHA-256 {plan_sha256})"
            );
            let _ = writeln!(
                out,
                "  Releases {} address(es) (refused no longer):",
                released.len()
            );
            for a in released {
                let _ = writeln!(out, "    {}", escape(a));
            }
            if !kept.is_empty() {
                let _ = writeln!(
                    out,
                    "  Keeps {} address(es) refused (another block holds them):",
                    kept.len()
                );
                for a in kept {
                    let _ = writeln!(out, "    {}", escape(a));
                }
            }
            write_owners(out, owners);
        }
        StepDetail::RotateSecrets {
            secret,
            new_name_prefix,
            keys,
            deployments,
        } => write_rotate(out, secret, new_name_prefix, keys, deployments),
        StepDetail::InvalidateSessions {
            call,
            scope,
            idempotent,
            timeout_seconds,
            pods,
        } => {
            write_call(out, call);
            write_sessions(out, scope, *idempotent, *timeout_seconds, pods);
        }
    }
}

fn write_owners(
    out: &mut String,
    owners: &std::collections::BTreeMap<String, Vec<crate::containment::netpol::Owner>>,
) {
    if owners.is_empty() {
        return;
    }
    let _ = writeln!(out, "  Owners of the custody block policy's addresses:");
    for (address, owners) in owners {
        for o in owners {
            let _ = writeln!(
                out,
                "    {}  case {} plan {} until {}",
                escape(address),
                o.case,
                o.plan,
                crate::timefmt::rfc3339(o.expires_at),
            );
        }
    }
}

fn write_sessions(
    out: &mut String,
    scope: &str,
    idempotent: bool,
    timeout_seconds: u64,
    pods: &[crate::plan::document::PodState],
) {
    let _ = writeln!(
        out,
        "  Scope: {}  idempotent: {}  timeout: {timeout_seconds}s",
        escape(scope),
        if idempotent {
            "yes"
        } else {
            "NO (an unknown outcome is never repeated)"
        },
    );
    let _ = writeln!(
        out,
        "  Pods as read ({}); the step calls the pods running when it runs:",
        pods.len()
    );
    for p in pods {
        let _ = writeln!(
            out,
            "    {}  {}",
            escape(&p.name),
            if p.ready {
                "ready"
            } else {
                "NOT ready (called too; a failure is a warning)"
            },
        );
    }
    let _ = writeln!(
        out,
        "  No server-side dry-run: pods/proxy does not support it."
    );
}

fn write_rotate(
    out: &mut String,
    secret: &str,
    prefix: &str,
    keys: &std::collections::BTreeMap<String, KeyPlan>,
    deployments: &[crate::plan::document::Repoint],
) {
    let new_name = format!("{}-<random>", escape(prefix));
    let _ = writeln!(
        out,
        "  Secret {} is replaced by a new immutable Secret {new_name} (the random part is chosen and journaled at execution).",
        quote(secret)
    );
    let _ = writeln!(out, "  Keys (values are never shown or stored):");
    for (key, plan) in keys {
        let source = match plan {
            KeyPlan::Generate { bytes, encoding } => {
                format!("generated: {bytes} random bytes, {}", escape(encoding))
            }
            KeyPlan::Provided => "provided at execution (--secret-values)".into(),
        };
        let _ = writeln!(out, "    {}  {source}", quote(key));
    }
    for d in deployments {
        let _ = writeln!(out, "  Deployment {} repointed:", quote(&d.deployment));
        for r in &d.references {
            let key = r
                .key
                .as_deref()
                .map(|k| format!("  (key {})", quote(k)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {}: {} -> {new_name}{key}",
                escape(&r.path),
                quote(&r.value)
            );
        }
    }
    let _ = writeln!(
        out,
        "  The old Secret stays (it is evidence): revoke the key at its issuer."
    );
}

fn write_call(out: &mut String, call: &AdminCall) {
    let _ = writeln!(
        out,
        "  Call: {} port {} path {}",
        escape(&call.method),
        call.port,
        quote(&call.path)
    );
    let _ = writeln!(
        out,
        "  Token: from Secret {} key {}, sent in header {} (never shown)",
        quote(&call.token_secret),
        quote(&call.token_key),
        quote(&call.header)
    );
    if let Some(body) = &call.body {
        let _ = writeln!(out, "  Body: {}", quote(body));
    }
}

fn write_change(out: &mut String, n: usize, change: &ObjectChange) {
    let op = match change.op {
        ChangeOp::Create => "create",
        ChangeOp::Replace => "replace",
        ChangeOp::Patch => "patch",
        ChangeOp::Delete => "delete",
        ChangeOp::Call => "call",
    };
    let _ = writeln!(out, "  Change {n}: {op} {}", object_text(&change.object));
    write_dry_run(out, &change.dry_run);
    if let Some(patch) = &change.patch {
        let _ = writeln!(out, "    JSON patch:");
        for line in patch_lines(patch) {
            let _ = writeln!(out, "      {line}");
        }
    }
    if change.before.is_some() || change.after.is_some() {
        let before = change
            .before
            .as_ref()
            .map(diff::object_lines)
            .unwrap_or_default();
        let after = change
            .after
            .as_ref()
            .map(diff::object_lines)
            .unwrap_or_default();
        let lines = diff::unified(&before, &after);
        let _ = writeln!(
            out,
            "    --- {}",
            if change.before.is_some() {
                "before"
            } else {
                "(none)"
            }
        );
        let _ = writeln!(
            out,
            "    +++ {}",
            if change.after.is_some() {
                "after"
            } else {
                "(deleted)"
            }
        );
        if lines.is_empty() {
            let _ = writeln!(out, "    (no difference in the shown fields)");
        }
        for line in lines {
            let _ = writeln!(out, "    {line}");
        }
    }
}

fn write_dry_run(out: &mut String, dry_run: &DryRun) {
    match dry_run {
        DryRun::Accepted { warnings } => {
            let _ = writeln!(out, "    Dry-run (dryRun=All): accepted");
            for w in warnings {
                let _ = writeln!(out, "      ! server warning: {}", escape(w));
            }
        }
        DryRun::Refused {
            code,
            reason,
            message,
        } => {
            let _ = writeln!(
                out,
                "    !! Dry-run (dryRun=All): REFUSED {code} {}: {}",
                escape(reason),
                escape(message)
            );
        }
        DryRun::NotSupported { why } => {
            let _ = writeln!(out, "    Dry-run: not supported: {}", escape(why));
        }
        DryRun::NotRun { why } => {
            let _ = writeln!(out, "    Dry-run: not run: {}", escape(why));
        }
    }
}

/// A JSON patch, one operation a line: `test /spec/… = "web-secret"`. What is not a list of
/// operations is shown as its lines.
fn patch_lines(patch: &serde_json::Value) -> Vec<String> {
    let Some(ops) = patch.as_array() else {
        return diff::object_lines(patch);
    };
    ops.iter()
        .map(|op| {
            let field = |name: &str| op.get(name).and_then(|v| v.as_str());
            let mut line = escape(field("op").unwrap_or("?")).into_owned();
            if let Some(from) = field("from") {
                let _ = write!(line, " {} ->", quote(from));
            }
            let _ = write!(line, " {}", quote(field("path").unwrap_or("")));
            if let Some(value) = op.get("value") {
                let _ = write!(line, " = {}", diff::scalar_text(value));
            }
            line
        })
        .collect()
}

fn write_preconditions(out: &mut String, p: &Preconditions) {
    if p == &Preconditions::default() {
        return;
    }
    let _ = writeln!(out, "  Execution first checks:");
    for (name, rv) in &p.network_policies {
        let _ = writeln!(
            out,
            "    NetworkPolicy {} still at resourceVersion {}",
            quote(name),
            quote(rv)
        );
    }
    if !p.selecting.is_empty() {
        let names: Vec<String> = p.selecting.iter().map(|s| quote(s)).collect();
        let _ = writeln!(
            out,
            "    the policies selecting the target pods are exactly: {}",
            names.join(", ")
        );
    }
    for (policy, rv) in &p.other_engine_policies {
        let _ = writeln!(
            out,
            "    {} (another engine's policy) still at resourceVersion {}",
            quote(policy),
            quote(rv)
        );
    }
    for (deployment, refs) in &p.deployment_refs {
        for (path, value) in refs {
            let _ = writeln!(
                out,
                "    Deployment {} {} is {}",
                quote(deployment),
                escape(path),
                quote(value)
            );
        }
    }
}
