//! What a notification says: one readable Slack-compatible `text` and the event's details as
//! JSON under `custody`, in one body. Addresses and the plan summary come from attackers' logs:
//! in `text` they are escaped for Slack's mrkdwn (`&`, `<`, `>` as entities, so no `<!channel>`
//! or link can be injected) and for a terminal (control characters); in `custody` serde's JSON
//! escaping is enough.

use serde::Serialize;

use crate::approval::Principal;
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId, PlanId};
use crate::terminal;

/// Suspicious clients named in a sealed case's text; the rest are counted.
const MAX_LISTED: usize = 20;
/// The plan summary's share of the text (Slack accepts 40 000 characters in all).
const MAX_SUMMARY_CHARS: usize = 30_000;

/// What the daemon tells the security team about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A case's evidence is sealed and stored.
    CaseSealed {
        case: CaseId,
        bundle: BundleId,
        /// The suspicious clients the analysis found (as the logs wrote them).
        suspicious: Vec<String>,
    },
    /// A plan was proposed and waits for approvals.
    PlanAwaitingApproval {
        case: CaseId,
        plan: PlanId,
        /// `plan show`'s text.
        summary_text: String,
        /// The command that approves it.
        approve_command: String,
    },
    QuorumReached {
        case: CaseId,
        plan: PlanId,
    },
    /// A reject ended the plan.
    PlanRejected {
        case: CaseId,
        plan: PlanId,
        by: Principal,
    },
    /// A plan passed its `not_after` without being executed (journaled as `plan_expired`).
    PlanExpired {
        case: CaseId,
        plan: PlanId,
        plan_sha256: Sha256Digest,
        not_after: String,
        /// The approvals it needed, and those that counted by `not_after`.
        required: u32,
        counted: u32,
        quorum_reached: bool,
    },
}

impl Event {
    /// The event's name in the body and the logs: `case_sealed`, `plan_awaiting_approval`, …
    pub fn name(&self) -> &'static str {
        match self {
            Event::CaseSealed { .. } => "case_sealed",
            Event::PlanAwaitingApproval { .. } => "plan_awaiting_approval",
            Event::QuorumReached { .. } => "quorum_reached",
            Event::PlanRejected { .. } => "plan_rejected",
            Event::PlanExpired { .. } => "plan_expired",
        }
    }

    /// The case the event is about.
    pub fn case(&self) -> &CaseId {
        match self {
            Event::CaseSealed { case, .. }
            | Event::PlanAwaitingApproval { case, .. }
            | Event::QuorumReached { case, .. }
            | Event::PlanRejected { case, .. }
            | Event::PlanExpired { case, .. } => case,
        }
    }
}

/// `s` for one line of Slack mrkdwn: `&`, `<`, `>` as entities and every control character
/// escaped (newlines too: one field never starts a line of its own).
pub fn mrkdwn(s: &str) -> String {
    entities(&controls_escaped(s))
}

/// `s` with each character a terminal would act on escaped as `terminal::escape` writes it; a
/// backslash is kept (the summary is `plan show`'s text, escaped already, and doubling its
/// backslashes would only make it harder to read).
fn controls_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut buf = [0u8; 4];
    for c in s.chars() {
        if c == '\\' {
            out.push(c);
        } else {
            out.push_str(&terminal::escape(c.encode_utf8(&mut buf)));
        }
    }
    out
}

/// `s` for a Slack code block: as [`mrkdwn`], but its lines kept, and a run of three backticks
/// broken so the block cannot be closed from inside.
pub fn mrkdwn_block(s: &str) -> String {
    let lines: Vec<String> = s.split('\n').map(mrkdwn).collect();
    lines.join("\n").replace("```", "`\u{200b}``")
}

fn entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The first `max` characters of `s`, and a note when there were more.
fn truncated(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}\n… (truncated: run custody plan show)", &s[..at]),
    }
}

/// The readable message.
pub fn text(event: &Event) -> String {
    match event {
        Event::CaseSealed {
            case,
            bundle,
            suspicious,
        } => {
            let mut listed: Vec<String> = suspicious
                .iter()
                .take(MAX_LISTED)
                .map(|s| mrkdwn(s))
                .collect();
            if suspicious.len() > MAX_LISTED {
                listed.push(format!("and {} more", suspicious.len() - MAX_LISTED));
            }
            let clients = if suspicious.is_empty() {
                "no suspicious clients".to_owned()
            } else {
                format!(
                    "{} suspicious client(s): {}",
                    suspicious.len(),
                    listed.join(", ")
                )
            };
            format!("custody: case {case} sealed as bundle {bundle}; {clients}.")
        }
        Event::PlanAwaitingApproval {
            case,
            plan,
            summary_text,
            approve_command,
        } => format!(
            "custody: plan {plan} of case {case} awaits approval.\n```\n{}\n```\nTo approve: `{}`",
            truncated(&mrkdwn_block(summary_text), MAX_SUMMARY_CHARS),
            mrkdwn(approve_command).replace('`', "'"),
        ),
        Event::QuorumReached { case, plan } => {
            format!("custody: plan {plan} of case {case} has reached its quorum.")
        }
        Event::PlanRejected { case, plan, by } => format!(
            "custody: plan {plan} of case {case} was rejected by {}.",
            mrkdwn(by.as_str())
        ),
        Event::PlanExpired {
            case,
            plan,
            not_after,
            required,
            counted,
            quorum_reached,
            ..
        } => {
            let quorum = if *quorum_reached {
                "it had reached its quorum"
            } else {
                "it had not reached its quorum"
            };
            format!(
                "custody: plan {plan} of case {case} expired at {} without being executed; {counted} of {required} approvals counted, {quorum}. Propose again if containment is still needed.",
                mrkdwn(not_after)
            )
        }
    }
}

