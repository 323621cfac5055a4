//! `collection.yaml`: how logs are collected (the per-stream byte cap for Kubernetes logs and for
//! files and devices, concurrency) and the analysis's memory budget.

use serde::{Deserialize, Serialize};

use super::PolicyError;
use crate::duration::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionPolicy {
    pub kubernetes: KubernetesPolicy,
    /// Local files, devices and standard input.
    #[serde(default)]
    pub files: FilesPolicy,
    /// The analysis of what is collected.
    #[serde(default)]
    pub analysis: AnalysisPolicy,
    /// Alerts that open a case, first match wins.
    #[serde(default)]
    pub alerts: Vec<AlertRoute>,
}

/// One alert route: which alerts, and what they collect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRoute {
    /// Label name → value; every one must equal the alert's label.
    #[serde(rename = "match")]
    pub matchers: std::collections::BTreeMap<String, String>,
    pub namespace: Option<String>,
    pub deployment: Option<String>,
    pub selector: Option<String>,
    /// How far back the logs are collected: 90s, 15m, 2h, 7d [default: everything].
    pub since: Option<Duration>,
}

impl AlertRoute {
    /// Whether every matcher equals the alert's label.
    pub fn matches(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesPolicy {
    /// The cap on each log stream (`limitBytes`).
    pub limit_bytes: u64,
    /// Log streams read at once.
    pub concurrency: usize,
    /// Whether init containers' logs are collected.
    #[serde(default = "yes")]
    pub init_containers: bool,
}

fn yes() -> bool {
    true
}

/// Local inputs given with `--logs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesPolicy {
    /// The cap on each file, device or standard input, in bytes: an input with more is sealed
    /// up to the cap and recorded as truncated (an endless input such as a device never ends by
    /// itself).
    #[serde(default = "default_limit_bytes")]
    pub limit_bytes: u64,
}

impl Default for FilesPolicy {
    fn default() -> Self {
        Self {
            limit_bytes: default_limit_bytes(),
        }
    }
}

/// 10 GiB, the same cap as the shipped Kubernetes one.
fn default_limit_bytes() -> u64 {
    10 << 30
}

/// How much the analysis may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisPolicy {
    /// The memory the analysis's tables may use, in bytes. Past it, clients first seen later
    /// are not counted one by one (their requests are counted together, and the summary says
    /// how many); the logs are sealed whole all the same.
    #[serde(default = "default_memory_budget")]
    pub memory_budget_bytes: u64,
}

impl Default for AnalysisPolicy {
    fn default() -> Self {
        Self {
            memory_budget_bytes: default_memory_budget(),
        }
    }
}

/// 512 MiB: room for millions of clients, with the rest of a 1 GiB pod for compression and
/// buffers.
fn default_memory_budget() -> u64 {
    512 << 20
}

/// The smallest budget accepted (4 MiB): below it the tables' fixed part leaves no room for
/// clients.
const MIN_MEMORY_BUDGET: u64 = 4 << 20;

const MAX_LIMIT_BYTES: u64 = 1 << 40;
const MAX_CONCURRENCY: usize = 64;

impl Default for CollectionPolicy {
    fn default() -> Self {
        // The shipped file is the default; it is tested to parse.
        Self::parse("built-in collection.yaml", super::DEFAULT_COLLECTION).unwrap_or(Self {
            kubernetes: KubernetesPolicy {
                limit_bytes: 10 << 30,
                concurrency: 4,
                init_containers: true,
            },
            files: FilesPolicy::default(),
            analysis: AnalysisPolicy::default(),
            alerts: Vec::new(),
        })
    }
}

impl CollectionPolicy {
    pub fn parse(path: &str, text: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::ParsePolicy {
            path: path.to_owned(),
            message,
        };
        let policy: CollectionPolicy = super::from_yaml(path, text)?;
        let k = policy.kubernetes;
        if !(1..=MAX_LIMIT_BYTES).contains(&k.limit_bytes) {
            return Err(err(format!(
                "kubernetes.limit_bytes must be 1 to {MAX_LIMIT_BYTES}, not {}",
                k.limit_bytes
            )));
        }
        if !(1..=MAX_CONCURRENCY).contains(&k.concurrency) {
            return Err(err(format!(
                "kubernetes.concurrency must be 1 to {MAX_CONCURRENCY}, not {}",
                k.concurrency
            )));
        }
        if !(1..=MAX_LIMIT_BYTES).contains(&policy.files.limit_bytes) {
            return Err(err(format!(
                "files.limit_bytes must be 1 to {MAX_LIMIT_BYTES}, not {}",
                policy.files.limit_bytes
            )));
        }
        if policy.analysis.memory_budget_bytes < MIN_MEMORY_BUDGET {
            return Err(err(format!(
                "analysis.memory_budget_bytes must be at least {MIN_MEMORY_BUDGET}, not {}",
                policy.analysis.memory_budget_bytes
            )));
        }
        for (i, route) in policy.alerts.iter().enumerate() {
            if route.matchers.is_empty() {
                return Err(err(format!(
                    "alerts[{i}]: `match` needs at least one label"
                )));
            }
            if route.deployment.is_some() && route.selector.is_some() {
                return Err(err(format!(
                    "alerts[{i}]: give `deployment` or `selector`, not both"
                )));
            }
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_and_bad_policies() {
        let p = CollectionPolicy::parse("t", super::super::DEFAULT_COLLECTION).unwrap();
        assert_eq!(p, CollectionPolicy::default());
        let breach = std::collections::BTreeMap::from([(
            "alertname".to_owned(),
            "WaqitiSecurityBreachDetected".to_owned(),
        )]);
        let route = p.alerts.iter().find(|r| r.matches(&breach)).unwrap();
        assert_eq!(route.namespace.as_deref(), Some("waqiti"));
        assert_eq!(route.deployment.as_deref(), Some("api-gateway"));
        for (text, want) in [
            (
                "kubernetes: {limit_bytes: 0, concurrency: 4}",
                "limit_bytes must be",
            ),
            (
                "kubernetes: {limit_bytes: 10, concurrency: 0}",
                "concurrency must be",
            ),
            (
                "kubernetes: {limit_bytes: 10, concurrency: 4, secrets: true}",
                "unknown field",
            ),
            (
                "kubernetes: {limit_bytes: 10, concurrency: 4}\nfiles: {limit_bytes: 0}",
                "files.limit_bytes must be",
            ),
            (
                "kubernetes: {limit_bytes: 10, concurrency: 4}\nanalysis: {memory_budget_bytes: 1000}",
                "memory_budget_bytes must be",
            ),
        ] {
            let e = CollectionPolicy::parse("c.yaml", text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
