//! `plan show`: what an approver reads before signing. The header (case, plan, digest, proposer,
//! times, cluster, pinned policy, roster and evidence), then every warning and refusal, the
//! addresses blocked and left out, each step with a human diff of what it changes, the quorum
//! collected, and the exact commands to approve or reject.
//!
//! Every string that can come from outside the plan's own code (addresses, paths, rules, names,
//! reasons, messages, object contents) is escaped for a terminal (`terminal::escape`, or
//! `terminal::quote` where a value's end must be clear). The text is deterministic: the same
//! plan and status give the same bytes, so its digest can be shown and compared.

mod diff;
mod steps;

use std::fmt::Write;

use serde::Serialize;

use crate::approval::{Decision, KeyFingerprint, Principal};
use crate::digest::Sha256Digest;
use crate::plan::document::{DryRun, PlanDoc, PlanKind, ProposerClaim, StepStatus};
use crate::policy::containment::StepKind;
use crate::terminal::{escape, quote};

/// The plan's approvals as the quorum check saw them, for `plan show` and `plan status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShowStatus {
    /// The approvals the plan needs.
    pub required: u32,
    /// The approvals that count.
    pub counted: u32,
    /// Every recorded approval, in the order recorded.
    pub approvals: Vec<ShownApproval>,
    /// Quorum is reached (and no reject, and not expired).
    pub reached: bool,
    /// A reject ended the plan (`veto: any_reject`).
    pub rejected: bool,
    /// `not_after` has passed on custody's clock.
    pub expired: bool,
    /// Recorded approvals whose statement cannot be read: number, and why.
    pub unreadable: Vec<(u64, String)>,
    /// Every reason quorum is not reached, in words.
    pub reasons: Vec<String>,
}

impl ShowStatus {
    /// The view of `status`, with each approval's reason and claimed time read from its stored
    /// statement (`stored`).
    pub fn of(
        status: &crate::plan::PlanStatus,
        stored: &[crate::approval::StoredApproval],
    ) -> Self {
        let mut shown = ShowStatus {
            required: status.required,
            counted: status.counted,
            approvals: Vec::new(),
            reached: status.quorum_reached,
            rejected: status.rejected,
            expired: status.expired,
            unreadable: Vec::new(),
            reasons: status.reasons.iter().map(ToString::to_string).collect(),
        };
        for a in &status.approvals {
            let statement = stored
                .iter()
                .find(|s| s.number == a.number)
                .and_then(|s| crate::approval::Statement::parse(&s.statement).ok());
            let (Some(principal), Some(fingerprint), Some(decision), Some(st)) = (
                a.principal.clone(),
                a.key_fingerprint,
                a.decision,
                statement,
            ) else {
                shown.unreadable.push((a.number, a.why.clone()));
                continue;
            };
            shown.approvals.push(ShownApproval {
                approval: a.number,
                principal,
                key_fingerprint: fingerprint,
                decision,
                reason: st.reason,
                signed_at: st.signed_at,
                not_counted: (a.outcome != "counted").then(|| a.why.clone()),
            });
        }
        shown
    }
}

/// One recorded approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShownApproval {
    /// Its number in the plan (`approvals/<n>.json`).
    pub approval: u64,
    pub principal: Principal,
    pub key_fingerprint: KeyFingerprint,
    pub decision: Decision,
    /// The approver's reason, as signed (any text: escaped when shown).
    pub reason: String,
    /// The approver's claimed signing time.
    pub signed_at: String,
    /// None when it counts; else why it does not.
    pub not_counted: Option<String>,
}

/// How the approve and reject commands are written for this reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApproveHint {
    /// The program, `custody`.
    pub program: String,
    /// The key file shown in the command, `~/.ssh/id_ed25519`.
    pub key: String,
    /// The options that name where the approval is recorded, as separate arguments:
    /// `["--store", "s3://bucket/prefix"]` or `["--server", URL, "--token-file", FILE]`.
    pub store_args: Vec<String>,
}

