//! Approvals of containment plans by the security team's SSH keys: the roster of who may approve
//! (`roster`, OpenSSH `allowed_signers` with literal principals only), SSHSIG signatures
//! (`sshsig`: verified in Rust, made by `ssh-keygen -Y sign` so key files, agents and FIDO keys
//! work), the approval statement (`statement`, canonical JSON), and the one quorum check
//! (`quorum`) whose success is the only way to get an approved plan.
//!
//! This module owns the identities the rest of custody names approvers by: a literal SSH
//! principal and a key's SHA-256 fingerprint.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::Sha256Digest;
use crate::id::PlanId;

pub mod quorum;
pub mod roster;
pub mod sshsig;
pub mod statement;

pub use quorum::{evaluate, Approved, Proposer, QuorumInput, Reason, Refusal, StoredApproval};
pub use roster::Roster;
pub use statement::Statement;

/// The SSHSIG namespace of approval statements.
pub const APPROVAL_NAMESPACE: &str = "custody-approval";
/// The SSHSIG namespace of a person's plan proposal (`plan.json.sshsig`).
pub const PROPOSAL_NAMESPACE: &str = "custody-proposal";

/// A principal that is not one literal name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid principal {0:?}: a principal is one literal name (like alice@example.org) of 1 to 256 printable characters, without spaces, quotes, commas or the pattern characters * ? !")]
pub struct InvalidPrincipal(String);

/// One approver's name, as in the roster (`alice@example.org`): literal, never a pattern or a
/// list, so one roster line speaks for exactly one person.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(String);

impl Principal {
    pub fn new(value: impl Into<String>) -> Result<Self, InvalidPrincipal> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= 256
            && value.chars().all(|c| {
                !c.is_control() && !c.is_whitespace() && !matches!(c, '*' | '?' | '!' | ',' | '"')
            });
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidPrincipal(value.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Principal {
    type Err = InvalidPrincipal;
    fn from_str(s: &str) -> Result<Self, InvalidPrincipal> {
        Self::new(s)
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A fingerprint that is not `SHA256:` and 43 characters of unpadded base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key fingerprint {0:?}: expected SHA256: and 43 base64 characters, as ssh-keygen -l prints")]
pub struct InvalidFingerprint(String);

/// An SSH public key's SHA-256 fingerprint, printed as `ssh-keygen -l` does
/// (`SHA256:0kqsQLaO…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyFingerprint([u8; 32]);

impl KeyFingerprint {
    /// The fingerprint of `key`.
    pub fn of(key: &ssh_key::PublicKey) -> Self {
        Self::of_key_data(key.key_data())
    }

    pub fn of_key_data(key: &ssh_key::public::KeyData) -> Self {
        let fp = ssh_key::Fingerprint::new(ssh_key::HashAlg::Sha256, key);
        // A SHA-256 fingerprint was asked for, so it has 32 bytes.
        Self(fp.sha256().unwrap_or_default())
    }
}

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fp = ssh_key::Fingerprint::Sha256(self.0);
        fmt::Display::fmt(&fp, f)
    }
}

impl FromStr for KeyFingerprint {
    type Err = InvalidFingerprint;
    fn from_str(s: &str) -> Result<Self, InvalidFingerprint> {
        let bad = || InvalidFingerprint(s.chars().take(80).collect());
        match s.parse::<ssh_key::Fingerprint>() {
            Ok(ssh_key::Fingerprint::Sha256(bytes)) => {
                let fp = Self(bytes);
                // One spelling only: the one ssh-keygen prints.
                (fp.to_string() == s).then_some(fp).ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }
}

impl Serialize for KeyFingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyFingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What an approver decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        })
    }
}

/// `approval_recorded`, the journal's record of one approval stored as
/// `plans/<plan>/approvals/<approval>.json(.sig)`. The quorum counts only statements the journal
/// records this way, with these exact bytes. Fields in alphabetical order, as every journal
/// entry's details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecorded {
    /// The approval's number in the plan (`approvals/<n>.json`), from 1.
    pub approval: u64,
    pub decision: Decision,
    /// The fingerprint of the key that signed the statement.
    pub key_fingerprint: KeyFingerprint,
    pub plan: PlanId,
    pub principal: Principal,
    /// The SHA-256 of the statement's exact bytes.
    pub statement_sha256: Sha256Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_literal_names() {
        for good in [
            "alice@example.org",
            "bob",
            "ops-team+oncall@example.org",
            "émile",
        ] {
            assert!(Principal::new(good).is_ok(), "{good}");
        }
        for bad in [
            "", "*", "a*", "a?", "!a", "a,b", "a b", "\"a\"", "a\tb", "a\u{1b}", "a\u{0}",
        ] {
            assert!(Principal::new(bad).is_err(), "{bad:?}");
        }
        assert!(Principal::new("a".repeat(257)).is_err());
    }

    #[test]
    fn fingerprints_print_and_parse_as_ssh_keygen_does() {
        let s = "SHA256:0kqsQLaOGyL8rNQCsJ2iVsqstud4kQMLQgJlYu/usAE";
        let fp: KeyFingerprint = s.parse().unwrap();
        assert_eq!(fp.to_string(), s);
        assert_eq!(serde_json::to_string(&fp).unwrap(), format!("\"{s}\""));
        for bad in [
            "0kqsQLaOGyL8rNQCsJ2iVsqstud4kQMLQgJlYu/usAE",
            "SHA256:0kqsQLaOGyL8rNQCsJ2iVsqstud4kQMLQgJlYu/usAE=",
            "SHA512:0kqsQLaOGyL8rNQCsJ2iVsqstud4kQMLQgJlYu/usAE",
            "SHA256:short",
        ] {
            assert!(bad.parse::<KeyFingerprint>().is_err(), "{bad}");
        }
    }
}
