//! Recording one approval of a stored plan (CONTAINMENT.md, "Approvals"): the statement is
//! checked — canonical, this case, plan and digest, its signature verifying in namespace
//! `custody-approval` by the key it names, that key speaking for its principal in the pinned
//! roster, the plan not expired — then stored as `approvals/<n>.json` and `.sig` (the next free
//! number, create-new) and journaled as `approval_recorded`. A reject is recorded like an
//! approval: it is the veto. Also the request body by which a client sends one to the daemon.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::state::{Plan, Proposed};
use super::store::{self, PlanError};
use crate::approval::roster::NotAllowed;
use crate::approval::sshsig::{self, SigError};
use crate::approval::statement::{Statement, StatementError};
use crate::approval::{ApprovalRecorded, Decision, KeyFingerprint, Principal, APPROVAL_NAMESPACE};
use crate::case::journal::Details;
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};
use crate::keys::SigningKey;
use crate::store::{Store, StoreError, StoreKey};

/// How many numbers are tried when other approvals take them first.
const NUMBER_ATTEMPTS: u64 = 64;

/// The body of `POST /api/v1/cases/{case}/plans/{plan}/approvals`: the statement's exact bytes
/// (canonical JSON, so UTF-8 text) and its armored SSHSIG. The bearer token only admits the
/// request; the signature is the authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The statement, exactly as signed.
    pub statement: String,
    /// `-----BEGIN SSH SIGNATURE-----` …
    pub signature: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("the statement is refused: {0}")]
    Statement(#[from] StatementError),
    #[error("the statement is for {field} {found}, not this plan's {expected}")]
    OtherPlan {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("the statement's signature: {0}")]
    Signature(#[from] SigError),
    #[error("the statement names key {named} but is signed by key {signed}")]
    KeyMismatch {
        named: KeyFingerprint,
        signed: KeyFingerprint,
    },
    #[error("the key may not approve this plan: {0}")]
    NotAllowed(#[from] NotAllowed),
    #[error("the plan expired at {0}: it can no longer be approved")]
    Expired(String),
    #[error("an expiry plan is pre-approved by the plan whose blocks it lifts: it takes no approval or reject")]
    NotApprovable,
    #[error("no free approval number after {NUMBER_ATTEMPTS} tries")]
    Busy,
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApprovalError {
    /// The HTTP status the daemon answers with: 400 for what is not a statement or signature at
    /// all, 422 for a well-formed one that is refused, 404 for a plan that does not exist, 503
    /// when the store is busy, 500 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            ApprovalError::Statement(_) => 400,
            ApprovalError::Signature(SigError::TooLarge | SigError::Armor(_)) => 400,
            ApprovalError::Signature(_)
            | ApprovalError::OtherPlan { .. }
            | ApprovalError::KeyMismatch { .. }
            | ApprovalError::NotAllowed(_)
            | ApprovalError::Expired(_)
            | ApprovalError::NotApprovable => 422,
            ApprovalError::Plan(PlanError::Store(StoreError::NotFound { .. }))
            | ApprovalError::Store(StoreError::NotFound { .. }) => 404,
            ApprovalError::Plan(PlanError::Store(e)) | ApprovalError::Store(e)
                if e.is_transient() =>
            {
                503
            }
            ApprovalError::Busy => 503,
            ApprovalError::Plan(_) | ApprovalError::Store(_) => 500,
        }
    }
}

/// An approval as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recorded {
    pub case: CaseId,
    pub plan: PlanId,
    /// `approvals/<number>.json`.
    pub number: u64,
    pub principal: Principal,
    pub key_fingerprint: KeyFingerprint,
    pub decision: Decision,
    pub statement_sha256: Sha256Digest,
    /// The `approval_recorded` entry.
    pub journal_seq: u64,
}

/// Loads plan `plan` of `case` (a collector's proposal checked with `trusted`, else the store's
/// published key) and records the approval `statement` / `signature` for it, journaled with
/// `key`.
pub fn record_approval(
    store: &dyn Store,
    key: &SigningKey,
    case: &CaseId,
    plan: &PlanId,
    statement: &[u8],
    signature: &[u8],
    trusted: Option<&crate::keys::PublicKey>,
) -> Result<Recorded, ApprovalError> {
    let loaded = store::load(store, case, plan, trusted)?;
    loaded.record(store, key, statement, signature, OffsetDateTime::now_utc())
}

