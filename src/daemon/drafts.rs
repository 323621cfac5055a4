//! A person's proposal through the API, as `plan propose --key` makes one on the store: the
//! proposer signs the plan's exact bytes with their own SSH key, so the plan names them, the
//! journal records them, and their principal and key never count towards its quorum. It takes
//! two requests, because the plan is built here (from the sealed evidence and the live
//! cluster) and signed there:
//!
//! 1. `POST …/plans/drafts` `{"public_key": "ssh-ed25519 …", "principal"?}`: the plan is built
//!    naming that key and the principal the roster in force gives it (which must be allowed to
//!    propose: namespace `custody-proposal`), and answered unstored with `draft_signature`, this
//!    daemon's Ed25519 signature over `DRAFT_CONTEXT` and the plan's bytes.
//! 2. `POST …/plans` `{"plan_json", "draft_signature", "signature"}`: the draft comes back with
//!    the proposer's SSHSIG over its bytes. It is stored only if the draft signature is this
//!    daemon's (the bytes are the plan it built, unchanged), it is younger than
//!    `DRAFT_LIFETIME` (its cluster read and dry-runs are no older), the roster it pins is still
//!    the one in force, and the SSHSIG is the named proposer's in that roster.
//!
//! The draft signature is domain-separated from a proposal's `plan.json.sig`, so that neither
//! can pass for the other. Nothing is kept between the two requests.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::plans::{PlansError, Proposal};
use super::Daemon;
use crate::approval::{KeyFingerprint, Principal, PROPOSAL_NAMESPACE};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::plan::document::{PlanDoc, ProposerClaim};
use crate::timefmt;

/// The drafts built at once; another request meanwhile is answered 409.
pub const MAX_DRAFTS_IN_FLIGHT: usize = 2;

/// How long after it was built a draft may be proposed.
pub const DRAFT_LIFETIME: Duration =
    Duration::from_secs(crate::approval::quorum::MAX_PROPOSAL_AGE_SECONDS.unsigned_abs());

/// What the draft signature signs before the plan's bytes.
const DRAFT_CONTEXT: &[u8] = b"custody plan draft v1\n";

/// `POST …/plans/drafts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftRequest {
    /// The proposer's public key, one OpenSSH line (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
    /// The principal the proposer speaks for; by default the one the roster gives the key.
    #[serde(default)]
    pub principal: Option<String>,
}

/// A plan built for a person to sign: not stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    pub case_id: CaseId,
    pub plan: PlanId,
    /// The plan's exact bytes: what the proposer signs (`ssh-keygen -Y sign -n
    /// custody-proposal`) and sends back.
    pub plan_json: String,
    pub plan_sha256: Sha256Digest,
    /// This daemon's signature of the draft, hex: sent back unchanged.
    pub draft_signature: String,
    /// The proposal must arrive before this (RFC 3339).
    pub propose_before: String,
    pub required: u32,
}

/// `POST …/plans`: a draft signed by its proposer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedProposal {
    pub plan_json: String,
    pub draft_signature: String,
    /// The proposer's armored SSHSIG over `plan_json`, namespace `custody-proposal`.
    pub signature: String,
}

fn bad_request(what: &str, e: impl std::fmt::Display) -> PlansError {
    PlansError::BadRequest(format!("not {what}: {e}"))
}

fn draft_message(plan_json: &[u8]) -> Vec<u8> {
    [DRAFT_CONTEXT, plan_json].concat()
}

