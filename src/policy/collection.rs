//! `collection.yaml`: how logs are collected from Kubernetes (per-stream byte cap, concurrency).

use serde::{Deserialize, Serialize};

use super::PolicyError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionPolicy {
    pub kubernetes: KubernetesPolicy,
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
    pub since: Option<String>,
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
        let policy: CollectionPolicy =
            serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
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
            if let Some(since) = &route.since {
                crate::source::k8s::parse_duration(since)
                    .map_err(|e| err(format!("alerts[{i}].since: {e}")))?;
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
        ] {
            let e = CollectionPolicy::parse("c.yaml", text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