impl Default for ApproveHint {
    fn default() -> Self {
        Self {
            program: "custody".into(),
            key: "~/.ssh/id_ed25519".into(),
            store_args: Vec::new(),
        }
    }
}

impl ApproveHint {
    /// `custody approve CASE PLAN --key FILE [store options]`, each argument escaped for a
    /// terminal, then quoted for a POSIX shell where it needs to be (so it can be pasted).
    pub fn approve_command(&self, doc: &PlanDoc) -> String {
        self.command(doc, &[])
    }

    /// The approve command with `--reject --reason '…'`.
    pub fn reject_command(&self, doc: &PlanDoc) -> String {
        self.command(doc, &["--reject", "--reason", "WHY"])
    }

    fn command(&self, doc: &PlanDoc, extra: &[&str]) -> String {
        // The plan's digest, so the command signs the plan shown and no other (one record has
        // one canonical encoding, so this is the stored plan.json's SHA-256).
        let digest = crate::canonical::to_vec(doc)
            .map(|bytes| Sha256Digest::of(&bytes).to_string())
            .ok();
        let mut args: Vec<&str> = vec![
            &self.program,
            "approve",
            doc.case.as_str(),
            doc.plan.as_str(),
            "--key",
            &self.key,
        ];
        if let Some(d) = &digest {
            args.extend(["--sha256", d.as_str()]);
        }
        args.extend(extra);
        args.extend(self.store_args.iter().map(String::as_str));
        args.iter()
            .map(|a| shell_word(&escape(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `word` as one POSIX shell word: bare when it holds only characters no shell treats
/// specially (a leading `~` is kept bare so it expands), else in single quotes.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    let rest = word.strip_prefix('~').unwrap_or(word);
    if !word.is_empty() && rest.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

pub(crate) fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::BlockIps => "block_ips",
        StepKind::RotateSecrets => "rotate_secrets",
        StepKind::InvalidateSessions => "invalidate_sessions",
        StepKind::ReleaseIps => "release_ips",
    }
}

/// The plan as an approver reads it before signing. `digest` is the SHA-256 of the stored
/// `plan.json`, the bytes approvals sign.
pub fn render_text(
    doc: &PlanDoc,
    digest: &Sha256Digest,
    status: &ShowStatus,
    approve_hint: &ApproveHint,
) -> String {
    let mut out = String::new();
    write_header(&mut out, doc, digest, status);
    write_warnings(&mut out, doc);
    write_addresses(&mut out, doc);
    for step in &doc.steps {
        steps::write_step(&mut out, step, doc.steps.len());
    }
    write_quorum(&mut out, doc, status);
    write_commands(&mut out, doc, digest, status, approve_hint);
    out
}

/// `plan show --json`: the plan itself, its digest and the quorum status.
pub fn render_json(doc: &PlanDoc, digest: &Sha256Digest, status: &ShowStatus) -> serde_json::Value {
    serde_json::json!({
        "plan": doc,
        "sha256": digest,
        "status": status,
    })
}

fn write_header(out: &mut String, doc: &PlanDoc, digest: &Sha256Digest, status: &ShowStatus) {
    let kind = doc.kind.as_str();
    let _ = writeln!(out, "PLAN {} of case {} ({kind})", doc.plan, doc.case);
    match (&doc.rolls_back, doc.kind) {
        (Some(rb), PlanKind::Expiry) => {
            let _ = writeln!(
                out,
                "  expires:    the blocks of plan {} (sha256 {}) whose expiry passed by {}: pre-approved by that plan; no approval is needed",
                rb.plan, rb.plan_sha256, escape(&doc.created_at)
            );
        }
        (Some(rb), _) => {
            let _ = writeln!(
                out,
                "  rolls back: plan {} (sha256 {}): lifts its blocks; Secrets and sessions are not rolled back",
                rb.plan, rb.plan_sha256
            );
        }
        (None, _) => {}
    }
    let _ = writeln!(
        out,
        "  sha256:     {digest}  (plan.json; approvals sign this)"
    );
    let proposer = match &doc.proposer {
        ProposerClaim::Collector { key_id } => {
            format!(
                "the daemon, signed by collector key {}",
                escape(&key_id.to_string())
            )
        }
        ProposerClaim::Person {
            principal,
            key_fingerprint,
        } => format!("{} with key {key_fingerprint}", quote(principal.as_str())),
    };
    let _ = writeln!(out, "  proposer:   {proposer}");
    let _ = writeln!(out, "  created:    {}", escape(&doc.created_at));
    let expired = if status.expired { "  EXPIRED" } else { "" };
    let _ = writeln!(out, "  not after:  {}{expired}", escape(&doc.not_after));
    let _ = writeln!(
        out,
        "  cluster:    kube-system uid {}, server {}",
        quote(&doc.cluster.kube_system_uid),
        quote(&doc.cluster.server)
    );
    let _ = writeln!(
        out,
        "  policy:     containment.yaml sha256 {}",
        doc.policy_sha256
    );
    let _ = writeln!(
        out,
        "  roster:     approvers.allowed_signers sha256 {}",
        doc.roster_sha256
    );
    let _ = writeln!(out, "  evidence:");
    for b in &doc.evidence.bundles {
        let _ = writeln!(
            out,
            "    bundle {}  archive sha256 {}",
            b.bundle, b.archive_sha256
        );
    }
    let head = &doc.evidence.journal_head;
    let _ = writeln!(
        out,
        "    journal head: entry {} sha256 {}",
        head.seq, head.sha256
    );
    out.push('\n');
}

/// Every step's warnings, numbered, then what the API server's dry-runs warned of or refused,
/// then every refusal: before anything else.
fn write_warnings(out: &mut String, doc: &PlanDoc) {
    let mut warnings: Vec<String> = Vec::new();
    for s in &doc.steps {
        let at = format!("[step {} {}]", s.number, kind_name(s.kind));
        warnings.extend(s.warnings.iter().map(|w| format!("{at} {}", escape(w))));
    }
    for s in &doc.steps {
        let at = format!("[step {} {}]", s.number, kind_name(s.kind));
        for (n, c) in s.changes.iter().enumerate() {
            match &c.dry_run {
                DryRun::Accepted { warnings: server } => {
                    warnings.extend(server.iter().map(|w| {
                        format!("{at} change {}: the API server warns: {}", n + 1, escape(w))
                    }));
                }
                DryRun::Refused { code, reason, .. } => warnings.push(format!(
                    "{at} change {}: the API server's dry-run REFUSED it ({code} {})",
                    n + 1,
                    escape(reason)
                )),
                DryRun::NotSupported { .. } | DryRun::NotRun { .. } => {}
            }
        }
    }
    if warnings.is_empty() {
        let _ = writeln!(out, "WARNINGS: none");
    } else {
        let _ = writeln!(out, "WARNINGS ({}): read these first", warnings.len());
        for (n, w) in warnings.iter().enumerate() {
            let _ = writeln!(out, "  {}. {w}", n + 1);
        }
    }
    let refused: Vec<_> = doc
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Refused || !s.refusals.is_empty())
        .collect();
    if !refused.is_empty() {
        let _ = writeln!(out, "REFUSED STEPS ({}): they will not run", refused.len());
        for s in refused {
            let at = format!("[step {} {}]", s.number, kind_name(s.kind));
            for r in &s.refusals {
                let _ = writeln!(out, "  !! {at} {}", escape(r));
            }
            if s.refusals.is_empty() {
                let _ = writeln!(out, "  !! {at} refused");
            }
        }
    }
    out.push('\n');
}

fn write_addresses(out: &mut String, doc: &PlanDoc) {
    let a = &doc.addresses;
    if doc.kind.lifts() {
        // A rollback blocks nothing: its steps name what each releases and keeps.
        return;
    }
    let _ = writeln!(out, "ADDRESSES TO BLOCK ({})", a.block.len());
    for b in &a.block {
        let rules: Vec<String> = b.rules.iter().map(|r| escape(r).into_owned()).collect();
        let forwarded = if b.forwarded {
            "  FROM X-Forwarded-For: its packets come from the proxy, an IP block cannot stop it"
        } else {
            ""
        };
        let _ = writeln!(out, "  {}{forwarded}", escape(&b.address));
        let _ = writeln!(
            out,
            "    rules: {}; {} requests, {} auth failures; first seen {}, last seen {}; block expires {}",
            rules.join(", "),
            b.requests,
            b.auth_failures,
            escape(b.first_seen.as_deref().unwrap_or("-")),
            escape(b.last_seen.as_deref().unwrap_or("-")),
            escape(&b.expires_at),
        );
        if !b.sources.is_empty() {
            let sources: Vec<String> = b.sources.iter().map(|s| escape(s).into_owned()).collect();
            let _ = writeln!(out, "    seen in: {}", sources.join(", "));
        }
    }
    let _ = writeln!(out, "ADDRESSES LEFT OUT ({})", a.left_out.len());
    for l in &a.left_out {
        let reason = serde_json::to_value(l.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}  {reason}: {}",
            quote(&l.address),
            escape(&l.message)
        );
    }
    out.push('\n');
}

fn write_quorum(out: &mut String, doc: &PlanDoc, status: &ShowStatus) {
    let by_kind: Vec<String> = doc
        .quorum
        .by_kind
        .iter()
        .map(|(k, n)| format!("{} {n}", kind_name(*k)))
        .collect();
    let _ = writeln!(
        out,
        "QUORUM: {} approvals required ({}; veto {})",
        status.required,
        by_kind.join(", "),
        escape(&doc.quorum.veto)
    );
    let state = if status.rejected {
        "REJECTED"
    } else if status.expired {
        "EXPIRED"
    } else if status.reached {
        "REACHED"
    } else {
        "not reached"
    };
    let _ = writeln!(
        out,
        "  collected {} of {}: {state}",
        status.counted, status.required
    );
    for a in &status.approvals {
        let counted = match &a.not_counted {
            None => "counted".to_owned(),
            Some(why) => format!("NOT counted: {}", escape(why)),
        };
        let _ = writeln!(
            out,
            "  #{} {} {} {}  signed at {}  {counted}",
            a.approval,
            quote(a.principal.as_str()),
            a.key_fingerprint,
            a.decision,
            escape(&a.signed_at),
        );
        if !a.reason.is_empty() {
            let _ = writeln!(out, "     reason: {}", quote(&a.reason));
        }
    }
    for (n, why) in &status.unreadable {
        let _ = writeln!(out, "  #{n} UNREADABLE, not counted: {}", escape(why));
    }
    if !status.reached {
        for r in &status.reasons {
            let _ = writeln!(out, "  - {}", escape(r));
        }
    }
    out.push('\n');
}

fn write_commands(
    out: &mut String,
    doc: &PlanDoc,
    digest: &Sha256Digest,
    status: &ShowStatus,
    hint: &ApproveHint,
) {
    if status.rejected {
        let _ = writeln!(
            out,
            "The plan was rejected: it can no longer be approved. Propose again."
        );
        return;
    }
    if status.expired {
        let _ = writeln!(
            out,
            "The plan has expired: it can no longer be approved. Propose again."
        );
        return;
    }
    let _ = writeln!(
        out,
        "To approve (your statement signs plan sha256 {digest}):"
    );
    let _ = writeln!(out, "  {}", hint.approve_command(doc));
    let _ = writeln!(out, "To reject:");
    let _ = writeln!(out, "  {}", hint.reject_command(doc));
}

#[cfg(test)]
mod tests;
