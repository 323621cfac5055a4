//! One collection for a worker, and what a case collects as its `case_opened` entry records it
//! (`trigger_details.target`), so that a restart collects the same.

use serde::{Deserialize, Serialize};

use crate::collect::Trigger;
use crate::id::CaseId;
use crate::source::k8s::{K8sRequest, Since, Target};

/// One collection for a worker.
#[derive(Clone, Debug)]
pub struct Job {
    pub case: CaseId,
    pub target: K8sRequest,
    pub trigger: Trigger,
    /// The alert, for `data/trigger/alert.json`.
    pub payload: Option<Vec<u8>>,
    /// Why this is a second attempt, if it is.
    pub restarted: Option<String>,
    /// The alert episode, whose resolve (if it came during the collection) is journaled at
    /// the end.
    pub episode: Option<String>,
    /// The last journal entry when this collection was decided on: a collection that ended
    /// after it (another replica's) did this one's work (`lease`).
    pub journal_seen: u64,
}

/// A collection's target as journaled. Every field is written, `null` when it does not apply;
/// `deployment` wins over `selector` and `since_seconds` over `since_time` when reading back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedTarget {
    pub namespace: String,
    #[serde(default)]
    pub deployment: Option<String>,
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub since_seconds: Option<u64>,
    #[serde(default)]
    pub since_time: Option<String>,
    #[serde(default)]
    pub container: Option<String>,
}

impl RecordedTarget {
    pub fn of(t: &K8sRequest) -> Self {
        let (deployment, selector) = match &t.target {
            Target::Deployment(d) => (Some(d.clone()), None),
            Target::Selector(s) => (None, Some(s.clone())),
        };
        let (since_seconds, since_time) = match &t.since {
            Since::Seconds(s) => (Some(*s), None),
            Since::Time(s) => (None, Some(s.clone())),
            Since::All => (None, None),
        };
        Self {
            namespace: t.namespace.clone(),
            deployment,
            selector,
            since_seconds,
            since_time,
            container: t.container.clone(),
        }
    }

    /// As it goes into the journal: an object whose keys are written in sorted order, like
    /// every other object of the entry.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The target, for the cluster given by `kubernetes` (kubeconfig and context); `None` if
    /// it names neither a deployment nor a selector.
    pub fn into_request(
        self,
        kubeconfig: Option<std::path::PathBuf>,
        context: Option<String>,
    ) -> Option<K8sRequest> {
        let target = match (self.deployment, self.selector) {
            (Some(dep), _) => Target::Deployment(dep),
            (None, Some(sel)) => Target::Selector(sel),
            (None, None) => return None,
        };
        let since = match (self.since_seconds, self.since_time) {
            (Some(s), _) => Since::Seconds(s),
            (None, Some(t)) => Since::Time(t),
            (None, None) => Since::All,
        };
        Some(K8sRequest {
            namespace: self.namespace,
            target,
            since,
            container: self.container,
            context,
            kubeconfig,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_journaled_as_before_and_read_back_the_same() {
        let request = K8sRequest {
            namespace: "waqiti".into(),
            target: Target::Deployment("api-gateway".into()),
            since: Since::Seconds(3600),
            container: None,
            context: None,
            kubeconfig: None,
        };
        let json = RecordedTarget::of(&request).to_json();
        // The bytes the hand-written JSON of earlier builds gave.
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"{"container":null,"deployment":"api-gateway","namespace":"waqiti","selector":null,"since_seconds":3600,"since_time":null}"#
        );
        let back: RecordedTarget = serde_json::from_value(json).unwrap();
        let again = back.into_request(None, None).unwrap();
        assert_eq!(again.namespace, "waqiti");
        assert!(matches!(again.target, Target::Deployment(d) if d == "api-gateway"));
        assert!(matches!(again.since, Since::Seconds(3600)));
        // Neither a deployment nor a selector: nothing to collect.
        let none: RecordedTarget = serde_json::from_str(r#"{"namespace": "w"}"#).unwrap();
        assert!(none.into_request(None, None).is_none());
    }
}
