//! The quorum check, in one place, by CONTAINMENT.md's "Approvals" rules: an approval counts only
//! if its statement is canonical and verifies (namespace `custody-approval`), names this case,
//! plan and plan digest, is journaled with these exact bytes, and its key speaks for its principal
//! in both the roster pinned in the plan and the roster in force now; distinct principals and
//! distinct keys count once each; the proposer's principal and key never count; any reject
//! vetoes; the plan must not be past `not_after`, and custody's clock must agree with the API
//! server's `Date` within 60 s.
//!
//! `evaluate` returns every reason the plan is not approved, never just the first, and what it
//! made of each approval. `Approved` has private fields: only a successful `evaluate` makes one,
//! so whatever takes an `Approved` runs only approved plans.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::roster::{NotAllowed, Roster};
use super::statement::Statement;
use super::{sshsig, ApprovalRecorded, Decision, KeyFingerprint, Principal};
use super::{APPROVAL_NAMESPACE, PROPOSAL_NAMESPACE};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, KeyId, PlanId};

/// How far custody's clock may be from the API server's `Date`.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 60;

mod reason;

pub use reason::{NotCounted, Outcome, Reason};

/// Who proposed the plan, proven by the plan's signature: the collector key (the daemon's
/// proposals, `plan.json.sig`) or a person's SSH key (`plan.json.sshsig`). There is no other way
/// to make one, so a proposer named without a signature does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposer {
    kind: ProposerKind,
    plan_sha256: Sha256Digest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ProposerKind {
    Collector(KeyId),
    Person {
        principal: Principal,
        fingerprint: KeyFingerprint,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ProposerError {
    #[error("plan.json.sig is not the collector key {0}'s signature over plan.json")]
    CollectorSignature(KeyId),
    #[error("plan.json.sshsig: {0}")]
    Signature(#[from] sshsig::SigError),
    #[error("plan.json.sshsig: {0}")]
    Roster(#[from] NotAllowed),
}

impl Proposer {
    /// The daemon's proposal: `signature` (raw Ed25519, as seals) by `key` over `plan_json`.
    pub fn collector(
        key: &crate::keys::PublicKey,
        plan_json: &[u8],
        signature: &[u8],
    ) -> Result<Proposer, ProposerError> {
        if !key.verify(plan_json, signature) {
            return Err(ProposerError::CollectorSignature(key.id().clone()));
        }
        Ok(Proposer {
            kind: ProposerKind::Collector(key.id().clone()),
            plan_sha256: Sha256Digest::of(plan_json),
        })
    }

    /// A person's proposal: the SSHSIG `sshsig` (namespace `custody-proposal`) over
    /// `plan_json`, by a key that speaks for `principal` in the pinned roster at `created_at`.
    pub fn person(
        pinned_roster: &Roster,
        plan_json: &[u8],
        sshsig: &[u8],
        principal: &Principal,
        created_at: OffsetDateTime,
    ) -> Result<Proposer, ProposerError> {
        let v = sshsig::verify(sshsig, PROPOSAL_NAMESPACE, plan_json)?;
        pinned_roster.check(&v.fingerprint, principal, PROPOSAL_NAMESPACE, created_at)?;
        Ok(Proposer {
            kind: ProposerKind::Person {
                principal: principal.clone(),
                fingerprint: v.fingerprint,
            },
            plan_sha256: Sha256Digest::of(plan_json),
        })
    }

    /// The collector key, for a daemon's proposal.
    pub fn collector_key(&self) -> Option<&KeyId> {
        match &self.kind {
            ProposerKind::Collector(id) => Some(id),
            ProposerKind::Person { .. } => None,
        }
    }

    /// The principal and key, for a person's proposal.
    pub fn person_key(&self) -> Option<(&Principal, &KeyFingerprint)> {
        match &self.kind {
            ProposerKind::Person {
                principal,
                fingerprint,
            } => Some((principal, fingerprint)),
            ProposerKind::Collector(_) => None,
        }
    }

    /// The digest of the plan bytes the proposer's signature covers.
    pub fn plan_sha256(&self) -> Sha256Digest {
        self.plan_sha256
    }
}

/// What the plan says about itself, as the quorum needs it.
#[derive(Clone, Debug)]
pub struct PlanFacts<'a> {
    pub case: &'a CaseId,
    pub plan: &'a PlanId,
    /// The SHA-256 of `plan.json`.
    pub plan_sha256: Sha256Digest,
    /// The SHA-256 of the roster the plan pins (`roster_sha256`).
    pub roster_sha256: Sha256Digest,
    /// The approvals the plan says it needs (the largest among its steps).
    pub required: u32,
    /// The largest need among the plan's steps by the plan's own `by_kind` (`None` when a step's
    /// kind has none): it must equal `required`.
    pub steps_required: Option<u32>,
    /// The approvals the containment policy in force demands for the plan's steps: the plan
    /// needs at least as many, whatever it says.
    pub policy_required: u32,
    pub proposer: &'a Proposer,
    pub created_at: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The longest lifetime the policy in force allows a plan (`plan.not_after`).
    pub max_lifetime: time::Duration,
    /// When the journal recorded the plan's proposal (`None` when not known here: `verify`
    /// reports an unjournaled plan itself).
    pub journaled_at: Option<OffsetDateTime>,
}

/// How far a plan's `created_at` may be from when its proposal was journaled: before it, by a
/// draft's lifetime (built, then signed by a person) and the clock skew allowed; after it, by
/// the clock skew.
const MAX_PROPOSAL_DELAY: time::Duration =
    time::Duration::seconds(MAX_PROPOSAL_AGE_SECONDS + MAX_CLOCK_SKEW_SECONDS);

/// The longest a plan may wait between being built and being journaled (a draft's lifetime:
/// read, dry-run, shown and signed): a plan older than this is never stored.
pub const MAX_PROPOSAL_AGE_SECONDS: i64 = 10 * 60;

/// One approval as stored: `approvals/<number>.json` and its `.sig`, bytes as read.
#[derive(Clone, Debug)]
pub struct StoredApproval {
    pub number: u64,
    pub statement: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Everything the quorum is decided on.
#[derive(Clone, Debug)]
pub struct QuorumInput<'a> {
    pub plan: PlanFacts<'a>,
    /// The roster stored beside the plan (`approvers.allowed_signers`).
    pub pinned_roster: &'a Roster,
    /// The roster in force now (`policies/approvers.allowed_signers`).
    pub current_roster: &'a Roster,
    pub stored: &'a [StoredApproval],
    /// The case journal's `approval_recorded` details (of any plan: others are ignored).
    pub journaled: &'a [ApprovalRecorded],
    /// custody's clock.
    pub now: OffsetDateTime,
    /// The API server's `Date` when executing; `None` when only showing the state.
    pub api_server_date: Option<OffsetDateTime>,
}

/// What the quorum made of one approval.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tallied {
    pub number: u64,
    /// From the statement, when it could be read.
    pub principal: Option<Principal>,
    /// The key that signed, when the signature verified.
    pub fingerprint: Option<KeyFingerprint>,
    pub decision: Option<Decision>,
    pub outcome: Outcome,
}

/// Every approval of the plan and what it counted for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub approvals: Vec<Tallied>,
    pub counted: u32,
    pub required: u32,
}

/// A plan that passed the quorum check at `evaluated_at`. Only `evaluate` makes one (and, for
/// an expiry plan, which has no quorum of its own, `pre_approved`).
#[derive(Debug)]
pub struct Approved {
    case: CaseId,
    plan: PlanId,
    plan_sha256: Sha256Digest,
    tally: Tally,
    evaluated_at: OffsetDateTime,
}

impl Approved {
    pub fn case(&self) -> &CaseId {
        &self.case
    }
    pub fn plan(&self) -> &PlanId {
        &self.plan
    }
    /// The digest of the approved `plan.json`: execute exactly these bytes.
    pub fn plan_sha256(&self) -> Sha256Digest {
        self.plan_sha256
    }
    pub fn tally(&self) -> &Tally {
        &self.tally
    }
    pub fn evaluated_at(&self) -> OffsetDateTime {
        self.evaluated_at
    }

    /// An expiry plan's: it needs no approvals, being pre-approved by the plan that set the
    /// expiry. It takes the proof that `plan::block_expiry` found the expiry lawful, which
    /// only that module makes (`plan::Plan::expiry_check` is its caller).
    pub(crate) fn pre_approved(lawful: ExpiryLawful, evaluated_at: OffsetDateTime) -> Self {
        Approved {
            case: lawful.case,
            plan: lawful.plan,
            plan_sha256: lawful.plan_sha256,
            tally: Tally {
                approvals: Vec::new(),
                counted: 0,
                required: 0,
            },
            evaluated_at,
        }
    }
}

/// That one expiry plan (by case, id and digest) was found lawful (`plan::block_expiry`): what
/// `Approved::pre_approved` takes, bound to that plan.
pub struct ExpiryLawful {
    case: CaseId,
    plan: PlanId,
    plan_sha256: Sha256Digest,
}

impl ExpiryLawful {
    /// Made only by `plan::block_expiry::lawful`, once its checks found nothing.
    pub(crate) fn new(case: &CaseId, plan: &PlanId, plan_sha256: Sha256Digest) -> Self {
        Self {
            case: case.clone(),
            plan: plan.clone(),
            plan_sha256,
        }
    }
}

/// Why the plan is not approved (every reason), and what each approval counted for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    pub reasons: Vec<Reason>,
    pub tally: Tally,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self
            .reasons
            .iter()
            .map(|r| format!("{}: {r}", r.code()))
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

/// Decides the quorum of `input.plan` by the rules above.
pub fn evaluate(input: &QuorumInput<'_>) -> Result<Approved, Refusal> {
    let mut reasons = plan_reasons(input);
    // The same approval journaled twice (a retry racing itself) is one record; two different
    // records under one number refuse the plan.
    let mut seen: Vec<&ApprovalRecorded> = Vec::new();
    for r in input
        .journaled
        .iter()
        .filter(|r| &r.plan == input.plan.plan)
    {
        if !seen.contains(&r) {
            seen.push(r);
        }
    }
    let journaled = by_number(seen.into_iter().map(|r| (r.approval, r)), &mut reasons);
    let stored = by_number(input.stored.iter().map(|s| (s.number, s)), &mut reasons);
    let mut numbers: Vec<u64> = journaled.keys().chain(stored.keys()).copied().collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut counter = Counter::default();
    let mut approvals = Vec::new();
    for number in numbers {
        let tallied = match (stored.get(&number), journaled.get(&number)) {
            (Some(s), Some(r)) => one(input, s, r, &mut counter, &mut reasons),
            (Some(_), None) => unrecorded(number, Reason::NotJournaled { number }, &mut reasons),
            (None, _) => unrecorded(number, Reason::NotStored { number }, &mut reasons),
        };
        approvals.push(tallied);
    }
    let tally = Tally {
        approvals,
        counted: counter.counted,
        required: input.plan.required.max(input.plan.policy_required),
    };
    if tally.counted < tally.required {
        reasons.push(Reason::NotEnough {
            counted: tally.counted,
            required: tally.required,
        });
    }
    if !reasons.is_empty() {
        return Err(Refusal { reasons, tally });
    }
    Ok(Approved {
        case: input.plan.case.clone(),
        plan: input.plan.plan.clone(),
        plan_sha256: input.plan.plan_sha256,
        tally,
        evaluated_at: input.now,
    })
}

/// The reasons that concern the plan as a whole: its quorum, pins, expiry and the clocks.
fn plan_reasons(input: &QuorumInput<'_>) -> Vec<Reason> {
    let p = &input.plan;
    let mut reasons = Vec::new();
    if p.required == 0 {
        reasons.push(Reason::NoQuorum);
    }
    if p.steps_required != Some(p.required) {
        reasons.push(Reason::QuorumInconsistent {
            said: p.required,
            steps: p.steps_required.unwrap_or(0),
        });
    }
    let lifetime = p.not_after - p.created_at;
    if lifetime > p.max_lifetime + time::Duration::seconds(MAX_CLOCK_SKEW_SECONDS) {
        reasons.push(Reason::LifetimeTooLong {
            lifetime_seconds: lifetime.whole_seconds(),
            max_seconds: p.max_lifetime.whole_seconds(),
        });
    }
    let skew = time::Duration::seconds(MAX_CLOCK_SKEW_SECONDS);
    let future =
        p.created_at > input.now + skew || p.journaled_at.is_some_and(|at| at > input.now + skew);
    if future {
        reasons.push(Reason::CreatedAtMismatch {
            created_at: crate::timefmt::rfc3339(p.created_at),
            journaled_at: p
                .journaled_at
                .map_or_else(|| "?".to_owned(), crate::timefmt::rfc3339),
        });
    } else if let Some(at) = p.journaled_at {
        let early = at - p.created_at;
        if early > MAX_PROPOSAL_DELAY || -early > skew {
            reasons.push(Reason::CreatedAtMismatch {
                created_at: crate::timefmt::rfc3339(p.created_at),
                journaled_at: crate::timefmt::rfc3339(at),
            });
        }
    }
    if input.pinned_roster.sha256() != p.roster_sha256 {
        reasons.push(Reason::PinnedRoster {
            pinned: p.roster_sha256,
            found: input.pinned_roster.sha256(),
        });
    }
    if p.proposer.plan_sha256() != p.plan_sha256 {
        reasons.push(Reason::ProposerOtherPlan);
    }
    // A person's proposal is checked against the pinned roster when the plan is read; the roster
    // in force must list the proposer too, or a plan with a forged roster of its own could stand.
    if let Some((principal, fingerprint)) = p.proposer.person_key() {
        // Listed now, for custody-proposal, inside the key's validity window.
        let listed = input
            .current_roster
            .check(fingerprint, principal, PROPOSAL_NAMESPACE, input.now)
            .is_ok();
        if !listed {
            reasons.push(Reason::ProposerNotListed {
                principal: principal.clone(),
                fingerprint: *fingerprint,
            });
        }
    }
    if input.now > p.not_after {
        reasons.push(Reason::Expired {
            not_after: crate::timefmt::rfc3339(p.not_after),
        });
    }
    if let Some(date) = input.api_server_date {
        let skew = (input.now - date).whole_seconds();
        if skew.abs() > MAX_CLOCK_SKEW_SECONDS {
            reasons.push(Reason::ClockSkew {
                seconds: skew,
                api_server: crate::timefmt::rfc3339(date),
            });
        }
    }
    reasons
}

fn by_number<'a, T>(
    items: impl Iterator<Item = (u64, &'a T)>,
    reasons: &mut Vec<Reason>,
) -> BTreeMap<u64, &'a T> {
    let mut map = BTreeMap::new();
    for (number, item) in items {
        if map.insert(number, item).is_some()
            && !reasons.contains(&Reason::DuplicateNumber { number })
        {
            reasons.push(Reason::DuplicateNumber { number });
        }
    }
    map
}

