//! Typed identifiers. Every id that becomes part of a path or an object key is validated when it
//! is constructed, so no id that crosses a module boundary can escape the store.

use std::fmt;
use std::str::FromStr;

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

/// An id that does not follow the rules: 1 to 64 characters of `[a-z0-9-]`, starting and ending
/// with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: ids are 1 to 64 characters of lowercase a-z, 0-9 and '-', starting and ending with a letter or digit")]
pub struct InvalidId {
    kind: &'static str,
    value: String,
}

fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A time-sortable id: `YYYYMMDD-HHMMSS-` (UTC) followed by 8 random hex digits.
fn generate_id(now: OffsetDateTime) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    let mut random = [0u8; 4];
    OsRng.fill_bytes(&mut random);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        hex::encode(random)
    )
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` as this kind of id.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                if is_valid_id(&value) {
                    Ok(Self(value))
                } else {
                    Err(InvalidId { kind: $kind, value })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Names a case: everything collected and decided about one incident.
    CaseId,
    "case id"
);
id_type!(
    /// Names one sealed evidence bundle within a case; also the bag's directory name.
    BundleId,
    "bundle id"
);
id_type!(
    /// Names a public key: the first 16 hex digits of the SHA-256 of its SPKI DER encoding.
    KeyId,
    "key id"
);

id_type!(
    /// Names one containment plan within a case; also its directory name under `plans/`.
    PlanId,
    "plan id"
);

impl CaseId {
    /// A fresh, time-sortable case id.
    pub fn generate(now: OffsetDateTime) -> Self {
        Self(generate_id(now))
    }
}

impl BundleId {
    /// A fresh, time-sortable bundle id.
    pub fn generate(now: OffsetDateTime) -> Self {
        Self(generate_id(now))
    }
}

impl PlanId {
    /// A fresh, time-sortable plan id (lowercase, so it can be part of a Kubernetes name).
    pub fn generate(now: OffsetDateTime) -> Self {
        Self(generate_id(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ids_that_could_escape_a_path() {
        for bad in [
            "", "..", "../x", "a/b", "A", "-a", "a-", "a b", "a.b", "é", "a\0",
        ] {
            assert!(CaseId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(CaseId::new("a".repeat(65)).is_err());
        assert!(CaseId::new("a".repeat(64)).is_ok());
    }

    #[test]
    fn generated_ids_are_valid_and_sort_by_time() {
        let t1 = time::macros::datetime!(2026-11-26 14:54:48 UTC);
        let t2 = time::macros::datetime!(2026-11-26 14:54:49 UTC);
        let a = CaseId::generate(t1);
        let b = CaseId::generate(t2);
        assert!(a.as_str().starts_with("20261126-145448-"));
        assert!(a < b);
        assert_eq!(CaseId::new(a.as_str()).as_ref(), Ok(&a));
    }

    #[test]
    fn deserialising_validates() {
        let err = serde_json::from_str::<BundleId>("\"../../etc\"");
        assert!(err.is_err());
    }
}
