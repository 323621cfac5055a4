//! A target's pod selector: a Kubernetes `LabelSelector` (`matchLabels`, `matchExpressions`)
//! checked when `containment.yaml` is read — label keys and values as the API server checks them,
//! operators that take values given values and the others none — and refused when it would select
//! (nearly) every pod of its namespace. Our own type rather than k8s-openapi's, whose reader
//! ignores unknown fields; `to_k8s` gives the API type for the planner's requests.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::{Deserialize, Deserializer, Serialize};

use super::names::is_dns_subdomain;

/// A label selector that names what it selects: at least one `matchLabels` entry or `In`
/// expression (an empty selector, or one of `NotIn`, `Exists` and `DoesNotExist` only, would
/// take in most or all of the namespace's pods).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WrittenSelector", rename_all = "camelCase")]
pub struct PodSelector {
    /// Label → value; each must equal the pod's label.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<LabelKey, LabelValue>,
    /// Requirements, all of which must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WrittenSelector {
    #[serde(default)]
    match_labels: BTreeMap<LabelKey, LabelValue>,
    #[serde(default)]
    match_expressions: Vec<Requirement>,
}

impl TryFrom<WrittenSelector> for PodSelector {
    type Error = String;

    fn try_from(w: WrittenSelector) -> Result<Self, String> {
        if w.match_labels.is_empty() && w.match_expressions.is_empty() {
            return Err(
                "an empty selector selects every pod of the namespace: name the target's \
                        pods with matchLabels (such as `app: api-gateway`)"
                    .into(),
            );
        }
        let names_pods = !w.match_labels.is_empty()
            || w.match_expressions
                .iter()
                .any(|r| r.operator == Operator::In);
        if !names_pods {
            return Err(
                "a selector of NotIn, Exists and DoesNotExist only selects most pods of \
                        the namespace: add matchLabels or an In expression that names the \
                        target's pods"
                    .into(),
            );
        }
        Ok(Self {
            match_labels: w.match_labels,
            match_expressions: w.match_expressions,
        })
    }
}

/// One `matchExpressions` requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WrittenRequirement")]
pub struct Requirement {
    pub key: LabelKey,
    pub operator: Operator,
    /// The values of `In` and `NotIn` (at least one); empty for `Exists` and `DoesNotExist`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<LabelValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenRequirement {
    key: LabelKey,
    operator: Operator,
    values: Option<Vec<LabelValue>>,
}

impl TryFrom<WrittenRequirement> for Requirement {
    type Error = String;

    fn try_from(w: WrittenRequirement) -> Result<Self, String> {
        let values = w.values.unwrap_or_default();
        match w.operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(format!(
                    "{:?} with operator {:?} needs `values` (at least one)",
                    w.key.0, w.operator
                ));
            }
            Operator::In | Operator::NotIn if values.iter().any(|v| v.0.is_empty()) => {
                // An empty value in a set is legal but reads as "no label" to some and as the
                // empty label to others; Exists/DoesNotExist say either without doubt.
                return Err(format!(
                    "{:?}: an empty value in `values` is ambiguous; use Exists or DoesNotExist",
                    w.key.0
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(format!(
                    "{:?} with operator {:?} takes no `values`",
                    w.key.0, w.operator
                ));
            }
            _ => {}
        }
        Ok(Self {
            key: w.key,
            operator: w.operator,
            values,
        })
    }
}

/// A requirement's operator, spelled as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of 1 to 63 letters,
/// digits, `-`, `_` and `.`, starting and ending with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LabelKey(String);

/// A label value: empty, or 1 to 63 letters, digits, `-`, `_` and `.`, starting and ending with
/// a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LabelValue(String);

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

