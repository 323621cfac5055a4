//! The typestate of a stored plan: `Plan<Proposed>` is a plan read back from the store whose
//! bytes, digest, proposer signature and pinned roster were checked (`store::load` makes one);
//! `Plan<Approved>` is one that also passed the quorum check, and only
//! `Plan<Proposed>::approve_check` makes one — through `approval::evaluate`, the one quorum
//! implementation — or, for an expiry plan (pre-approved by the plan that set the expiry),
//! `Plan<Proposed>::expiry_check`. Execution takes a `Plan<Approved>`.

use time::OffsetDateTime;

use super::document::PlanDoc;
use super::document::StepStatus;
use crate::approval::quorum::{PlanFacts, Refusal};
use crate::approval::{self, ApprovalRecorded, Proposer, QuorumInput, Roster, StoredApproval};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::policy::containment::{ContainmentPolicy, StepKind};

/// The longest lifetime any containment policy allows a plan (`plan.not_after`, 5m to 7d).
const MAX_LIFETIME: time::Duration = time::Duration::days(7);

/// A plan whose stored form was checked; not yet approved.
#[derive(Clone, Debug)]
pub struct Proposed;

/// A plan that passed the quorum check: what `approval::evaluate` returned.
#[derive(Debug)]
pub struct Approved(approval::Approved);

/// A stored plan: its document, exact bytes and digest, its proven proposer and the roster it
/// pins, in state `S`.
#[derive(Clone, Debug)]
pub struct Plan<S> {
    pub(super) doc: PlanDoc,
    pub(super) bytes: Vec<u8>,
    pub(super) digest: Sha256Digest,
    pub(super) proposer: Proposer,
    pub(super) roster: Roster,
    pub(super) roster_text: String,
    pub(super) not_after: OffsetDateTime,
    pub(super) created_at: OffsetDateTime,
    /// When the journal recorded the proposal (its `plan_proposed` entry), once looked up.
    pub(super) journaled_at: Option<OffsetDateTime>,
    /// The collector key the plan was checked with (`None`: the store's published keys); the
    /// journal is read with it too.
    pub(super) trusted: Option<crate::keys::PublicKey>,
    pub(super) state: S,
}

impl<S> Plan<S> {
    pub fn doc(&self) -> &PlanDoc {
        &self.doc
    }
    /// The exact bytes of `plan.json` (what is shown, signed and approved).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The plan digest: the SHA-256 of `bytes`.
    pub fn digest(&self) -> Sha256Digest {
        self.digest
    }
    /// The proposer, proven by the plan's signature.
    pub fn proposer(&self) -> &Proposer {
        &self.proposer
    }
    /// The roster stored beside the plan (its SHA-256 is the plan's `roster_sha256`).
    pub fn pinned_roster(&self) -> &Roster {
        &self.roster
    }
    /// The pinned roster's text, as stored.
    pub fn pinned_roster_text(&self) -> &str {
        &self.roster_text
    }
    pub fn case(&self) -> &CaseId {
        &self.doc.case
    }
    pub fn id(&self) -> &PlanId {
        &self.doc.plan
    }
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }
    /// The approvals the plan needs.
    pub fn required(&self) -> u32 {
        self.doc.quorum.required
    }

    /// The kinds of the plan's planned steps (a refused step runs nothing).
    pub fn step_kinds(&self) -> Vec<StepKind> {
        self.doc
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Planned)
            .map(|s| s.kind)
            .collect()
    }

    /// The kinds the plan's quorum is worked out from: its planned steps', or with none every
    /// kind a plan of its kind can hold.
    fn quorum_kinds(&self) -> Vec<StepKind> {
        let kinds = self.step_kinds();
        if !kinds.is_empty() {
            return kinds;
        }
        match self.doc.kind {
            crate::plan::document::PlanKind::Rollback | crate::plan::document::PlanKind::Expiry => {
                vec![StepKind::ReleaseIps]
            }
            crate::plan::document::PlanKind::Containment => vec![
                StepKind::BlockIps,
                StepKind::RotateSecrets,
                StepKind::InvalidateSessions,
            ],
        }
    }

    /// The largest need among the plan's planned steps by its own `by_kind`, as the planner
    /// works it out (a plan with no planned step: the largest of all its kinds); `None` when a
    /// kind has no entry there.
    pub fn steps_required(&self) -> Option<u32> {
        self.quorum_kinds()
            .iter()
            .map(|k| self.doc.quorum.by_kind.get(k).copied())
            .try_fold(0, |most, need| need.map(|n| most.max(n)))
    }

    /// The collector key the plan and its journal are checked with (`None`: the store's).
    pub fn trusted(&self) -> Option<&crate::keys::PublicKey> {
        self.trusted.as_ref()
    }

    /// When the journal recorded this plan's proposal (this digest), if it does.
    pub fn journaled_at(&self) -> Option<OffsetDateTime> {
        self.journaled_at
    }

    /// Looks up in `chain` when its `plan_proposed` entry for this digest was journaled.
    pub fn find_journaled_at(&mut self, chain: &crate::case::CheckedChain) {
        self.journaled_at = chain.entries.iter().find_map(|(e, _)| match &e.details {
            crate::case::Details::PlanProposed(p)
                if p.plan == self.doc.plan && p.plan_sha256 == self.digest =>
            {
                crate::timefmt::parse(&e.at)
            }
            _ => None,
        });
    }
}

