//! Why a plan is not approved, and what each approval counted for: typed, each reason with a
//! stable code (for `--json`, the API and `verify`) and a message a person can act on.

use crate::approval::roster::NotAllowed;
use crate::approval::{KeyFingerprint, Principal};
use crate::digest::Sha256Digest;

/// One reason the plan is not approved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("the plan needs no approval at all: a plan needs a quorum of at least 1")]
    NoQuorum,
    #[error("{counted} of the {required} approvals needed count")]
    NotEnough { counted: u32, required: u32 },
    #[error("the plan says it needs {said} approvals, but its steps' kinds need {steps} by its own quorum: a plan's quorum is the largest among its steps")]
    QuorumInconsistent { said: u32, steps: u32 },
    #[error("the plan may start for {lifetime_seconds} s after it was made, more than the {max_seconds} s containment.yaml allows (plan.not_after)")]
    LifetimeTooLong {
        lifetime_seconds: i64,
        max_seconds: i64,
    },
    #[error("the plan says it was made at {created_at} (its proposal journaled at {journaled_at}): a plan is proposed within minutes of being built, and never after custody's clock now")]
    CreatedAtMismatch {
        created_at: String,
        journaled_at: String,
    },
    #[error("approval {number}: {principal} rejected the plan ({reason:?}); any reject ends it")]
    Vetoed {
        number: u64,
        principal: Principal,
        reason: String,
    },
    #[error("the plan expired at {not_after}: propose again")]
    Expired { not_after: String },
    #[error("custody's clock is {seconds} s off the API server's Date ({api_server}); more than 60 s refuses: fix the clocks")]
    ClockSkew { seconds: i64, api_server: String },
    #[error("the roster stored with the plan has SHA-256 {found}, not the {pinned} the plan pins")]
    PinnedRoster {
        pinned: Sha256Digest,
        found: Sha256Digest,
    },
    #[error("the proposer's signature is over other bytes than this plan.json")]
    ProposerOtherPlan,
    #[error("the proposer {principal} ({fingerprint}) is not in the roster in force for custody-proposal: a plan proposed by someone the security team does not list cannot be approved")]
    ProposerNotListed {
        principal: Principal,
        fingerprint: KeyFingerprint,
    },
    #[error("approval {number} is in the store but the journal does not record it")]
    NotJournaled { number: u64 },
    #[error("the journal records approval {number} but the store does not hold it")]
    NotStored { number: u64 },
    #[error("approval {number} is recorded more than once")]
    DuplicateNumber { number: u64 },
    #[error("approval {number}: the journal's {field} differs from the stored statement's")]
    JournalDisagrees { number: u64, field: &'static str },
    #[error("approval {number}: {error}")]
    BadStatement { number: u64, error: String },
    #[error("approval {number}: its signature: {error}")]
    BadSignature { number: u64, error: String },
    #[error("approval {number}: the statement's {field} is another plan's")]
    OtherPlan { number: u64, field: &'static str },
    #[error("approval {number}: the statement names the key {named} but was signed by {signed}")]
    KeyMismatch {
        number: u64,
        named: KeyFingerprint,
        signed: KeyFingerprint,
    },
}

impl Reason {
    /// A stable code: the message may be reworded, the code is not.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NoQuorum => "quorum_none",
            Reason::NotEnough { .. } => "quorum_not_reached",
            Reason::QuorumInconsistent { .. } => "plan_quorum_inconsistent",
            Reason::LifetimeTooLong { .. } => "plan_lifetime_too_long",
            Reason::CreatedAtMismatch { .. } => "plan_created_at_mismatch",
            Reason::Vetoed { .. } => "quorum_vetoed",
            Reason::Expired { .. } => "plan_expired",
            Reason::ClockSkew { .. } => "clock_skew",
            Reason::PinnedRoster { .. } => "roster_pin_mismatch",
            Reason::ProposerOtherPlan => "proposer_other_plan",
            Reason::ProposerNotListed { .. } => "proposer_not_in_roster",
            Reason::NotJournaled { .. } => "approval_not_journaled",
            Reason::NotStored { .. } => "approval_not_stored",
            Reason::DuplicateNumber { .. } => "approval_duplicate_number",
            Reason::JournalDisagrees { .. } => "approval_journal_mismatch",
            Reason::BadStatement { .. } => "approval_bad_statement",
            Reason::BadSignature { .. } => "approval_bad_signature",
            Reason::OtherPlan { .. } => "approval_other_plan",
            Reason::KeyMismatch { .. } => "approval_key_mismatch",
        }
    }
}

/// What one approval counted for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// One of the approvals the quorum needs.
    Counted,
    /// A reject from a key that may speak: the plan is over.
    Veto,
    NotCounted(NotCounted),
}

/// Why an approval does not count.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotCounted {
    #[error("its statement, signature or records are unsound (see the reasons)")]
    Invalid,
    #[error("in the roster pinned in the plan: {0}")]
    PinnedRoster(NotAllowed),
    #[error("in the roster in force now: {0}")]
    CurrentRoster(NotAllowed),
    #[error("the proposer's principal or key never counts")]
    Proposer,
    #[error("its principal is already counted (approval {first})")]
    SamePrincipal { first: u64 },
    #[error("its key is already counted (approval {first})")]
    SameKey { first: u64 },
}

impl NotCounted {
    pub fn code(&self) -> &'static str {
        match self {
            NotCounted::Invalid => "invalid",
            NotCounted::PinnedRoster(_) => "not_in_pinned_roster",
            NotCounted::CurrentRoster(_) => "not_in_current_roster",
            NotCounted::Proposer => "proposer",
            NotCounted::SamePrincipal { .. } => "same_principal",
            NotCounted::SameKey { .. } => "same_key",
        }
    }
}

/// `{"code": …, "message": …}`, for `--json` and the API.
impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Reason", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

/// `{"outcome": "counted" | "veto" | "not_counted", "code": …, "message": …}` (the last two for
/// `not_counted` only).
impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Outcome::Counted => m.serialize_entry("outcome", "counted")?,
            Outcome::Veto => m.serialize_entry("outcome", "veto")?,
            Outcome::NotCounted(why) => {
                m.serialize_entry("outcome", "not_counted")?;
                m.serialize_entry("code", why.code())?;
                m.serialize_entry("message", &why.to_string())?;
            }
        }
        m.end()
    }
}
