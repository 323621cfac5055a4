//! The roster of approvers, `approvers.allowed_signers`: OpenSSH's `allowed_signers` format
//! (ssh-keygen(1), "ALLOWED SIGNERS": `principals [options] keytype base64 [comment]`), read the
//! way `ssh-keygen -Y verify` reads it, and linted so that every line speaks for exactly one
//! person with one key. A `Roster` value exists only for a text that lints clean, so the queries
//! need no pattern matching: principals and namespaces are literal.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use time::OffsetDateTime;

use super::{KeyFingerprint, Principal};
use crate::digest::Sha256Digest;

mod line;

/// The largest roster read.
pub const MAX_ROSTER_BYTES: u64 = 1024 * 1024;

/// One problem in a roster, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Counted from 1.
    pub line: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("cannot read roster {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("roster {path} is larger than 1 MiB")]
    TooLarge { path: String },
    #[error("roster {path} is not UTF-8 text")]
    NotText { path: String },
    #[error("{}", lint_message(file, problems))]
    Lint {
        file: String,
        problems: Vec<Problem>,
    },
}

fn lint_message(file: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| format!("{file}:{}: {}", p.line, p.message))
        .collect();
    lines.join("\n")
}

/// One roster line: a principal, its key, and where and when the key speaks for it.
#[derive(Clone, Debug)]
pub struct Signer {
    /// Counted from 1.
    pub line: usize,
    pub principal: Principal,
    pub key: ssh_key::PublicKey,
    pub fingerprint: KeyFingerprint,
    /// The SSHSIG namespaces the key may sign in; `None`: any.
    pub namespaces: Option<Vec<String>>,
    /// Unix seconds; the key is valid from this second on.
    pub valid_after: Option<i64>,
    /// Unix seconds; the key is valid up to and including this second.
    pub valid_before: Option<i64>,
}

/// Why a key does not speak for a principal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotAllowed {
    #[error("the key {0} is not in the roster")]
    UnknownKey(KeyFingerprint),
    #[error("the key {key} is {listed}'s in the roster (line {line}), not {claimed}'s")]
    OtherPrincipal {
        key: KeyFingerprint,
        listed: Principal,
        claimed: Principal,
        line: usize,
    },
    #[error("the key {key} of {principal} (roster line {line}) may not sign in namespace {namespace:?} (namespaces=\"{allowed}\")")]
    Namespace {
        key: KeyFingerprint,
        principal: Principal,
        namespace: String,
        allowed: String,
        line: usize,
    },
    #[error("the key {key} of {principal} (roster line {line}) is not valid before {after}")]
    NotYetValid {
        key: KeyFingerprint,
        principal: Principal,
        after: String,
        line: usize,
    },
    #[error("the key {key} of {principal} (roster line {line}) expired at {before}")]
    Expired {
        key: KeyFingerprint,
        principal: Principal,
        before: String,
        line: usize,
    },
}

/// A lint-clean roster and the SHA-256 of its exact bytes.
#[derive(Clone, Debug)]
pub struct Roster {
    signers: Vec<Signer>,
    sha256: Sha256Digest,
}

