//! Whether a plan is stale: what execution compares before it applies anything. A step's
//! preconditions as planned are compared with the same preconditions worked out again from the
//! cluster as it is now (by the planner's own reading, so that both sides are derived alike):
//! every NetworkPolicy of the namespace by `resourceVersion` (one added, removed or changed), the
//! set of policies selecting any target pod, and each Deployment's Secret references by path and
//! value, and the policies of other engines by `resourceVersion`. Deployments are never compared
//! by `resourceVersion`, which every status write and scale changes. Pods, Services and Ingresses are information only. Each difference is one line a
//! person can act on; none means the step is not stale.

use std::collections::{BTreeMap, BTreeSet};

use super::document::Preconditions;
use crate::terminal::escape as esc;

/// What changed since the plan was made, one line each; empty when nothing did.
pub fn changes(planned: &Preconditions, now: &Preconditions) -> Vec<String> {
    let mut out = Vec::new();
    versions(
        &planned.network_policies,
        &now.network_policies,
        |n| format!("NetworkPolicy {}", esc(n)),
        &mut out,
    );
    let before: BTreeSet<&String> = planned.selecting.iter().collect();
    let after: BTreeSet<&String> = now.selecting.iter().collect();
    for added in after.difference(&before) {
        out.push(format!(
            "NetworkPolicy {} now selects a target pod: the union the plan was made against changed",
            esc(added)
        ));
    }
    for gone in before.difference(&after) {
        out.push(format!(
            "NetworkPolicy {} no longer selects a target pod: the union the plan was made against changed",
            esc(gone)
        ));
    }
    references(&planned.deployment_refs, &now.deployment_refs, &mut out);
    // Any of them can admit what a block refuses.
    versions(
        &planned.other_engine_policies,
        &now.other_engine_policies,
        |n| format!("{} (another engine's policy)", esc(n)),
        &mut out,
    );
    out
}

/// Objects by `resourceVersion`, each named by `label`: one added, changed or removed is a line.
fn versions(
    planned: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    label: impl Fn(&str) -> String,
    out: &mut Vec<String>,
) {
    for (name, rv) in planned {
        match now.get(name) {
            None => out.push(format!(
                "{} was deleted (it was at resourceVersion {})",
                label(name),
                esc(rv)
            )),
            Some(now_rv) if now_rv != rv => out.push(format!(
                "{} changed: resourceVersion {} is now {}",
                label(name),
                esc(rv),
                esc(now_rv)
            )),
            Some(_) => {}
        }
    }
    for (name, rv) in now.iter().filter(|(n, _)| !planned.contains_key(*n)) {
        out.push(format!(
            "{} was created (resourceVersion {})",
            label(name),
            esc(rv)
        ));
    }
}

