//! The approval statement: what one approver signs about one plan,
//! `{format: "custody-approval/1", case, plan, plan_sha256, decision, principal, key_fingerprint,
//! reason, signed_at}` in canonical JSON, signed in the SSHSIG namespace `custody-approval`. Read
//! strictly: only the canonical bytes of exactly these fields are a statement.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::sshsig::{self, SignError};
use super::{Decision, KeyFingerprint, Principal, APPROVAL_NAMESPACE, PROPOSAL_NAMESPACE};
use crate::canonical::{self, CanonicalError};
use crate::digest::Sha256Digest;
use crate::id::{CaseId, PlanId};

/// The statement format this build writes and reads.
pub const FORMAT: &str = "custody-approval/1";
/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 4096;
/// The largest statement read.
pub const MAX_STATEMENT_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("the statement is larger than {MAX_STATEMENT_BYTES} bytes")]
    TooLarge,
    #[error("the statement: {0}")]
    Canonical(#[from] CanonicalError),
    #[error("the statement's format is {0:?}, not {FORMAT:?}")]
    Format(String),
    #[error("the statement's reason is longer than {MAX_REASON_CHARS} characters")]
    ReasonTooLong,
    #[error("the statement's signed_at {0:?} is not an RFC 3339 time")]
    SignedAt(String),
}

/// One approver's signed decision on one plan, bound to the plan's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always `custody-approval/1`.
    pub format: String,
    pub case: CaseId,
    pub plan: PlanId,
    /// The SHA-256 of the plan's `plan.json` bytes: the plan exactly as shown.
    pub plan_sha256: Sha256Digest,
    pub decision: Decision,
    pub principal: Principal,
    /// The fingerprint of the key that signs the statement.
    pub key_fingerprint: KeyFingerprint,
    /// The approver's words; may be empty.
    pub reason: String,
    /// When the approver says they signed (RFC 3339): a claim; the journal's time is the record.
    pub signed_at: String,
}

impl Statement {
    /// A statement of this format; `check` it (or write it with `to_canonical`) before use.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        case: CaseId,
        plan: PlanId,
        plan_sha256: Sha256Digest,
        decision: Decision,
        principal: Principal,
        key_fingerprint: KeyFingerprint,
        reason: String,
        signed_at: time::OffsetDateTime,
    ) -> Self {
        Self {
            format: FORMAT.to_owned(),
            case,
            plan,
            plan_sha256,
            decision,
            principal,
            key_fingerprint,
            reason,
            signed_at: crate::timefmt::rfc3339(signed_at),
        }
    }

    /// The rules `serde` cannot state: the format, the reason's length, the time's form.
    pub fn check(&self) -> Result<(), StatementError> {
        if self.format != FORMAT {
            return Err(StatementError::Format(
                self.format.chars().take(80).collect(),
            ));
        }
        if self.reason.chars().count() > MAX_REASON_CHARS {
            return Err(StatementError::ReasonTooLong);
        }
        if crate::timefmt::parse(&self.signed_at).is_none() {
            return Err(StatementError::SignedAt(
                self.signed_at.chars().take(80).collect(),
            ));
        }
        Ok(())
    }

    /// The exact bytes that are signed and stored (`approvals/<n>.json`).
    pub fn to_canonical(&self) -> Result<Vec<u8>, StatementError> {
        self.check()?;
        Ok(canonical::to_vec(self)?)
    }

    /// Reads stored statement bytes: canonical JSON of exactly the statement's fields, or an
    /// error.
    pub fn parse(bytes: &[u8]) -> Result<Statement, StatementError> {
        if bytes.len() > MAX_STATEMENT_BYTES {
            return Err(StatementError::TooLarge);
        }
        let s: Statement = canonical::from_slice(bytes)?;
        s.check()?;
        Ok(s)
    }

    /// Signs the canonical bytes with `ssh-keygen -Y sign -n custody-approval -f key_file`;
    /// returns the bytes signed and the armored signature, to be stored side by side.
    pub fn sign(&self, key_file: &Path) -> Result<(Vec<u8>, Vec<u8>), SignStatementError> {
        let bytes = self.to_canonical()?;
        let sig = sshsig::sign(key_file, APPROVAL_NAMESPACE, &bytes)?;
        Ok((bytes, sig))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignStatementError {
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Signs a plan's exact bytes as its proposer (`plan.json.sshsig`, namespace
/// `custody-proposal`) with `ssh-keygen -Y sign`.
pub fn sign_proposal(key_file: &Path, plan_json: &[u8]) -> Result<Vec<u8>, SignError> {
    sshsig::sign(key_file, PROPOSAL_NAMESPACE, plan_json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    pub(crate) fn sample() -> Statement {
        Statement::new(
            CaseId::new("case-1").unwrap(),
            PlanId::new("plan-1").unwrap(),
            Sha256Digest::of(b"plan"),
            Decision::Approve,
            Principal::new("alice@example.org").unwrap(),
            "SHA256:0kqsQLaOGyL8rNQCsJ2iVsqstud4kQMLQgJlYu/usAE"
                .parse()
                .unwrap(),
            "seen the diff \u{1b}[31m".into(),
            datetime!(2026-12-02 01:02:03 UTC),
        )
    }

    #[test]
    fn writes_canonical_bytes_and_reads_them_back() {
        let s = sample();
        let bytes = s.to_canonical().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"case\":\"case-1\",\"decision\":\"approve\",\"format\":\"custody-approval/1\",\"key_fingerprint\":\"SHA256:"), "{text}");
        assert!(text.contains("\\u001b[31m"), "{text}");
        assert_eq!(Statement::parse(&bytes).unwrap(), s);
    }

    #[test]
    fn refuses_statements_read_two_ways_or_not_at_all() {
        let bytes = sample().to_canonical().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let extra = text.replacen("{", "{\"approved_by_ceo\":true,", 1);
        assert!(Statement::parse(extra.as_bytes()).is_err());
        let dup = text.replacen("{", "{\"case\":\"case-2\",", 1);
        assert!(Statement::parse(dup.as_bytes()).is_err());
        let spaced = text.replacen(",", ", ", 1);
        assert!(Statement::parse(spaced.as_bytes()).is_err());
        let other = text.replace("custody-approval/1", "custody-approval/2");
        assert!(matches!(
            Statement::parse(other.as_bytes()),
            Err(StatementError::Format(_))
        ));
        let when = text.replace("2026-12-02T01:02:03Z", "yesterday");
        assert!(matches!(
            Statement::parse(when.as_bytes()),
            Err(StatementError::SignedAt(_))
        ));
        let missing = text.replace(",\"reason\":\"seen the diff \\u001b[31m\"", "");
        assert!(Statement::parse(missing.as_bytes()).is_err());
        let mut long = sample();
        long.reason = "x".repeat(MAX_REASON_CHARS + 1);
        assert!(long.to_canonical().is_err());
    }
}