fn unrecorded(number: u64, reason: Reason, reasons: &mut Vec<Reason>) -> Tallied {
    reasons.push(reason);
    Tallied {
        number,
        principal: None,
        fingerprint: None,
        decision: None,
        outcome: Outcome::NotCounted(NotCounted::Invalid),
    }
}

/// The principals and keys counted so far, and by which approval.
#[derive(Default)]
struct Counter {
    principals: BTreeMap<Principal, u64>,
    keys: BTreeMap<KeyFingerprint, u64>,
    counted: u32,
}

/// One stored and journaled approval: its integrity first (any fault refuses the plan), then
/// whether it counts.
fn one(
    input: &QuorumInput<'_>,
    stored: &StoredApproval,
    record: &ApprovalRecorded,
    counter: &mut Counter,
    reasons: &mut Vec<Reason>,
) -> Tallied {
    let number = stored.number;
    let before = reasons.len();
    let mut t = Tallied {
        number,
        principal: None,
        fingerprint: None,
        decision: None,
        outcome: Outcome::NotCounted(NotCounted::Invalid),
    };
    let found = Sha256Digest::of(&stored.statement);
    if found != record.statement_sha256 {
        reasons.push(Reason::JournalDisagrees {
            number,
            field: "statement_sha256",
        });
    }
    let statement = Statement::parse(&stored.statement)
        .map_err(|e| {
            reasons.push(Reason::BadStatement {
                number,
                error: e.to_string(),
            })
        })
        .ok();
    let verified = sshsig::verify(&stored.signature, APPROVAL_NAMESPACE, &stored.statement)
        .map_err(|e| {
            reasons.push(Reason::BadSignature {
                number,
                error: e.to_string(),
            })
        })
        .ok();
    let (Some(s), Some(v)) = (statement, verified) else {
        return t;
    };
    t.principal = Some(s.principal.clone());
    t.fingerprint = Some(v.fingerprint);
    t.decision = Some(s.decision);
    check_binding(input, number, &s, v.fingerprint, record, reasons);
    if reasons.len() > before {
        return t;
    }
    t.outcome = count(input, number, &s, v.fingerprint, counter, reasons);
    t
}

