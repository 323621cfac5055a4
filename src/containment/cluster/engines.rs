//! The policies of other engines that can admit what a NetworkPolicy refuses, and custody does
//! not evaluate: AdminNetworkPolicies and Admin-tier ClusterNetworkPolicies (before every
//! NetworkPolicy), Calico and Antrea policies (beside or before them). Each engine is listed at
//! the first of its group versions discovery serves (every version serves the same objects), and
//! not at all where none is served. BaselineAdminNetworkPolicies and Baseline-tier
//! ClusterNetworkPolicies apply only to traffic no NetworkPolicy decides: they count when they
//! deny, and refuse the method unless the operator's NetworkPolicies alone decide ingress to the
//! target pods, since a custody block policy admits every source but the blocked ones and would
//! admit what they refused.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::kube::{encode, Cluster};

use super::read::{discover, list, ReadError};
use super::OtherPolicy;

/// The discovery documents of Calico's policy and IPPool kinds, in order of preference: the CRDs
/// (served wherever Calico stores its objects as CRDs, its API server included), then the API
/// group Calico serves when its CRDs carry that group themselves.
pub(super) const CALICO_VERSIONS: &[&str] = &[
    "/apis/crd.projectcalico.org/v1",
    "/apis/projectcalico.org/v3",
];

/// One kind of policy of another engine.
struct Engine {
    /// The discovery documents serving it, in order of preference.
    versions: &'static [&'static str],
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    /// Whether an object of this kind can make a NetworkPolicy block wrong: admit ingress it
    /// refuses, or (a baseline policy) refuse ingress a custody block policy would admit.
    admits: fn(&Value) -> bool,
    /// Whether an object of this kind is a baseline policy: one that applies only to traffic no
    /// NetworkPolicy decides.
    baseline: fn(&Value) -> bool,
}

const ENGINES: [Engine; 7] = [
    Engine {
        versions: &["/apis/policy.networking.k8s.io/v1alpha1"],
        resource: "adminnetworkpolicies",
        kind: "AdminNetworkPolicy",
        namespaced: false,
        admits: |p| ingress_admits(p, &["Deny", "Pass"]),
        baseline: |_| false,
    },
    Engine {
        versions: &["/apis/policy.networking.k8s.io/v1alpha1"],
        resource: "baselineadminnetworkpolicies",
        kind: "BaselineAdminNetworkPolicy",
        namespaced: false,
        admits: ingress_denies,
        baseline: |_| true,
    },
    Engine {
        versions: &["/apis/policy.networking.k8s.io/v1alpha2"],
        resource: "clusternetworkpolicies",
        kind: "ClusterNetworkPolicy",
        namespaced: false,
        admits: |p| {
            if baseline_tier(p) {
                ingress_denies(p)
            } else {
                ingress_admits(p, &["Deny", "Pass"])
            }
        },
        baseline: baseline_tier,
    },
    Engine {
        versions: CALICO_VERSIONS,
        resource: "globalnetworkpolicies",
        kind: "Calico GlobalNetworkPolicy",
        namespaced: false,
        admits: |_| true,
        baseline: |_| false,
    },
    Engine {
        versions: CALICO_VERSIONS,
        resource: "networkpolicies",
        kind: "Calico NetworkPolicy",
        namespaced: true,
        admits: |_| true,
        baseline: |_| false,
    },
    Engine {
        versions: &[
            "/apis/crd.antrea.io/v1beta1",
            "/apis/crd.antrea.io/v1alpha1",
        ],
        resource: "clusternetworkpolicies",
        kind: "Antrea ClusterNetworkPolicy",
        namespaced: false,
        admits: |_| true,
        baseline: |_| false,
    },
    Engine {
        versions: &[
            "/apis/crd.antrea.io/v1beta1",
            "/apis/crd.antrea.io/v1alpha1",
        ],
        resource: "networkpolicies",
        kind: "Antrea NetworkPolicy",
        namespaced: true,
        admits: |_| true,
        baseline: |_| false,
    },
];

/// Whether a ClusterNetworkPolicy is of the Baseline tier.
fn baseline_tier(policy: &Value) -> bool {
    policy["spec"]["tier"].as_str() == Some("Baseline")
}

/// Whether any ingress rule's action is other than `refusing` (a rule without an action counts:
/// what custody cannot read, it does not assume harmless).
fn ingress_admits(policy: &Value, refusing: &[&str]) -> bool {
    policy["spec"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|rule| {
            rule["action"]
                .as_str()
                .is_none_or(|a| !refusing.iter().any(|r| r.eq_ignore_ascii_case(a)))
        })
}

/// Whether any ingress rule denies (or has no action custody can read).
fn ingress_denies(policy: &Value) -> bool {
    policy["spec"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|rule| {
            rule["action"].as_str().is_none_or(|a| {
                !a.eq_ignore_ascii_case("Allow") && !a.eq_ignore_ascii_case("Accept")
            })
        })
}

/// Calico's own API (`projectcalico.org/v3`, not its CRDs) lists the Kubernetes policies it
/// enforces beside its own, under these prefixes (`knp.default.<name>` for a NetworkPolicy, and
/// so on): custody reads those in their own right.
fn calico_view_of_kubernetes(doc: &str, policy: &Value) -> bool {
    let name = policy["metadata"]["name"].as_str().unwrap_or_default();
    doc == CALICO_VERSIONS[1]
        && ["knp.", "kanp.", "kbanp.", "kcnp."]
            .iter()
            .any(|p| name.starts_with(p))
}