impl Plan<Proposed> {
    /// The quorum input for this plan: its facts, both rosters, the approvals as stored and as
    /// journaled, custody's clock and (when executing) the API server's `Date`.
    pub(super) fn quorum_input<'a>(
        &'a self,
        current_roster: &'a Roster,
        policy: Option<&ContainmentPolicy>,
        stored: &'a [StoredApproval],
        journaled: &'a [ApprovalRecorded],
        now: OffsetDateTime,
        api_server_date: Option<OffsetDateTime>,
    ) -> QuorumInput<'a> {
        QuorumInput {
            plan: PlanFacts {
                case: &self.doc.case,
                plan: &self.doc.plan,
                plan_sha256: self.digest,
                roster_sha256: self.doc.roster_sha256,
                required: self.doc.quorum.required,
                steps_required: self.steps_required(),
                policy_required: policy.map_or(0, |p| p.quorum.required_for(&self.quorum_kinds())),
                proposer: &self.proposer,
                created_at: self.created_at,
                not_after: self.not_after,
                max_lifetime: policy.map_or(MAX_LIFETIME, |p| {
                    time::Duration::seconds(
                        i64::try_from(p.plan.not_after.as_secs()).unwrap_or(i64::MAX),
                    )
                }),
                journaled_at: self.journaled_at,
            },
            pinned_roster: &self.roster,
            current_roster,
            stored,
            journaled,
            now,
            api_server_date,
        }
    }

    /// Where the quorum stands, by the same rules (`approval::evaluate`), without the clock
    /// check against the API server: for `plan status`, `show` and `verify`, which report it.
    /// Only `approve_check` makes an approved plan. An expiry plan needs none: its tally is
    /// empty, with nothing missing.
    pub fn tally(
        &self,
        current_roster: &Roster,
        policy: Option<&ContainmentPolicy>,
        stored: &[StoredApproval],
        journaled: &[ApprovalRecorded],
        now: OffsetDateTime,
    ) -> (approval::quorum::Tally, Vec<approval::Reason>) {
        if self.doc.kind == super::document::PlanKind::Expiry {
            // Needs no approvals: whether it may run is `expiry_check`'s (and `verify`'s) to say.
            let none = approval::quorum::Tally {
                approvals: Vec::new(),
                counted: 0,
                required: 0,
            };
            return (none, Vec::new());
        }
        let input = self.quorum_input(current_roster, policy, stored, journaled, now, None);
        match approval::evaluate(&input) {
            Ok(approved) => (approved.tally().clone(), Vec::new()),
            Err(refusal) => (refusal.tally, refusal.reasons),
        }
    }

    /// Decides the quorum by CONTAINMENT.md's rules (`approval::evaluate`), custody's clock
    /// checked against the API server's `Date` (`api_server_date`) and the containment policy in
    /// force (required: its quorum is the floor): the approved plan, or every reason it is not
    /// approved. `stored` and `journaled` must come from `store::stored_approvals` and a journal
    /// read with `store::trusted_chain`.
    pub fn approve_check(
        &self,
        current_roster: &Roster,
        policy: &ContainmentPolicy,
        stored: &[StoredApproval],
        journaled: &[ApprovalRecorded],
        now: OffsetDateTime,
        api_server_date: OffsetDateTime,
    ) -> Result<Plan<Approved>, Refusal> {
        let input = self.quorum_input(
            current_roster,
            Some(policy),
            stored,
            journaled,
            now,
            Some(api_server_date),
        );
        let approved = approval::evaluate(&input)?;
        Ok(self.approved(approved))
    }

    /// This plan in state `Approved`: only `approve_check` and `expiry_check` call it.
    fn approved(&self, approval: approval::Approved) -> Plan<Approved> {
        Plan {
            doc: self.doc.clone(),
            bytes: self.bytes.clone(),
            digest: self.digest,
            proposer: self.proposer.clone(),
            roster: self.roster.clone(),
            roster_text: self.roster_text.clone(),
            not_after: self.not_after,
            created_at: self.created_at,
            journaled_at: self.journaled_at,
            trusted: self.trusted.clone(),
            state: Approved(approval),
        }
    }
}

impl Plan<Proposed> {
    /// An expiry plan made executable at `now` (the earlier of custody's clock and the API
    /// server's) without approvals: pre-approved by the plan it lifts, which set the expiry, if
    /// `block_expiry::reasons` finds nothing (its block steps `executed` are those the journal
    /// records as done) and its `not_after` has not passed. Every reason otherwise.
    pub fn expiry_check(
        &self,
        (lifted, lifted_sha256): (&PlanDoc, Sha256Digest),
        executed: &std::collections::BTreeSet<u32>,
        now: OffsetDateTime,
    ) -> Result<Plan<Approved>, Vec<String>> {
        let mut reasons = Vec::new();
        if self.proposer.collector_key().is_none() {
            reasons.push("the expiry's signature is not the collector key's".into());
        }
        if now > self.not_after {
            reasons.push(format!("its not_after {} passed", self.doc.not_after));
        }
        let lawful = super::block_expiry::lawful(
            (&self.doc, self.digest),
            (lifted, lifted_sha256),
            executed,
            now,
        );
        let lawful = match (lawful, reasons.is_empty()) {
            (Ok(l), true) => l,
            (Ok(_), false) => return Err(reasons),
            (Err(more), _) => {
                reasons.extend(more);
                return Err(reasons);
            }
        };
        Ok(self.approved(approval::Approved::pre_approved(lawful, now)))
    }
}

impl Plan<Approved> {
    /// What the quorum check found: the tally and when it was evaluated.
    pub fn approval(&self) -> &approval::Approved {
        &self.state.0
    }
}
