//! `storage.yaml`: how evidence objects are locked in S3 (Object Lock mode, retention days, legal
//! hold).

use serde::{Deserialize, Serialize};

use super::PolicyError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePolicy {
    pub object_lock: ObjectLockPolicy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLockPolicy {
    pub mode: LockMode,
    /// Retention from the moment an object is stored.
    pub days: u32,
    #[serde(default)]
    pub legal_hold: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LockMode {
    Compliance,
    Governance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliance => "COMPLIANCE",
            Self::Governance => "GOVERNANCE",
        }
    }
}

/// The longest retention accepted: one hundred years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl Default for StoragePolicy {
    fn default() -> Self {
        // The shipped file is the default; it is tested to parse.
        Self::parse("built-in storage.yaml", super::DEFAULT_STORAGE).unwrap_or(Self {
            object_lock: ObjectLockPolicy {
                mode: LockMode::Compliance,
                days: 365,
                legal_hold: false,
            },
        })
    }
}

impl StoragePolicy {
    pub fn parse(path: &str, text: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::ParsePolicy {
            path: path.to_owned(),
            message,
        };
        let policy: StoragePolicy = super::from_yaml(path, text)?;
        let days = policy.object_lock.days;
        if !(1..=MAX_RETENTION_DAYS).contains(&days) {
            return Err(err(format!(
                "object_lock.days must be 1 to {MAX_RETENTION_DAYS}, not {days}"
            )));
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_locks_in_compliance_mode() {
        let p = StoragePolicy::parse("t", super::super::DEFAULT_STORAGE).unwrap();
        assert_eq!(p.object_lock.mode, LockMode::Compliance);
        assert_eq!(p, StoragePolicy::default());
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (text, want) in [
            ("object_lock: {mode: COMPLIANCE, days: 0}", "days must be 1"),
            (
                "object_lock: {mode: COMPLIANCE, days: 40000}",
                "days must be 1",
            ),
            (
                "object_lock: {mode: compliance, days: 10}",
                "unknown variant",
            ),
            (
                "object_lock: {mode: COMPLIANCE, days: 10, hold: true}",
                "unknown field",
            ),
            ("object_lock: {mode: COMPLIANCE}", "missing field `days`"),
        ] {
            let e = StoragePolicy::parse("storage.yaml", text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
