//! Policies: the YAML files in the policy directory that decide what custody does. Each file is
//! validated completely before anything runs (unknown fields, ranges, CIDRs), and the shipped
//! files are the built-in defaults, so what ships is what runs when no directory is given.

use std::fs;
use std::path::{Path, PathBuf};

pub mod collection;
pub mod containment;
pub mod detection;
pub mod formats;
pub mod storage;

pub use collection::CollectionPolicy;
pub use containment::ContainmentPolicy;
pub use detection::{DetectionPolicy, Rule};
pub use formats::FormatsPolicy;
pub use storage::StoragePolicy;

/// The shipped detection policy, used when no policy directory is given.
pub const DEFAULT_DETECTION: &str = include_str!("../policies/detection.yaml");
/// The shipped formats policy, used when no policy directory is given.
pub const DEFAULT_FORMATS: &str = include_str!("../policies/formats.yaml");
/// The shipped storage policy, used when no policy directory is given.
pub const DEFAULT_STORAGE: &str = include_str!("../policies/storage.yaml");

/// The shipped collection policy, used when no policy directory is given.
pub const DEFAULT_COLLECTION: &str = include_str!("../policies/collection.yaml");

/// The shipped containment policy (no targets: nothing is contained until an operator names
/// them), used when no policy directory is given.
pub const DEFAULT_CONTAINMENT: &str = include_str!("../policies/containment.yaml");

/// The files a policy directory may hold.
pub const KNOWN_FILES: [&str; 5] = [
    "collection.yaml",
    "containment.yaml",
    "detection.yaml",
    "formats.yaml",
    "storage.yaml",
];

/// The approvers' roster (OpenSSH `allowed_signers`), linted with the YAML files.
pub const ROSTER_FILE: &str = "approvers.allowed_signers";

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
    #[error(transparent)]
    Roster(#[from] crate::approval::roster::RosterError),
    #[error("{path}: unknown policy file (known: {known})", known = KNOWN_FILES.join(", "))]
    UnknownFile { path: PathBuf },
}

/// All policies custody runs with.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    pub detection: DetectionPolicy,
    pub formats: FormatsPolicy,
    pub storage: StoragePolicy,
    pub collection: CollectionPolicy,
    pub containment: ContainmentPolicy,
}

/// Reads a policy file's text as a `T`; the error names the file, the field and the line.
fn from_yaml<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> Result<T, PolicyError> {
    crate::yaml::from_str(text).map_err(|e| PolicyError::ParsePolicy {
        path: path.to_owned(),
        message: e.to_string(),
    })
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
    let mut policies = Policies::default();
    let detection = dir.join("detection.yaml");
    if detection.exists() {
        policies.detection = DetectionPolicy::parse(
            &detection.display().to_string(),
            &read_policy_file(&detection)?,
        )?;
    }
    let formats = dir.join("formats.yaml");
    if formats.exists() {
        policies.formats =
            FormatsPolicy::parse(&formats.display().to_string(), &read_policy_file(&formats)?)?;
    }
    let collection = dir.join("collection.yaml");
    if collection.exists() {
        policies.collection = CollectionPolicy::parse(
            &collection.display().to_string(),
            &read_policy_file(&collection)?,
        )?;
    }
    let storage = dir.join("storage.yaml");
    if storage.exists() {
        policies.storage =
            StoragePolicy::parse(&storage.display().to_string(), &read_policy_file(&storage)?)?;
    }
    let containment = dir.join("containment.yaml");
    if containment.exists() {
        policies.containment = ContainmentPolicy::parse(
            &containment.display().to_string(),
            &read_policy_file(&containment)?,
        )?;
    }
    Ok(policies)
}

/// Validates every policy file in `dir`, and the approvers' roster if there is one; returns the
/// files checked.
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
        if entry.file_name() == ROSTER_FILE {
            crate::approval::Roster::read(&path)?;
            files.push(path);
            continue;
        }
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
            "formats.yaml" => {
                FormatsPolicy::parse(&path.display().to_string(), &read_policy_file(&path)?)?;
            }
            "storage.yaml" => {
                StoragePolicy::parse(&path.display().to_string(), &read_policy_file(&path)?)?;
            }
            "collection.yaml" => {
                CollectionPolicy::parse(&path.display().to_string(), &read_policy_file(&path)?)?;
            }
            "containment.yaml" => {
                ContainmentPolicy::parse(&path.display().to_string(), &read_policy_file(&path)?)?;
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
        assert_eq!(files.len(), KNOWN_FILES.len() + 1);
        let p = load(Some(&dir)).unwrap();
        assert!(!p.detection.rules.is_empty());
        assert_eq!(p.formats.trusted_proxies().len(), 0);
        assert!(p.containment.targets.is_empty());
        assert_eq!(p.containment, ContainmentPolicy::default());
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let cases = [
            (
                "collection.yaml",
                "kubernetes: {limit_bytes: 10, concurrency: 4}\nalerts:\n  - match: {a: b}\n    since: 5x\n",
                "alerts[0].since: \"5x\" is not a duration like 90s, 15m, 2h or 7d at line 4",
            ),
            (
                "formats.yaml",
                "client_ip:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.0.0.0/40\n",
                "client_ip.trusted_proxies[1]: \"10.0.0.0/40\" is not an address or CIDR range at line 4",
            ),
            (
                "storage.yaml",
                "object_lock:\n  mode: COMPLIANCE\n  days: 3\n  hold: true\n",
                "object_lock.hold: unknown field `hold`",
            ),
            (
                "detection.yaml",
                "rules:\n  - name: a\n    kind: count\n    codes: [401]\n    min_count: many\n",
                "rules[0].min_count: invalid u64 at line 5",
            ),
            (
                "containment.yaml",
                "targets: []\nplan:\n  not_after: 1m\n",
                "plan.not_after: 1m is out of range: give 5m to 7d at line 3",
            ),
        ];
        for (file, text, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(file), text).unwrap();
            let err = load(Some(dir.path())).unwrap_err().to_string();
            let path = dir.path().join(file).display().to_string();
            assert!(err.starts_with(&format!("{path}: ")), "{err}");
            assert!(err.contains(want) && err.contains("line"), "{err}");
        }
    }

    #[test]
    fn lint_checks_the_roster_and_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(ROSTER_FILE),
            "# team\n*@example.org ssh-ed25519 AAAA\n",
        )
        .unwrap();
        let err = lint(dir.path()).unwrap_err().to_string();
        let path = dir.path().join(ROSTER_FILE).display().to_string();
        assert!(err.starts_with(&format!("{path}:2: ")), "{err}");
        assert!(err.contains("wildcard"), "{err}");
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
