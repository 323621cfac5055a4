//! One collection for a worker, and what a case collects as its `case_opened` entry records it
//! (`trigger_details.target`, a `case::entry::CollectionTarget`), so that a restart collects the
//! same.

use crate::case::entry::CollectionTarget;
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
    /// Why this is a second attempt, if it is (journaled as `collection_restarted` first).
    pub restarted: Option<String>,
    /// The alert episode, whose resolve (if it came during the collection) is journaled at
    /// the end.
    pub episode: Option<String>,
    /// The last journal entry when this collection was decided on: a collection that ended
    /// after it (another replica's) did this one's work (`lease`).
    pub journal_seen: u64,
}

/// A collection's target as journaled. Every field is written, `null` when it does not apply.
pub fn recorded_target(t: &K8sRequest) -> CollectionTarget {
    let (deployment, selector) = match &t.target {
        Target::Deployment(d) => (Some(d.clone()), None),
        Target::Selector(s) => (None, Some(s.clone())),
    };
    let (since_seconds, since_time) = match &t.since {
        Since::Seconds(s) => (Some(*s), None),
        Since::Time(s) => (None, Some(s.clone())),
        Since::All => (None, None),
    };
    CollectionTarget {
        container: t.container.clone(),
        deployment,
        namespace: t.namespace.clone(),
        selector,
        since_seconds,
        since_time,
    }
}

/// The journaled target, for the cluster given by `kubeconfig` and `context`; `None` if it
/// names neither a deployment nor a selector. `deployment` wins over `selector` and
/// `since_seconds` over `since_time`.
pub fn request_of(
    t: CollectionTarget,
    kubeconfig: Option<std::path::PathBuf>,
    context: Option<String>,
) -> Option<K8sRequest> {
    let target = match (t.deployment, t.selector) {
        (Some(dep), _) => Target::Deployment(dep),
        (None, Some(sel)) => Target::Selector(sel),
        (None, None) => return None,
    };
    let since = match (t.since_seconds, t.since_time) {
        (Some(s), _) => Since::Seconds(s),
        (None, Some(t)) => Since::Time(t),
        (None, None) => Since::All,
    };
    Some(K8sRequest {
        namespace: t.namespace,
        target,
        since,
        container: t.container,
        context,
        kubeconfig,
    })
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
        let recorded = recorded_target(&request);
        // The bytes the hand-written JSON of earlier builds gave.
        let bytes = serde_json::to_string(&recorded).unwrap();
        assert_eq!(
            bytes,
            r#"{"container":null,"deployment":"api-gateway","namespace":"waqiti","selector":null,"since_seconds":3600,"since_time":null}"#
        );
        let back: CollectionTarget = serde_json::from_str(&bytes).unwrap();
        assert_eq!(back, recorded);
        let again = request_of(back, None, None).unwrap();
        assert_eq!(again.namespace, "waqiti");
        assert!(matches!(again.target, Target::Deployment(d) if d == "api-gateway"));
        assert!(matches!(again.since, Since::Seconds(3600)));
        // A selector and a time, and the case_opened entry's bytes as a whole.
        let selected = K8sRequest {
            namespace: "w".into(),
            target: Target::Selector("app=x".into()),
            since: Since::Time("2026-11-26T14:00:00Z".into()),
            container: Some("gateway".into()),
            context: None,
            kubeconfig: None,
        };
        let details = crate::case::entry::TriggerDetails {
            alert: None,
            episode: Some("e".into()),
            fingerprint: Some("f".into()),
            target: Some(recorded_target(&selected)),
            replica: None,
        };
        assert_eq!(
            serde_json::to_string(&details).unwrap(),
            r#"{"episode":"e","fingerprint":"f","target":{"container":"gateway","deployment":null,"namespace":"w","selector":"app=x","since_seconds":null,"since_time":"2026-11-26T14:00:00Z"}}"#
        );
        // Neither a deployment nor a selector: nothing to collect.
        let none: CollectionTarget = serde_json::from_str(r#"{"namespace": "w"}"#).unwrap();
        assert!(request_of(none, None, None).is_none());
    }
}
