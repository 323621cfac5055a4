//! Alertmanager's webhook body (version 4), read tolerantly: unknown and newer fields (such as
//! `notification_reason`) are ignored, and alerts without a `fingerprint` (older senders) get one
//! computed from their labels.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Sha256Digest;
use crate::policy::collection::AlertRoute;
use crate::source::k8s::{K8sRequest, Since, Target};

#[derive(Debug, Deserialize)]
pub struct Notification {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(rename = "groupKey", default)]
    pub group_key: Option<String>,
    pub alerts: Vec<Alert>,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Alert {
    /// `firing` or `resolved`; older senders give it only for the whole notification.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt", default)]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl Notification {
    /// Parses a webhook body; alerts without their own status take the notification's.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let mut n: Notification = serde_json::from_slice(body)?;
        let status = n.status.clone().unwrap_or_else(|| "firing".into());
        for a in &mut n.alerts {
            if a.status.is_empty() {
                a.status = status.clone();
            }
        }
        Ok(n)
    }
}

impl Alert {
    /// Alertmanager's fingerprint, or for senders without one, a digest of the labels.
    pub fn fingerprint(&self) -> String {
        match &self.fingerprint {
            Some(f) if !f.is_empty() => f.clone(),
            _ => {
                let labels = serde_json::to_vec(&self.labels).unwrap_or_default();
                Sha256Digest::of(&labels).to_hex()[..16].to_owned()
            }
        }
    }

    /// One firing episode of one alert: its fingerprint and when it started. A resend has the
    /// same episode; the same alert firing again later has a new `startsAt`, so a new episode.
    pub fn episode(&self) -> String {
        Sha256Digest::of(format!("{}\n{}", self.fingerprint(), self.starts_at).as_bytes()).to_hex()
    }

    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// Why an alert is not collected.
pub fn route<'a>(routes: &'a [AlertRoute], alert: &Alert) -> Option<&'a AlertRoute> {
    routes.iter().find(|r| r.matches(&alert.labels))
}

/// What `route` collects for `alert`: the alert's own `namespace` and `deployment` labels win
/// over the route's.
pub fn target(
    route: &AlertRoute,
    alert: &Alert,
    kubernetes: (&Option<std::path::PathBuf>, &Option<String>),
) -> Result<K8sRequest, String> {
    let namespace = alert
        .labels
        .get("namespace")
        .or(route.namespace.as_ref())
        .cloned()
        .ok_or("neither the alert nor its route names a namespace")?;
    let target = match (
        alert.labels.get("deployment"),
        &route.deployment,
        &route.selector,
    ) {
        (Some(d), _, _) => Target::Deployment(d.clone()),
        (None, Some(d), _) => Target::Deployment(d.clone()),
        (None, None, Some(s)) => Target::Selector(s.clone()),
        (None, None, None) => {
            return Err("neither the alert nor its route names a deployment or selector".into())
        }
    };
    let since = match &route.since {
        Some(s) => Since::Seconds(s.as_secs()),
        None => Since::All,
    };
    Ok(K8sRequest {
        namespace,
        target,
        since,
        container: None,
        context: kubernetes.1.clone(),
        kubeconfig: kubernetes.0.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_deliveries_parse_and_resends_are_the_same_episode() {
        let samples = include_str!("../../tests/data/alertmanager-0.25-deliveries.jsonl");
        let mut episodes = std::collections::BTreeSet::new();
        let mut alerts = 0;
        for line in samples.lines() {
            let delivery: serde_json::Value = serde_json::from_str(line).unwrap();
            let n: Notification = serde_json::from_value(delivery["body"].clone()).unwrap();
            for a in &n.alerts {
                episodes.insert(a.episode());
                alerts += 1;
            }
        }
        // 17 deliveries carry the same few alerts again and again.
        assert!(
            alerts > episodes.len() * 2,
            "{alerts} alerts, {} episodes",
            episodes.len()
        );
        let older = Notification::parse(include_bytes!(
            "../../tests/data/alertmanager-webhook-v4-19-alerts.json"
        ))
        .unwrap();
        assert_eq!(older.alerts.len(), 19);
        // Their status is the notification's.
        assert!(older.alerts.iter().all(|a| a.status == "firing"));
        assert!(older.alerts.iter().all(|a| a.fingerprint().len() == 16));
    }
}
