//! Journal entries for the checks' tests.

use crate::case::entry::{PlanProposed, ProposedBy};
use crate::case::{Details, Entry};
use crate::digest::Sha256Digest;
use crate::id::{KeyId, PlanId};

/// Entry `seq` at `at`, with a stand-in digest.
pub(super) fn entry(seq: u64, at: &str, details: Details) -> (Entry, Sha256Digest) {
    let e = Entry {
        seq,
        prev_sha256: None,
        at: at.into(),
        actor: "custody".into(),
        details,
    };
    (e, Sha256Digest::of(&seq.to_be_bytes()))
}

/// The proposal of `plan` (digest: the SHA-256 of its name), expiring 2026-12-02T03:00:00Z.
pub(super) fn proposed(plan: &str) -> Details {
    Details::PlanProposed(PlanProposed {
        not_after: "2026-12-02T03:00:00Z".into(),
        plan: PlanId::new(plan).unwrap(),
        plan_sha256: Sha256Digest::of(plan.as_bytes()),
        proposer: ProposedBy::Collector {
            key_id: KeyId::new("0123456789abcdef").unwrap(),
        },
        required: 2,
        lifts: None,
    })
}