impl Roster {
    /// Reads and lints `text`; `file` names it in the problems. Every problem is reported, each
    /// with its line.
    pub fn parse(file: &str, text: &str) -> Result<Roster, RosterError> {
        let mut signers: Vec<Signer> = Vec::new();
        let mut problems = Vec::new();
        let mut seen: HashMap<KeyFingerprint, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            match line::parse(raw) {
                Ok(None) => {}
                Ok(Some(parsed)) => {
                    let fp = KeyFingerprint::of(&parsed.key);
                    if let Some(first) = seen.get(&fp) {
                        problems.push(Problem {
                            line: n,
                            message: format!(
                                "the key {fp} is already on line {first}: one key would speak for \
                                 several principals (or twice for one); give each person one line"
                            ),
                        });
                        continue;
                    }
                    seen.insert(fp, n);
                    signers.push(Signer {
                        line: n,
                        principal: parsed.principal,
                        key: parsed.key,
                        fingerprint: fp,
                        namespaces: parsed.namespaces,
                        valid_after: parsed.valid_after,
                        valid_before: parsed.valid_before,
                    });
                }
                Err(messages) => problems.extend(
                    messages
                        .into_iter()
                        .map(|message| Problem { line: n, message }),
                ),
            }
        }
        if !problems.is_empty() {
            return Err(RosterError::Lint {
                file: file.to_owned(),
                problems,
            });
        }
        Ok(Roster {
            signers,
            sha256: Sha256Digest::of(text.as_bytes()),
        })
    }

    /// Reads and lints the roster file at `path`.
    pub fn read(path: &Path) -> Result<Roster, RosterError> {
        use std::io::Read;
        let name = path.display().to_string();
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_ROSTER_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|source| RosterError::Read {
                path: name.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_ROSTER_BYTES {
            return Err(RosterError::TooLarge { path: name });
        }
        let text =
            String::from_utf8(bytes).map_err(|_| RosterError::NotText { path: name.clone() })?;
        Self::parse(&name, &text)
    }

    /// The SHA-256 of the roster's bytes (what a plan pins).
    pub fn sha256(&self) -> Sha256Digest {
        self.sha256
    }

    pub fn signers(&self) -> &[Signer] {
        &self.signers
    }

    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The line of `key`, if any (a lint-clean roster has a key on one line at most).
    pub fn signer(&self, key: &KeyFingerprint) -> Option<&Signer> {
        self.signers.iter().find(|s| &s.fingerprint == key)
    }

    /// Whether `key` speaks for `principal` in `namespace` at `at`, as `ssh-keygen -Y verify
    /// -I principal -n namespace -Overify-time=at` decides.
    pub fn check(
        &self,
        key: &KeyFingerprint,
        principal: &Principal,
        namespace: &str,
        at: OffsetDateTime,
    ) -> Result<&Signer, NotAllowed> {
        let s = self.signer(key).ok_or(NotAllowed::UnknownKey(*key))?;
        if &s.principal != principal {
            return Err(NotAllowed::OtherPrincipal {
                key: *key,
                listed: s.principal.clone(),
                claimed: principal.clone(),
                line: s.line,
            });
        }
        if let Some(allowed) = &s.namespaces {
            if !allowed.iter().any(|n| n == namespace) {
                return Err(NotAllowed::Namespace {
                    key: *key,
                    principal: principal.clone(),
                    namespace: namespace.to_owned(),
                    allowed: allowed.join(","),
                    line: s.line,
                });
            }
        }
        s.valid_at(at)
            .map_err(|e| e.for_key(*key, principal.clone(), s.line))?;
        Ok(s)
    }

    /// The principal `key` speaks for at `at`, whatever the namespace, as `ssh-keygen -Y
    /// find-principals -Overify-time=at` answers.
    pub fn principal_for(&self, key: &KeyFingerprint, at: OffsetDateTime) -> Option<&Principal> {
        let s = self.signer(key)?;
        s.valid_at(at).ok().map(|()| &s.principal)
    }
}

/// Outside a key's validity window, before the key is named.
enum Window {
    Before(i64),
    After(i64),
}

impl Window {
    fn for_key(self, key: KeyFingerprint, principal: Principal, line: usize) -> NotAllowed {
        match self {
            Window::Before(t) => NotAllowed::NotYetValid {
                key,
                principal,
                after: crate::timefmt::unix_rfc3339(t),
                line,
            },
            Window::After(t) => NotAllowed::Expired {
                key,
                principal,
                before: crate::timefmt::unix_rfc3339(t),
                line,
            },
        }
    }
}

impl Signer {
    fn valid_at(&self, at: OffsetDateTime) -> Result<(), Window> {
        let t = at.unix_timestamp();
        if let Some(after) = self.valid_after.filter(|&a| t < a) {
            return Err(Window::Before(after));
        }
        if let Some(before) = self.valid_before.filter(|&b| t > b) {
            return Err(Window::After(before));
        }
        Ok(())
    }
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.principal, self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    // Two fixed ed25519 public keys (made by ssh-keygen for these tests).
    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtWyifsSyDczWQelNaBpFg36AgjkifCq/K7nasAghnB";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOSZTgDZCBp/TzoIxJ/f8CNmYQb+oE4AqoAekickx8K3";

