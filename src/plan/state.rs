//! The typestate of a stored plan: `Plan<Proposed>` is a plan read back from the store whose
//! bytes, digest, proposer signature and pinned roster were checked (`store::load` makes one);
//! `Plan<Approved>` is one that also passed the quorum check, and only
//! `Plan<Proposed>::approve_check` makes one — through `approval::evaluate`, the one quorum
//! implementation. Execution takes a `Plan<Approved>`.

use time::OffsetDateTime;

use super::document::PlanDoc;
use crate::approval::quorum::{PlanFacts, Refusal};
use crate::approval::{self, ApprovalRecorded, Proposer, QuorumInput, Roster, StoredApproval};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};

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
}

impl Plan<Proposed> {
    /// The quorum input for this plan: its facts, both rosters, the approvals as stored and as
    /// journaled, custody's clock and (when executing) the API server's `Date`.
    pub(super) fn quorum_input<'a>(
        &'a self,
        current_roster: &'a Roster,
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
                proposer: &self.proposer,
                not_after: self.not_after,
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
    /// Only `approve_check` makes an approved plan.
    pub fn tally(
        &self,
        current_roster: &Roster,
        stored: &[StoredApproval],
        journaled: &[ApprovalRecorded],
        now: OffsetDateTime,
    ) -> (approval::quorum::Tally, Vec<approval::Reason>) {
        let input = self.quorum_input(current_roster, stored, journaled, now, None);
        match approval::evaluate(&input) {
            Ok(approved) => (approved.tally().clone(), Vec::new()),
            Err(refusal) => (refusal.tally, refusal.reasons),
        }
    }

    /// Decides the quorum by CONTAINMENT.md's rules (`approval::evaluate`), custody's clock
    /// checked against the API server's `Date` (`api_server_date`): the approved plan, or every
    /// reason it is not approved.
    pub fn approve_check(
        &self,
        current_roster: &Roster,
        stored: &[StoredApproval],
        journaled: &[ApprovalRecorded],
        now: OffsetDateTime,
        api_server_date: OffsetDateTime,
    ) -> Result<Plan<Approved>, Refusal> {
        let input = self.quorum_input(
            current_roster,
            stored,
            journaled,
            now,
            Some(api_server_date),
        );
        let approved = approval::evaluate(&input)?;
        Ok(Plan {
            doc: self.doc.clone(),
            bytes: self.bytes.clone(),
            digest: self.digest,
            proposer: self.proposer.clone(),
            roster: self.roster.clone(),
            roster_text: self.roster_text.clone(),
            not_after: self.not_after,
            created_at: self.created_at,
            state: Approved(approved),
        })
    }
}

impl Plan<Approved> {
    /// What the quorum check found: the tally and when it was evaluated.
    pub fn approval(&self) -> &approval::Approved {
        &self.state.0
    }
}
