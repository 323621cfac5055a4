//! Policies: the YAML files in the policy directory that decide what custody does. Each file is
//! validated completely before anything runs (unknown fields, ranges, CIDRs), and the shipped
//! files are the built-in defaults, so what ships is what runs when no directory is given.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::parse::normalise_ip;
use crate::analysis::AUTH_FAILURE_CODES;

/// The shipped detection policy, used when no policy directory is given.
pub const DEFAULT_DETECTION: &str = include_str!("../policies/detection.yaml");

/// The files a policy directory may hold.
pub const KNOWN_FILES: [&str; 1] = ["detection.yaml"];

/// The largest policy file read.
const MAX_POLICY_FILE: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read policy file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file {path} is larger than 1 MiB")]
    TooLarge { path: PathBuf },
    #[error("{path}: {message}")]
    ParsePolicy { path: String, message: String },
    #[error("{path}: unknown policy file (known: {known})", known = KNOWN_FILES.join(", "))]
    UnknownFile { path: PathBuf },
}

/// All policies custody runs with.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub detection: DetectionPolicy,
}

/// `detection.yaml`: which clients the analysis reports as suspicious.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionPolicy {
    /// Rules, tried in order; a client is reported by the first rule it meets.
    pub rules: Vec<CountRule>,
    /// Addresses or CIDR ranges never reported (health checkers, internal ranges).
    #[serde(default)]
    pub allowlist: Vec<String>,
    #[serde(skip)]
    allow: Vec<Cidr>,
}

/// Reports a client with at least `min_count` responses whose status is one of `codes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRule {
    /// A short name, shown in findings: lowercase letters, digits and `-`.
    pub name: String,
    /// What the rule detects, for people reading the policy.
    #[serde(default)]
    pub description: String,
    /// HTTP status codes counted: any of 401, 403, 419 and 429.
    pub codes: Vec<u16>,
    /// The count at which a client is reported (at least 1).
    pub min_count: u64,
}

impl Default for DetectionPolicy {
    fn default() -> Self {
        // The shipped file is parsed by a test, so this cannot fail at run time.
        DetectionPolicy::parse("built-in detection.yaml", DEFAULT_DETECTION)
            .expect("the built-in detection policy is valid")
    }
}

impl DetectionPolicy {
    pub fn parse(path: &str, text: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::ParsePolicy {
            path: path.to_owned(),
            message,
        };
        let mut policy: DetectionPolicy =
            serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
        if policy.rules.is_empty() {
            return Err(err("rules: at least one rule is needed".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (i, rule) in policy.rules.iter().enumerate() {
            if crate::id::CaseId::new(rule.name.as_str()).is_err() {
                return Err(err(format!(
                    "rules[{i}].name {:?}: use 1 to 64 lowercase letters, digits and '-'",
                    rule.name
                )));
            }
            if !names.insert(rule.name.clone()) {
                return Err(err(format!(
                    "rules[{i}].name {:?} is used twice",
                    rule.name
                )));
            }
            if rule.codes.is_empty() || rule.codes.iter().any(|c| !AUTH_FAILURE_CODES.contains(c)) {
                return Err(err(format!(
                    "rules[{i}].codes: give one or more of the counted codes 401, 403, 419, 429"
                )));
            }
            if rule.min_count == 0 {
                return Err(err(format!("rules[{i}].min_count must be at least 1")));
            }
        }
        policy.allow = policy
            .allowlist
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Cidr::parse(s).ok_or_else(|| {
                    err(format!(
                        "allowlist[{i}] {s:?} is not an address or CIDR range"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(policy)
    }

    /// Whether `ip` is allowlisted.
    pub fn is_allowed(&self, ip: &IpAddr) -> bool {
        self.allow.iter().any(|c| c.contains(ip))
    }
}

/// An address range, `192.0.2.0/24` or `2001:db8::/32`; a bare address is a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = normalise_ip(addr.trim().parse().ok()?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

fn read_policy_file(path: &Path) -> Result<String, PolicyError> {
    use std::io::Read;
    let err = |source| PolicyError::ReadFile {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_POLICY_FILE + 1).read_to_end(&mut bytes))
        .map_err(err)?;
    if bytes.len() as u64 > MAX_POLICY_FILE {
        return Err(PolicyError::TooLarge {
            path: path.to_owned(),
        });
    }
    String::from_utf8(bytes).map_err(|_| PolicyError::ParsePolicy {
        path: path.display().to_string(),
        message: "not UTF-8 text".into(),
    })
}

/// Loads the policies in `dir`; a file that is absent takes its built-in default. Every YAML file
/// in the directory must be a known policy file.
pub fn load(dir: Option<&Path>) -> Result<Policies, PolicyError> {
    let Some(dir) = dir else {
        return Ok(Policies::default());
    };
    lint(dir)?;
    let detection_path = dir.join("detection.yaml");
    let detection = if detection_path.exists() {
        DetectionPolicy::parse(
            &detection_path.display().to_string(),
            &read_policy_file(&detection_path)?,
        )?
    } else {
        DetectionPolicy::default()
    };
    Ok(Policies { detection })
}

/// Validates every policy file in `dir`; returns the files checked.
pub fn lint(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let entries = fs::read_dir(dir).map_err(|source| PolicyError::ReadDir {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PolicyError::ReadDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if !is_yaml {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.as_str() {
            "detection.yaml" => {
                DetectionPolicy::parse(&path.display().to_string(), &read_policy_file(&path)?)?;
            }
            _ => return Err(PolicyError::UnknownFile { path }),
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_policies_lint_clean() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let files = lint(&dir).unwrap();
        assert_eq!(files.len(), KNOWN_FILES.len());
        let p = load(Some(&dir)).unwrap();
        assert_eq!(p.detection.rules[0].name, "auth-failures");
    }

    #[test]
    fn bad_policies_name_the_problem() {
        let cases = [
            ("rules: []", "at least one rule"),
            ("rules: [{name: a, codes: [401], min_count: 1, extra: 1}]", "unknown field"),
            ("rules: [{name: A, codes: [401], min_count: 1}]", "name"),
            ("rules: [{name: a, codes: [999], min_count: 1}]", "codes"),
            // Per-client counts are kept for the auth-failure codes only, so a rule on 404 could
            // never fire; it is refused rather than accepted and silently inert.
            ("rules: [{name: a, codes: [404], min_count: 1}]", "401, 403, 419, 429"),
            ("rules: [{name: a, codes: [401], min_count: 0}]", "min_count"),
            ("rules: [{name: a, codes: [401], min_count: 1}, {name: a, codes: [401], min_count: 1}]", "twice"),
            ("rules: [{name: a, codes: [401], min_count: 1}]\nallowlist: [10.0.0.0/33]", "allowlist[0]"),
            ("rules: {", "detection.yaml"),
        ];
        for (text, want) in cases {
            let err = DetectionPolicy::parse("detection.yaml", text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(&"10.1.255.1".parse().unwrap()));
        assert!(!c.contains(&"10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("::ffff:10.1.2.3")
            .unwrap()
            .contains(&"10.1.2.3".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32")
            .unwrap()
            .contains(&"2001:db8:1::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(&"8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/").is_none());
    }

    #[test]
    fn unknown_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("detektion.yaml"), DEFAULT_DETECTION).unwrap();
        assert!(matches!(
            lint(dir.path()),
            Err(PolicyError::UnknownFile { .. })
        ));
    }
}