/// The key and principal of a draft request, checked against the roster in force at `now`.
fn proposer_of(
    request: &DraftRequest,
    roster: &crate::approval::Roster,
    now: OffsetDateTime,
) -> Result<ProposerClaim, PlansError> {
    let key = ssh_key::PublicKey::from_openssh(request.public_key.trim())
        .map_err(|e| bad_request("an OpenSSH public key (public_key)", e))?;
    let fingerprint = KeyFingerprint::of(&key);
    let principal = match &request.principal {
        Some(p) => Principal::new(p).map_err(|e| bad_request("a principal", e))?,
        None => roster.principal_for(&fingerprint, now).cloned().ok_or_else(|| {
            PlansError::Refused(format!(
                "the approvers' roster names no principal for key {fingerprint}: a plan is proposed by a person the roster lists"
            ))
        })?,
    };
    roster
        .check(&fingerprint, &principal, PROPOSAL_NAMESPACE, now)
        .map_err(|e| PlansError::Refused(format!("{principal} may not propose plans: {e}")))?;
    Ok(ProposerClaim::Person {
        principal,
        key_fingerprint: fingerprint,
    })
}

/// Whether a draft created at `created` may still be proposed at `now`.
fn check_age(created: OffsetDateTime, now: OffsetDateTime) -> Result<(), PlansError> {
    let age = now - created;
    if age > DRAFT_LIFETIME {
        return Err(PlansError::Refused(format!(
            "the draft was built {} s ago, more than {} s: its reading of the cluster is stale; ask for a new draft",
            age.whole_seconds(),
            DRAFT_LIFETIME.as_secs()
        )));
    }
    if age < -time::Duration::seconds(60) {
        return Err(PlansError::Refused(
            "the draft was built in the future on this daemon's clock".into(),
        ));
    }
    Ok(())
}

impl Daemon {
    /// `POST …/plans/drafts`: a plan built for the person whose key the request names.
    pub async fn draft_plan(
        self: Arc<Self>,
        case: CaseId,
        body: &[u8],
    ) -> Result<Draft, PlansError> {
        let request: DraftRequest = serde_json::from_slice(body)
            .map_err(|e| bad_request("a draft request ({\"public_key\", \"principal\"?})", e))?;
        let roster = self.roster_in_force()?;
        let now = OffsetDateTime::now_utc();
        let proposer = proposer_of(&request, &roster.roster, now)?;
        let _slot = self.drafting.try_acquire().map_err(|_| {
            PlansError::Busy(format!(
                "{MAX_DRAFTS_IN_FLIGHT} drafts are being built (each reads the cluster and dry-runs every change): ask again shortly"
            ))
        })?;
        let built = self.clone().build_plan(&case, proposer).await;
        let (doc, _) = built.inspect_err(|e| {
            self.metrics.plan_proposal_failed("api");
            tracing::warn!(case = %case, error = %e, "no plan drafted");
        })?;
        let bytes =
            crate::canonical::to_vec(&doc).map_err(|e| PlansError::Internal(e.to_string()))?;
        let signature = self.key.sign(&draft_message(&bytes));
        let created = timefmt::parse(&doc.created_at)
            .ok_or_else(|| PlansError::Internal("the plan's created_at is not a time".into()))?;
        let before = created
            + time::Duration::try_from(DRAFT_LIFETIME)
                .map_err(|e| PlansError::Internal(e.to_string()))?;
        tracing::info!(case = %case, plan = %doc.plan, "plan drafted for a person to propose");
        Ok(Draft {
            case_id: case,
            plan: doc.plan.clone(),
            plan_sha256: Sha256Digest::of(&bytes),
            plan_json: String::from_utf8(bytes).map_err(|e| PlansError::Internal(e.to_string()))?,
            draft_signature: hex::encode(signature),
            propose_before: timefmt::rfc3339(before),
            required: doc.quorum.required,
        })
    }

    /// `POST …/plans`: stores a draft of this daemon's, signed by the person it names.
    pub async fn propose_signed(
        self: Arc<Self>,
        case: CaseId,
        body: &[u8],
    ) -> Result<Proposal, PlansError> {
        let outcome = self.clone().propose_signed_inner(case.clone(), body).await;
        match &outcome {
            Ok(p) => {
                self.metrics.plan_proposed("api");
                tracing::info!(case = %case, plan = %p.stored.plan, trigger = "api", "plan proposed");
            }
            Err(e) => {
                self.metrics.plan_proposal_failed("api");
                tracing::warn!(case = %case, error = %e, "no plan proposed");
            }
        }
        outcome
    }