impl Plan<Proposed> {
    /// Checks the statement against this plan (see the module's header) at `now`.
    pub fn check_statement(
        &self,
        statement: &[u8],
        signature: &[u8],
        now: OffsetDateTime,
    ) -> Result<(Statement, KeyFingerprint), ApprovalError> {
        if self.doc().kind == super::document::PlanKind::Expiry {
            return Err(ApprovalError::NotApprovable);
        }
        let s = Statement::parse(statement)?;
        for (field, expected, found) in [
            ("case", self.case().to_string(), s.case.to_string()),
            ("plan", self.id().to_string(), s.plan.to_string()),
            (
                "plan_sha256",
                self.digest().to_string(),
                s.plan_sha256.to_string(),
            ),
        ] {
            if expected != found {
                return Err(ApprovalError::OtherPlan {
                    field,
                    expected,
                    found,
                });
            }
        }
        let verified = sshsig::verify(signature, APPROVAL_NAMESPACE, statement)?;
        if verified.fingerprint != s.key_fingerprint {
            return Err(ApprovalError::KeyMismatch {
                named: s.key_fingerprint,
                signed: verified.fingerprint,
            });
        }
        if now > self.not_after() {
            return Err(ApprovalError::Expired(crate::timefmt::rfc3339(
                self.not_after(),
            )));
        }
        self.pinned_roster()
            .check(&verified.fingerprint, &s.principal, APPROVAL_NAMESPACE, now)?;
        Ok((s, verified.fingerprint))
    }

    /// Checks the statement at `now`, stores it with its signature under the next free number
    /// and journals `approval_recorded` with `key`.
    pub fn record(
        &self,
        store: &dyn Store,
        key: &SigningKey,
        statement: &[u8],
        signature: &[u8],
        now: OffsetDateTime,
    ) -> Result<Recorded, ApprovalError> {
        let (s, fingerprint) = self.check_statement(statement, signature, now)?;
        let statement_sha256 = Sha256Digest::of(statement);
        // The same statement sent again (a client's retry) is the approval already recorded.
        let chain = store::trusted_chain(store, self.case(), self.trusted())?;
        let again = store::journaled_approvals(&chain)
            .into_iter()
            .find(|(_, _, r)| &r.plan == self.id() && r.statement_sha256 == statement_sha256);
        if let Some((seq, _, r)) = again {
            return Ok(Recorded {
                case: self.case().clone(),
                plan: self.id().clone(),
                number: r.approval,
                principal: r.principal,
                key_fingerprint: r.key_fingerprint,
                decision: r.decision,
                statement_sha256,
                journal_seq: seq,
            });
        }
        let number = self.store_next(store, statement, signature)?;
        let details = Details::ApprovalRecorded(ApprovalRecorded {
            approval: number,
            decision: s.decision,
            key_fingerprint: fingerprint,
            plan: self.id().clone(),
            principal: s.principal.clone(),
            statement_sha256,
        });
        let head = store::append(store, key, self.case(), s.principal.as_str(), details)?;
        Ok(Recorded {
            case: self.case().clone(),
            plan: self.id().clone(),
            number,
            principal: s.principal,
            key_fingerprint: fingerprint,
            decision: s.decision,
            statement_sha256,
            journal_seq: head.seq,
        })
    }

    /// Stores the statement as the next free `approvals/<n>.json` (create-new: a number another
    /// approval took first is skipped; one holding these very bytes, stored by an attempt that
    /// did not reach the journal, is this approval's), then its signature.
    fn store_next(
        &self,
        store: &dyn Store,
        statement: &[u8],
        signature: &[u8],
    ) -> Result<u64, ApprovalError> {
        let (case, plan) = (self.case().clone(), self.id().clone());
        let names = store.list(&crate::store::StorePrefix::Approvals(
            case.clone(),
            plan.clone(),
        ))?;
        let numbers = crate::store::layout::approvals(names).0;
        // These very bytes stored by an attempt that never reached the journal (a crash, a
        // failed append): that number is this approval's, so the record is repaired rather
        // than left as a statement the journal does not name.
        for &number in &numbers {
            let key = StoreKey::Approval(case.clone(), plan.clone(), number);
            if store.get(&key)? == statement {
                let sig = StoreKey::ApprovalSignature(case.clone(), plan.clone(), number);
                crate::store::put_new_or_same(store, &sig, signature)?;
                return Ok(number);
            }
        }
        let first = numbers.last().map_or(1, |n| n + 1);
        for number in first..first + NUMBER_ATTEMPTS {
            let key = StoreKey::Approval(case.clone(), plan.clone(), number);
            match crate::store::put_new_or_same(store, &key, statement) {
                Ok(()) => {}
                Err(StoreError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let sig = StoreKey::ApprovalSignature(case.clone(), plan.clone(), number);
            crate::store::put_new_or_same(store, &sig, signature)?;
            return Ok(number);
        }
        Err(ApprovalError::Busy)
    }
}