/// The statement is about this plan, signed by the key it names, and journaled as it says.
fn check_binding(
    input: &QuorumInput<'_>,
    number: u64,
    s: &Statement,
    signer: KeyFingerprint,
    record: &ApprovalRecorded,
    reasons: &mut Vec<Reason>,
) {
    let p = &input.plan;
    for (differs, what) in [
        (&s.case != p.case, "case"),
        (&s.plan != p.plan, "plan"),
        (s.plan_sha256 != p.plan_sha256, "plan_sha256"),
    ] {
        if differs {
            reasons.push(Reason::OtherPlan {
                number,
                field: what,
            });
        }
    }
    if s.key_fingerprint != signer {
        reasons.push(Reason::KeyMismatch {
            number,
            named: s.key_fingerprint,
            signed: signer,
        });
    }
    for (differs, field) in [
        (record.principal != s.principal, "principal"),
        (record.key_fingerprint != signer, "key_fingerprint"),
        (record.decision != s.decision, "decision"),
    ] {
        if differs {
            reasons.push(Reason::JournalDisagrees { number, field });
        }
    }
}

/// Whether `roster` lists `key` for `principal`, allowed in the approval namespace (any time).
fn is_listed(roster: &Roster, key: &KeyFingerprint, principal: &Principal) -> bool {
    roster.signer(key).is_some_and(|s| {
        &s.principal == principal
            && s.namespaces
                .as_ref()
                .is_none_or(|ns| ns.iter().any(|n| n == APPROVAL_NAMESPACE))
    })
}