/// The discovery documents already asked for: each is read once per view.
#[derive(Default)]
pub(super) struct Discovered(BTreeMap<&'static str, Option<Vec<String>>>);

impl Discovered {
    /// The first of `versions` that serves `resource`.
    pub(super) async fn first_serving(
        &mut self,
        cluster: &Cluster,
        versions: &'static [&'static str],
        resource: &str,
    ) -> Result<Option<&'static str>, ReadError> {
        for doc in versions {
            if !self.0.contains_key(doc) {
                let what = format!(
                    "the {} discovery document",
                    doc.trim_start_matches("/apis/")
                );
                self.0.insert(doc, discover(cluster, &what, doc).await?);
            }
            if self.0[doc]
                .as_ref()
                .is_some_and(|r| r.iter().any(|x| x == resource))
            {
                return Ok(Some(doc));
            }
        }
        Ok(None)
    }
}

/// Every policy of another engine that can admit what a NetworkPolicy refuses: cluster-scoped
/// ones cluster-wide, namespaced ones in `namespaces`. A list refused or failing fails the read,
/// like every other.
pub(super) async fn other_policies(
    cluster: &Cluster,
    discovered: &mut Discovered,
    namespaces: &[String],
) -> Result<Vec<OtherPolicy>, ReadError> {
    let mut out = Vec::new();
    for engine in &ENGINES {
        let Some(doc) = discovered
            .first_serving(cluster, engine.versions, engine.resource)
            .await?
        else {
            continue;
        };
        let resource = engine.resource;
        let paths: Vec<String> = if engine.namespaced {
            namespaces
                .iter()
                .map(|ns| format!("{doc}/namespaces/{}/{resource}", encode(ns)))
                .collect()
        } else {
            vec![format!("{doc}/{resource}")]
        };
        for path in paths {
            let what = format!("the {} objects", engine.kind);
            let items: Vec<Value> = list(cluster, &what, &path).await?;
            let counts = |i: &&Value| (engine.admits)(i) && !calico_view_of_kubernetes(doc, i);
            for item in items.iter().filter(counts) {
                let text = |field: &str| item["metadata"][field].as_str().map(str::to_owned);
                out.push(OtherPolicy {
                    kind: engine.kind.to_owned(),
                    api_version: doc.trim_start_matches("/apis/").to_owned(),
                    namespace: text("namespace").filter(|_| engine.namespaced),
                    name: text("name").unwrap_or_default(),
                    resource_version: text("resourceVersion").unwrap_or_default(),
                    baseline: (engine.baseline)(item),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_rules_that_may_admit_count() {
        let anp = |actions: &[&str]| {
            let rules: Vec<Value> = actions.iter().map(|a| json!({"action": a})).collect();
            json!({"spec": {"ingress": rules}})
        };
        let admits = ENGINES[0].admits;
        assert!(admits(&anp(&["Deny", "Allow"])));
        assert!(!admits(&anp(&["Deny", "Pass"])));
        assert!(!admits(&anp(&[])));
        assert!(admits(&json!({"spec": {"ingress": [{"from": []}]}})));
        let cnp = |tier: &str, action: &str| json!({"spec": {"tier": tier, "ingress": [{"action": action}]}});
        let counts = ENGINES[2].admits;
        assert!(counts(&cnp("Admin", "Accept")));
        assert!(!counts(&cnp("Admin", "Deny")));
        // A baseline policy counts when it denies: a custody block policy would admit what it
        // refused.
        assert!(!counts(&cnp("Baseline", "Accept")));
        assert!(counts(&cnp("Baseline", "Deny")));
        assert!((ENGINES[1].admits)(&anp(&["Allow", "Deny"])));
        assert!(!(ENGINES[1].admits)(&anp(&["Allow"])));
        // Which are baseline policies: they refuse the method only where the operator's
        // NetworkPolicies alone do not decide ingress to the target pods.
        assert!((ENGINES[1].baseline)(&anp(&["Deny"])));
        assert!((ENGINES[2].baseline)(&cnp("Baseline", "Deny")));
        assert!(!(ENGINES[2].baseline)(&cnp("Admin", "Accept")));
        assert!(ENGINES
            .iter()
            .filter(|e| e.kind != "BaselineAdminNetworkPolicy" && e.kind != "ClusterNetworkPolicy")
            .all(|e| !(e.baseline)(&cnp("Baseline", "Deny"))));
    }

    #[test]
    fn calicos_views_of_kubernetes_policies_do_not_count_in_its_own_api_only() {
        let named = |n: &str| json!({"metadata": {"name": n}});
        let v3 = CALICO_VERSIONS[1];
        assert!(calico_view_of_kubernetes(
            v3,
            &named("knp.default.allow-gateway")
        ));
        assert!(calico_view_of_kubernetes(
            v3,
            &named("kanp.adminnetworkpolicy.x")
        ));
        assert!(!calico_view_of_kubernetes(v3, &named("default.allow-all")));
        // In the CRDs such a name is a real Calico policy.
        let crds = CALICO_VERSIONS[0];
        assert!(!calico_view_of_kubernetes(
            crds,
            &named("knp.default.allow-all")
        ));
    }
}