    fn problems(text: &str) -> Vec<Problem> {
        match Roster::parse("approvers.allowed_signers", text) {
            Err(RosterError::Lint { problems, .. }) => problems,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_lines_with_options_comments_and_quotes() {
        let text = format!(
            "# the security team\n\n\"alice@example.org\" namespaces=\"custody-approval,custody-proposal\",valid-after=\"20260101Z\",valid-before=\"202701011200Z\" {K1} alice's laptop\n  bob@example.org {K2}\n"
        );
        let r = Roster::parse("r", &text).unwrap();
        assert_eq!(r.signers().len(), 2);
        assert_eq!(r.sha256(), Sha256Digest::of(text.as_bytes()));
        let a = &r.signers()[0];
        assert_eq!((a.line, a.principal.as_str()), (3, "alice@example.org"));
        assert_eq!(a.valid_after, Some(1767225600));
        assert_eq!(a.valid_before, Some(1798804800));
        let alice = Principal::new("alice@example.org").unwrap();
        let at = datetime!(2026-06-01 00:00 UTC);
        assert!(r
            .check(&a.fingerprint, &alice, "custody-approval", at)
            .is_ok());
        assert!(matches!(
            r.check(&a.fingerprint, &alice, "git", at),
            Err(NotAllowed::Namespace { .. })
        ));
        assert!(matches!(
            r.check(
                &a.fingerprint,
                &alice,
                "custody-approval",
                datetime!(2025-12-31 23:59:59 UTC)
            ),
            Err(NotAllowed::NotYetValid { .. })
        ));
        // Both ends of the window are inside it, as ssh-keygen counts them.
        assert!(r
            .check(
                &a.fingerprint,
                &alice,
                "custody-approval",
                datetime!(2026-01-01 00:00 UTC)
            )
            .is_ok());
        assert!(r
            .check(
                &a.fingerprint,
                &alice,
                "custody-approval",
                datetime!(2027-01-01 12:00 UTC)
            )
            .is_ok());
        assert!(matches!(
            r.check(
                &a.fingerprint,
                &alice,
                "custody-approval",
                datetime!(2027-01-01 12:00:01 UTC)
            ),
            Err(NotAllowed::Expired { .. })
        ));
        let bob = r.signers()[1].fingerprint;
        assert!(matches!(
            r.check(&bob, &alice, "custody-approval", at),
            Err(NotAllowed::OtherPrincipal { .. })
        ));
        assert_eq!(
            r.principal_for(&bob, at).map(|p| p.as_str()),
            Some("bob@example.org")
        );
    }

    #[test]
    fn lint_refuses_what_lets_one_key_speak_for_several() {
        let cases = [
            (format!("*@example.org {K1}"), "wildcard"),
            (format!("alice? {K1}"), "wildcard"),
            (format!("!mallory {K1}"), "negation"),
            (format!("alice,bob {K1}"), "comma"),
            (format!("alice cert-authority {K1}"), "cert-authority"),
            (format!("alice {K1}\nbob {K1}"), "already on line 1"),
            (format!("alice {K1}\nalice {K1}"), "already on line 1"),
            (format!("alice no-touch-required {K1}"), "unknown option"),
            (format!("alice valid-after=\"20260101\" {K1}"), "local time"),
            (
                format!("alice valid-before=\"202601011200\" {K1}"),
                "local time",
            ),
            (
                format!("alice valid-before=\"2026010112Z\" {K1}"),
                "YYYYMMDD",
            ),
            (format!("alice valid-before=20260101Z {K1}"), "quoted"),
            (format!("alice namespaces=custody-approval {K1}"), "quoted"),
            (format!("alice namespaces=\"custody-*\" {K1}"), "namespace"),
            (
                format!("alice valid-after=\"20270101Z\",valid-before=\"20260101Z\" {K1}"),
                "never valid",
            ),
            ("alice ssh-ed25519 AAAAnotakey".to_owned(), "key"),
            ("alice".to_owned(), "key"),
            ("\"alice bob\" ".to_owned() + K1, "principal"),
            ("\"alice ".to_owned() + K1, "quote"),
        ];
        for (text, want) in cases {
            let p = problems(&text);
            assert!(
                p.iter().any(|p| p.message.contains(want)),
                "{text:?}: {p:?} lacks {want:?}"
            );
        }
        let err = Roster::parse(
            "policies/approvers.allowed_signers",
            &format!("a {K1}\n# x\n*b {K2}\nc,d {K2}"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("policies/approvers.allowed_signers:3: "),
            "{err}"
        );
        assert!(
            err.contains("policies/approvers.allowed_signers:4: "),
            "{err}"
        );
    }

    #[test]
    fn an_empty_roster_is_clean() {
        let r = Roster::parse("r", "# nobody yet\n\n").unwrap();
        assert!(r.is_empty());
    }
}