/// The body POSTed: `{"text": …, "custody": {"event": …, …}}`.
pub fn body(event: &Event) -> Vec<u8> {
    let value = serde_json::json!({ "text": text(event), "custody": event });
    // A Value of strings and arrays always serializes.
    serde_json::to_vec(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> CaseId {
        CaseId::new("case-1").unwrap()
    }

    #[test]
    fn attacker_text_cannot_format_mention_or_control_the_message() {
        let e = Event::CaseSealed {
            case: case(),
            bundle: BundleId::new("logs-1").unwrap(),
            suspicious: vec![
                "<!channel> & <https://evil.example|click>".into(),
                "203.0.113.9\u{1b}[2J\r\n\u{202e}\u{7}\u{0}".into(),
            ],
        };
        let t = text(&e);
        assert_eq!(
            t,
            "custody: case case-1 sealed as bundle logs-1; 2 suspicious client(s): \
             &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;, \
             203.0.113.9\\x1b[2J\\x0d\\x0a\\u{202e}\\x07\\x00."
        );
        assert!(!t.chars().any(|c| c.is_control()));
    }

    #[test]
    fn the_body_carries_the_text_and_the_details() {
        let e = Event::PlanRejected {
            case: case(),
            plan: PlanId::new("plan-1").unwrap(),
            by: Principal::new("bob@example.org").unwrap(),
        };
        let v: serde_json::Value = serde_json::from_slice(&body(&e)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "text": "custody: plan plan-1 of case case-1 was rejected by bob@example.org.",
                "custody": {"event": "plan_rejected", "case": "case-1", "plan": "plan-1", "by": "bob@example.org"},
            })
        );
        assert_eq!(e.name(), "plan_rejected");
    }

    #[test]
    fn an_expiry_says_when_and_how_far_its_quorum_came() {
        let e = Event::PlanExpired {
            case: case(),
            plan: PlanId::new("plan-1").unwrap(),
            plan_sha256: Sha256Digest::of(b"plan"),
            not_after: "2026-12-02T03:00:00Z".into(),
            required: 2,
            counted: 1,
            quorum_reached: false,
        };
        let v: serde_json::Value = serde_json::from_slice(&body(&e)).unwrap();
        assert_eq!(
            v["text"],
            "custody: plan plan-1 of case case-1 expired at 2026-12-02T03:00:00Z without being executed; 1 of 2 approvals counted, it had not reached its quorum. Propose again if containment is still needed."
        );
        assert_eq!(
            v["custody"],
            serde_json::json!({"event": "plan_expired", "case": "case-1", "plan": "plan-1",
                "plan_sha256": Sha256Digest::of(b"plan").to_hex(), "not_after": "2026-12-02T03:00:00Z",
                "required": 2, "counted": 1, "quorum_reached": false})
        );
        assert_eq!(e.name(), "plan_expired");
    }

    #[test]
    fn a_summary_keeps_its_lines_but_cannot_close_its_code_block() {
        let e = Event::PlanAwaitingApproval {
            case: case(),
            plan: PlanId::new("plan-1").unwrap(),
            summary_text: "PLAN plan-1\n  path \"/x```<!here>\u{1b}\"\n".into(),
            approve_command: "custody approve case-1 plan-1 --key ~/.ssh/id_ed25519 `x`".into(),
        };
        let t = text(&e);
        assert_eq!(t.matches("```").count(), 2, "{t}");
        assert!(
            t.contains("PLAN plan-1\n  path \"/x`\u{200b}``&lt;!here&gt;\\x1b\"\n"),
            "{t}"
        );
        assert!(
            t.ends_with("To approve: `custody approve case-1 plan-1 --key ~/.ssh/id_ed25519 'x'`")
        );
        let long = Event::PlanAwaitingApproval {
            case: case(),
            plan: PlanId::new("plan-1").unwrap(),
            summary_text: "é".repeat(MAX_SUMMARY_CHARS + 5),
            approve_command: String::new(),
        };
        assert!(text(&long).contains("(truncated: run custody plan show)"));
    }

    #[test]
    fn many_clients_are_counted_not_listed() {
        let e = Event::CaseSealed {
            case: case(),
            bundle: BundleId::new("logs-1").unwrap(),
            suspicious: (0..25).map(|n| format!("198.51.100.{n}")).collect(),
        };
        let t = text(&e);
        assert!(
            t.contains("25 suspicious client(s)") && t.contains("and 5 more"),
            "{t}"
        );
        assert!(!t.contains("198.51.100.20"));
    }
}