impl LabelKey {
    pub fn new(s: &str) -> Result<Self, String> {
        let valid = match s.split_once('/') {
            Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
            None => is_label_name(s),
        };
        valid.then(|| Self(s.to_owned())).ok_or_else(|| {
            format!(
                "{s:?} is not a label key (an optional DNS subdomain and '/', then 1 to 63 \
                 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl LabelValue {
    pub fn new(s: &str) -> Result<Self, String> {
        (s.is_empty() || is_label_name(s))
            .then(|| Self(s.to_owned()))
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a label value (empty, or 1 to 63 letters, digits, '-', '_' \
                     and '.', starting and ending with a letter or digit)"
                )
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for LabelKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LabelKey::new(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for LabelValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LabelValue::new(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl PodSelector {
    /// Whether a pod with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let labels_match = self
            .match_labels
            .iter()
            .all(|(k, v)| labels.get(&k.0) == Some(&v.0));
        labels_match
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key.0);
                let in_values = value.is_some_and(|v| r.values.iter().any(|w| &w.0 == v));
                match r.operator {
                    Operator::In => in_values,
                    Operator::NotIn => !in_values,
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }

    /// The labels of a pod this selector selects, made up from it: its `matchLabels`, the first
    /// value of each `In`, a value for each `Exists` (none for `NotIn` and `DoesNotExist`).
    /// `None` when no such pod exists (an `In` and a `NotIn` of one key ruling each other out,
    /// say).
    pub fn representative(&self) -> Option<BTreeMap<String, String>> {
        let mut labels: BTreeMap<String, String> = self
            .match_labels
            .iter()
            .map(|(k, v)| (k.0.clone(), v.0.clone()))
            .collect();
        for r in &self.match_expressions {
            match r.operator {
                Operator::In => {
                    if let Some(v) = r.values.first() {
                        labels.entry(r.key.0.clone()).or_insert_with(|| v.0.clone());
                    }
                }
                Operator::Exists => {
                    labels
                        .entry(r.key.0.clone())
                        .or_insert_with(|| "custody-representative".to_owned());
                }
                Operator::NotIn | Operator::DoesNotExist => {}
            }
        }
        self.matches(&labels).then_some(labels)
    }

    /// The selector as the Kubernetes API type.
    pub fn to_k8s(&self) -> meta::LabelSelector {
        let match_labels = self
            .match_labels
            .iter()
            .map(|(k, v)| (k.0.clone(), v.0.clone()))
            .collect::<BTreeMap<_, _>>();
        let match_expressions = self
            .match_expressions
            .iter()
            .map(|r| meta::LabelSelectorRequirement {
                key: r.key.0.clone(),
                operator: format!("{:?}", r.operator),
                values: (!r.values.is_empty())
                    .then(|| r.values.iter().map(|v| v.0.clone()).collect()),
            })
            .collect::<Vec<_>>();
        meta::LabelSelector {
            match_labels: (!match_labels.is_empty()).then_some(match_labels),
            match_expressions: (!match_expressions.is_empty()).then_some(match_expressions),
        }
    }

    /// The selector in the `labelSelector` query syntax of list requests
    /// (`app=api-gateway,tier in (edge,web),!canary`). Keys and values are checked, so they
    /// hold none of the syntax's separators.
    pub fn to_query(&self) -> String {
        let labels = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{}={}", k.0, v.0));
        let expressions = self.match_expressions.iter().map(|r| {
            let values = || {
                r.values
                    .iter()
                    .map(|v| v.0.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            match r.operator {
                Operator::In => format!("{} in ({})", r.key.0, values()),
                Operator::NotIn => format!("{} notin ({})", r.key.0, values()),
                Operator::Exists => r.key.0.clone(),
                Operator::DoesNotExist => format!("!{}", r.key.0),
            }
        });
        labels.chain(expressions).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PodSelector, String> {
        super::super::parse_entry(text)
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_match_like_kubernetes() {
        let s = parse(
            "matchLabels: {app: api-gateway}\nmatchExpressions:\n  - {key: tier, operator: In, values: [edge, web]}\n  - {key: canary, operator: DoesNotExist}\n  - {key: example.com/zone, operator: Exists}\n  - {key: track, operator: NotIn, values: [beta]}\n",
        )
        .unwrap();
        let pod = |extra: &[(&str, &str)]| {
            let mut l = labels(&[
                ("app", "api-gateway"),
                ("tier", "edge"),
                ("example.com/zone", ""),
            ]);
            l.extend(labels(extra));
            l
        };
        assert!(s.matches(&pod(&[])));
        assert!(s.matches(&pod(&[("track", "stable")])));
        assert!(!s.matches(&pod(&[("track", "beta")])));
        assert!(!s.matches(&pod(&[("canary", "yes")])));
        assert!(!s.matches(&pod(&[("tier", "db")])));
        assert!(!s.matches(&labels(&[("app", "api-gateway"), ("tier", "edge")])));
        assert_eq!(
            s.to_query(),
            "app=api-gateway,tier in (edge,web),!canary,example.com/zone,track notin (beta)"
        );
        let k8s = s.to_k8s();
        assert_eq!(k8s.match_labels, Some(labels(&[("app", "api-gateway")])));
        let exprs = k8s.match_expressions.unwrap();
        assert_eq!(exprs[0].operator, "In");
        assert_eq!(exprs[1].operator, "DoesNotExist");
        assert_eq!(exprs[1].values, None);
        // The API type reads back the same selector.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            serde_json::from_str::<meta::LabelSelector>(&json).unwrap(),
            s.to_k8s()
        );
    }

    #[test]
    fn bad_selectors_are_refused_at_their_line() {
        for (text, want) in [
            ("{}", "an empty selector selects every pod"),
            ("matchLabels: {}\nmatchExpressions: []", "an empty selector"),
            ("matchExpressions:\n  - {key: a, operator: DoesNotExist}", "NotIn, Exists and DoesNotExist only"),
            ("matchLabels: {app: x}\nmatchExpresions: []", "unknown field `matchExpresions`"),
            ("matchLabels: {app: x}\nmatchExpressions:\n  - {key: a, operator: In}", "needs `values`"),
            ("matchLabels: {app: x}\nmatchExpressions:\n  - {key: a, operator: NotIn, values: []}", "needs `values`"),
            ("matchLabels: {app: x}\nmatchExpressions:\n  - {key: a, operator: In, values: ['']}", "ambiguous"),
            ("matchLabels: {app: x}\nmatchExpressions:\n  - {key: a, operator: Exists, values: [b]}", "takes no `values`"),
            ("matchLabels: {app: x}\nmatchExpressions:\n  - {key: a, operator: Equals, values: [b]}", "unknown variant"),
            ("matchLabels: {app: x}\nmatchExpressions:\n  - {key: a, operator: In, values: [b], extra: 1}", "unknown field"),
            ("matchLabels:\n  app: x\n  'bad key': x", "not a label key"),
            ("matchLabels:\n  app: x\n  Example.com/a: x", "not a label key"),
            ("matchLabels:\n  app: x\n  tier: '-edge'", "not a label value"),
            ("matchLabels:\n  app: x\n  tier: 'a,b'", "not a label value"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want) && e.contains("line"), "{text}: {e}");
        }
        let e = parse("matchLabels: {app: x}\nmatchExpressions:\n  - {key: a, operator: In}")
            .unwrap_err();
        assert!(
            e.starts_with("matchExpressions[0]: ") && e.contains("line 3"),
            "{e}"
        );
        let e = parse("matchLabels:\n  app: x\n  tier: '-edge'").unwrap_err();
        assert!(
            e.starts_with("matchLabels.tier: ") && e.contains("line 3"),
            "{e}"
        );
        assert!(parse("matchLabels: {app: ''}").is_ok());
        assert!(parse("matchExpressions:\n  - {key: app, operator: In, values: [a]}").is_ok());
    }
}