    async fn propose_signed_inner(
        self: Arc<Self>,
        case: CaseId,
        body: &[u8],
    ) -> Result<Proposal, PlansError> {
        let request: SignedProposal = serde_json::from_slice(body).map_err(|e| {
            bad_request(
                "a signed proposal ({\"plan_json\", \"draft_signature\", \"signature\"}: ask POST …/plans/drafts for the plan to sign)",
                e,
            )
        })?;
        let bytes = request.plan_json.as_bytes();
        let draft_signature = hex::decode(request.draft_signature.trim())
            .map_err(|e| bad_request("a draft signature (hex)", e))?;
        if !self
            .key
            .public()
            .verify(&draft_message(bytes), &draft_signature)
        {
            return Err(PlansError::Refused(
                "the plan is not a draft this daemon built, or it was changed since: ask POST …/plans/drafts for a new one".into(),
            ));
        }
        let doc: PlanDoc =
            crate::canonical::from_slice(bytes).map_err(|e| bad_request("a canonical plan", e))?;
        if doc.case != case {
            return Err(PlansError::Refused(format!(
                "the draft is a plan of case {}, not of {case}",
                doc.case
            )));
        }
        if !matches!(doc.proposer, ProposerClaim::Person { .. }) {
            return Err(PlansError::Refused(
                "the draft names no person as its proposer".into(),
            ));
        }
        let created = timefmt::parse(&doc.created_at)
            .ok_or_else(|| PlansError::Refused("the draft's created_at is not a time".into()))?;
        check_age(created, OffsetDateTime::now_utc())?;
        let roster = self.roster_in_force()?;
        if roster.roster.sha256() != doc.roster_sha256 {
            return Err(PlansError::Refused(
                "the approvers' roster changed since the draft was built: ask for a new draft"
                    .into(),
            ));
        }
        let signature = request.signature.into_bytes();
        tokio::task::spawn_blocking(move || {
            self.check_plan_count(&doc.case)?;
            self.store_plan(&doc, &roster, false, Some(&signature))
        })
        .await
        .map_err(|e| PlansError::Internal(e.to_string()))??
        .ok_or_else(|| PlansError::Internal("the proposal stored nothing".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_is_proposed_within_its_lifetime_on_this_clock() {
        let now = OffsetDateTime::now_utc();
        assert!(check_age(now - time::Duration::minutes(9), now).is_ok());
        assert!(check_age(now + time::Duration::seconds(30), now).is_ok());
        let stale = check_age(now - time::Duration::minutes(11), now).unwrap_err();
        assert!(stale.to_string().contains("stale"), "{stale}");
        assert!(check_age(now + time::Duration::minutes(5), now).is_err());
    }

    #[test]
    fn the_draft_signature_is_not_a_proposal_signature() {
        let key = crate::keys::SigningKey::generate();
        let plan = br#"{"plan":"x"}"#;
        let draft = key.sign(&draft_message(plan));
        assert!(key.public().verify(&draft_message(plan), &draft));
        assert!(!key.public().verify(plan, &draft));
    }

    #[test]
    fn a_draft_request_names_a_key_of_the_roster() {
        let err = serde_json::from_slice::<DraftRequest>(br#"{"public_key": "x", "who": 1}"#);
        assert!(err.is_err());
        let roster = crate::approval::Roster::parse("r", "").unwrap();
        let request = DraftRequest {
            public_key: "not a key".into(),
            principal: None,
        };
        let now = OffsetDateTime::now_utc();
        assert!(matches!(
            proposer_of(&request, &roster, now),
            Err(PlansError::BadRequest(_))
        ));
    }
}
