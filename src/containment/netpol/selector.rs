//! Which pods and namespaces a NetworkPolicy selects: label selectors (`matchLabels` and
//! `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`) and the policy types a policy
//! has, exactly as the API reference defines them, shared by the planner and the evaluator.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Labels of a pod or a namespace.
pub type Labels = BTreeMap<String, String>;

/// Whether `selector` selects an object with `labels`. A null selector (`None`) selects nothing
/// and an empty one (`{}`) selects everything, per the API reference; callers whose field gives
/// `None` another meaning (a policy's `podSelector`, a peer's absent selector) decide before.
pub fn selects(selector: Option<&LabelSelector>, labels: &Labels) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_match
        && selector
            .match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_holds(r, labels))
}

fn requirement_holds(r: &LabelSelectorRequirement, labels: &Labels) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let value = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // The API server accepts no other operator; one that is not understood selects nothing
        // rather than everything.
        _ => false,
    }
}

/// Whether the policy's `podSelector` selects a pod with `labels`. The field is optional: absent,
/// the API reference defaults it to the empty selector (every pod of the namespace).
pub fn policy_selects_pod(policy: &NetworkPolicy, labels: &Labels) -> bool {
    let empty = LabelSelector::default();
    let selector = policy
        .spec
        .as_ref()
        .and_then(|s| s.pod_selector.as_ref())
        .unwrap_or(&empty);
    selects(Some(selector), labels)
}

/// Whether the policy is Ingress-typed: listed in `policyTypes`, or — when that is absent or
/// empty — always (the API defaults it to `Ingress`, plus `Egress` when there are egress rules).
pub fn is_ingress_typed(policy: &NetworkPolicy) -> bool {
    match policy.spec.as_ref().and_then(|s| s.policy_types.as_ref()) {
        Some(types) if !types.is_empty() => types.iter().any(|t| t == "Ingress"),
        _ => true,
    }
}

/// Whether the policy isolates the pod with `labels` for ingress.
pub fn isolates_for_ingress(policy: &NetworkPolicy, labels: &Labels) -> bool {
    policy.spec.is_some() && is_ingress_typed(policy) && policy_selects_pod(policy, labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicySpec};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn with_expr(r: LabelSelectorRequirement) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![r]),
            ..Default::default()
        }
    }

    #[test]
    fn null_selects_nothing_and_empty_selects_everything() {
        let pod = labels(&[("app", "gw")]);
        assert!(!selects(None, &pod));
        assert!(selects(Some(&LabelSelector::default()), &pod));
        assert!(selects(Some(&LabelSelector::default()), &Labels::new()));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "gw"), ("tier", "edge")])),
            ..Default::default()
        };
        assert!(selects(
            Some(&sel),
            &labels(&[("app", "gw"), ("tier", "edge"), ("x", "y")])
        ));
        assert!(!selects(Some(&sel), &labels(&[("app", "gw")])));
        assert!(!selects(
            Some(&sel),
            &labels(&[("app", "gw"), ("tier", "core")])
        ));
    }

    #[test]
    fn expressions_follow_the_api_reference() {
        let gw = labels(&[("app", "gw")]);
        let none = Labels::new();
        let cases = [
            (req("app", "In", &["gw", "db"]), true, false),
            (req("app", "In", &["db"]), false, false),
            (req("app", "NotIn", &["db"]), true, true),
            (req("app", "NotIn", &["gw"]), false, true),
            (req("app", "Exists", &[]), true, false),
            (req("app", "DoesNotExist", &[]), false, true),
            (req("app", "Gt", &["1"]), false, false),
        ];
        for (r, on_gw, on_none) in cases {
            let sel = with_expr(r.clone());
            assert_eq!(selects(Some(&sel), &gw), on_gw, "{r:?} on app=gw");
            assert_eq!(selects(Some(&sel), &none), on_none, "{r:?} on no labels");
        }
    }

    #[test]
    fn policy_types_default_to_ingress() {
        let mut p = NetworkPolicy {
            spec: Some(NetworkPolicySpec {
                egress: Some(vec![NetworkPolicyEgressRule::default()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(is_ingress_typed(&p));
        // An absent podSelector is the empty selector: every pod.
        assert!(isolates_for_ingress(&p, &Labels::new()));
        p.spec.as_mut().unwrap().policy_types = Some(vec!["Egress".into()]);
        assert!(!is_ingress_typed(&p));
        p.spec.as_mut().unwrap().policy_types = Some(vec!["Egress".into(), "Ingress".into()]);
        assert!(is_ingress_typed(&p));
        assert!(!isolates_for_ingress(
            &NetworkPolicy::default(),
            &Labels::new()
        ));
    }
}