/// Whether a sound approval counts: both rosters, the proposer, one count per principal and key;
/// a reject from a key that may speak vetoes.
fn count(
    input: &QuorumInput<'_>,
    number: u64,
    s: &Statement,
    key: KeyFingerprint,
    counter: &mut Counter,
    reasons: &mut Vec<Reason>,
) -> Outcome {
    let at = input.now;
    // A reject fails safe: it vetoes when the pinned roster lists its key for its principal in
    // the approval namespace, whatever the time or the roster in force says now — a key that
    // expires or is removed after rejecting must not lift the veto.
    if s.decision == Decision::Reject && is_listed(input.pinned_roster, &key, &s.principal) {
        reasons.push(Reason::Vetoed {
            number,
            principal: s.principal.clone(),
            reason: s.reason.chars().take(200).collect(),
        });
        return Outcome::Veto;
    }
    if let Err(e) = input
        .pinned_roster
        .check(&key, &s.principal, APPROVAL_NAMESPACE, at)
    {
        return Outcome::NotCounted(NotCounted::PinnedRoster(e));
    }
    if let Err(e) = input
        .current_roster
        .check(&key, &s.principal, APPROVAL_NAMESPACE, at)
    {
        return Outcome::NotCounted(NotCounted::CurrentRoster(e));
    }
    if s.decision == Decision::Reject {
        reasons.push(Reason::Vetoed {
            number,
            principal: s.principal.clone(),
            reason: s.reason.chars().take(200).collect(),
        });
        return Outcome::Veto;
    }
    if let Some((principal, fingerprint)) = input.plan.proposer.person_key() {
        if principal == &s.principal || fingerprint == &key {
            return Outcome::NotCounted(NotCounted::Proposer);
        }
    }
    if let Some(&first) = counter.principals.get(&s.principal) {
        return Outcome::NotCounted(NotCounted::SamePrincipal { first });
    }
    if let Some(&first) = counter.keys.get(&key) {
        return Outcome::NotCounted(NotCounted::SameKey { first });
    }
    counter.principals.insert(s.principal.clone(), number);
    counter.keys.insert(key, number);
    counter.counted += 1;
    Outcome::Counted
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    struct Fixture {
        case: CaseId,
        plan: PlanId,
        roster: Roster,
        proposer: Proposer,
    }

    fn fixture() -> Fixture {
        let key = crate::keys::SigningKey::generate();
        Fixture {
            case: CaseId::new("case-1").unwrap(),
            plan: PlanId::new("plan-1").unwrap(),
            roster: Roster::parse("r", "# nobody\n").unwrap(),
            proposer: Proposer::collector(key.public(), b"plan", &key.sign(b"plan")).unwrap(),
        }
    }

    fn run(
        f: &Fixture,
        required: u32,
        journaled: &[ApprovalRecorded],
        now: OffsetDateTime,
        date: Option<OffsetDateTime>,
    ) -> Result<Approved, Refusal> {
        evaluate(&QuorumInput {
            plan: PlanFacts {
                case: &f.case,
                plan: &f.plan,
                plan_sha256: Sha256Digest::of(b"plan"),
                roster_sha256: f.roster.sha256(),
                required,
                steps_required: Some(required),
                policy_required: 0,
                proposer: &f.proposer,
                created_at: datetime!(2026-12-02 10:00 UTC),
                not_after: datetime!(2026-12-02 12:00 UTC),
                max_lifetime: time::Duration::hours(2),
                journaled_at: None,
            },
            pinned_roster: &f.roster,
            current_roster: &f.roster,
            stored: &[],
            journaled,
            now,
            api_server_date: date,
        })
    }

    fn codes(r: Result<Approved, Refusal>) -> Vec<&'static str> {
        r.unwrap_err().reasons.iter().map(Reason::code).collect()
    }

    #[test]
    fn refuses_with_every_plan_level_reason() {
        let f = fixture();
        let now = datetime!(2026-12-02 11:00 UTC);
        assert_eq!(codes(run(&f, 1, &[], now, None)), ["quorum_not_reached"]);
        assert_eq!(codes(run(&f, 0, &[], now, None)), ["quorum_none"]);
        let late = datetime!(2026-12-02 12:00:01 UTC);
        let skewed = Some(late + time::Duration::seconds(61));
        assert_eq!(
            codes(run(&f, 1, &[], late, skewed)),
            ["plan_expired", "clock_skew", "quorum_not_reached"]
        );
    }

    #[test]
    fn a_journaled_approval_missing_from_the_store_refuses() {
        let f = fixture();
        let record = ApprovalRecorded {
            approval: 1,
            decision: Decision::Approve,
            key_fingerprint: "SHA256:0kqsQLaOGyL8rNQCsJ2iVsqstud4kQMLQgJlYu/usAE"
                .parse()
                .unwrap(),
            plan: f.plan.clone(),
            principal: Principal::new("alice").unwrap(),
            statement_sha256: Sha256Digest::of(b"statement"),
        };
        let mut other = record.clone();
        other.plan = PlanId::new("plan-2").unwrap();
        let now = datetime!(2026-12-02 11:00 UTC);
        let r = run(&f, 1, &[record, other], now, None).unwrap_err();
        let codes: Vec<_> = r.reasons.iter().map(Reason::code).collect();
        assert_eq!(codes, ["approval_not_stored", "quorum_not_reached"]);
        assert_eq!(
            r.tally.approvals.len(),
            1,
            "the other plan's record is not this plan's"
        );
    }
}