fn references(
    planned: &BTreeMap<String, BTreeMap<String, String>>,
    now: &BTreeMap<String, BTreeMap<String, String>>,
    out: &mut Vec<String>,
) {
    let empty = BTreeMap::new();
    for (deployment, refs) in planned {
        let Some(current) = now.get(deployment) else {
            out.push(format!(
                "Deployment {} no longer references the Secret (or was deleted)",
                esc(deployment)
            ));
            continue;
        };
        for (path, value) in refs {
            match current.get(path) {
                None => out.push(format!(
                    "Deployment {}: {} no longer names the Secret",
                    esc(deployment),
                    esc(path)
                )),
                Some(v) if v != value => out.push(format!(
                    "Deployment {}: {} is {} now, not {}",
                    esc(deployment),
                    esc(path),
                    esc(v),
                    esc(value)
                )),
                Some(_) => {}
            }
        }
        for path in current.keys().filter(|p| !refs.contains_key(*p)) {
            out.push(format!(
                "Deployment {}: {} references the Secret now and the plan does not repoint it",
                esc(deployment),
                esc(path)
            ));
        }
    }
    for deployment in now.keys().filter(|d| !planned.contains_key(*d)) {
        let refs = now.get(deployment).unwrap_or(&empty);
        out.push(format!(
            "Deployment {} references the Secret now ({} references) and the plan does not repoint it",
            esc(deployment),
            refs.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(
        policies: &[(&str, &str)],
        selecting: &[&str],
        refs: &[(&str, &str, &str)],
    ) -> Preconditions {
        let mut deployment_refs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (d, path, value) in refs {
            deployment_refs
                .entry((*d).to_owned())
                .or_default()
                .insert((*path).to_owned(), (*value).to_owned());
        }
        Preconditions {
            network_policies: policies
                .iter()
                .map(|(n, rv)| ((*n).to_owned(), (*rv).to_owned()))
                .collect(),
            selecting: selecting.iter().map(|s| (*s).to_owned()).collect(),
            deployment_refs,
            other_engine_policies: BTreeMap::new(),
        }
    }

    #[test]
    fn a_policy_of_another_engine_added_changed_or_gone_is_stale() {
        let mut planned = pre(&[], &[], &[]);
        planned
            .other_engine_policies
            .insert("Calico NetworkPolicy waqiti/a".into(), "4".into());
        planned
            .other_engine_policies
            .insert("AdminNetworkPolicy b".into(), "9".into());
        assert!(changes(&planned, &planned.clone()).is_empty());
        let mut now = pre(&[], &[], &[]);
        now.other_engine_policies
            .insert("Calico NetworkPolicy waqiti/a".into(), "5".into());
        now.other_engine_policies
            .insert("Antrea ClusterNetworkPolicy c".into(), "1".into());
        let c = changes(&planned, &now);
        assert_eq!(c.len(), 3, "{c:?}");
        assert!(c.iter().any(|l| l
            .contains("waqiti/a (another engine's policy) changed: resourceVersion 4 is now 5")));
        assert!(c
            .iter()
            .any(|l| l.contains("AdminNetworkPolicy b (another engine's policy) was deleted")));
        assert!(c
            .iter()
            .any(|l| l
                .contains("Antrea ClusterNetworkPolicy c (another engine's policy) was created")));
        // A plan made with none is stale once one appears.
        assert_eq!(changes(&pre(&[], &[], &[]), &now).len(), 2);
    }

    const REF: &str = "/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name";

    #[test]
    fn the_same_preconditions_are_not_stale() {
        let p = pre(&[("a", "1"), ("b", "7")], &["a"], &[("gw", REF, "keys")]);
        assert!(changes(&p, &p.clone()).is_empty());
    }

    #[test]
    fn every_policy_edit_addition_and_removal_is_named() {
        let planned = pre(&[("a", "1"), ("b", "7")], &["a"], &[]);
        let now = pre(&[("a", "2"), ("c", "9")], &["a", "c"], &[]);
        let c = changes(&planned, &now);
        assert_eq!(c.len(), 4, "{c:?}");
        assert!(c
            .iter()
            .any(|l| l.contains("a changed: resourceVersion 1 is now 2")));
        assert!(c.iter().any(|l| l.contains("b was deleted")));
        assert!(c.iter().any(|l| l.contains("c was created")));
        assert!(c.iter().any(|l| l.contains("c now selects a target pod")));
    }

    #[test]
    fn a_policy_that_stops_selecting_the_target_is_stale() {
        let planned = pre(&[("a", "1")], &["a"], &[]);
        let now = pre(&[("a", "1")], &[], &[]);
        let c = changes(&planned, &now);
        assert_eq!(c.len(), 1);
        assert!(c[0].contains("no longer selects"), "{c:?}");
    }

    #[test]
    fn deployments_are_compared_by_their_references_only() {
        let planned = pre(&[], &[], &[("gw", REF, "keys")]);
        assert!(changes(&planned, &planned.clone()).is_empty());
        let changed = pre(&[], &[], &[("gw", REF, "other")]);
        assert!(changes(&planned, &changed)[0].contains("is other now, not keys"));
        let more = pre(&[], &[], &[("gw", REF, "keys"), ("gw", "/x", "keys")]);
        assert!(changes(&planned, &more)[0].contains("/x references the Secret now"));
        let gone = pre(&[], &[], &[]);
        assert!(changes(&planned, &gone)[0].contains("no longer references"));
        let new = pre(&[], &[], &[("gw", REF, "keys"), ("worker", REF, "keys")]);
        assert!(changes(&planned, &new)[0].contains("worker references the Secret now"));
    }

    #[test]
    fn names_from_the_cluster_are_escaped() {
        let planned = pre(&[], &[], &[]);
        let now = pre(&[("evil\u{1b}[2J", "1")], &[], &[]);
        let c = changes(&planned, &now);
        assert!(!c[0].contains('\u{1b}'), "{c:?}");
    }
}
