//! What a fake cluster holds and how tests describe one: the objects every fake cluster starts
//! with (the namespaces, and the Service, NetworkPolicy and ReplicaSets the collector's
//! snapshots have always shown), objects added from JSON, Cilium installed with its CRD, Calico
//! installed, and discovery of the groups served.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{store, uid, FakeKube, Reply, State};

impl FakeKube {
    /// Adds (or replaces) an object described as JSON: its `apiVersion` and `kind` say where it
    /// is served; the namespace defaults to the fake's; a `resourceVersion` and `uid` are given
    /// unless it has them. Returns the object as stored.
    pub fn object(&self, mut v: Value) -> Value {
        let mut st = self.state.lock().unwrap();
        let gv = v["apiVersion"].as_str().unwrap().to_owned();
        let kind = v["kind"].as_str().unwrap().to_owned();
        let resource = store::resource_of(&gv, &kind)
            .unwrap_or_else(|| panic!("the fake does not serve {gv} {kind}"));
        let namespaced = store::kind_of(&gv, resource).unwrap().1;
        let name = v["metadata"]["name"].as_str().unwrap().to_owned();
        let ns = if namespaced {
            let ns = v["metadata"]["namespace"]
                .as_str()
                .unwrap_or(&st.namespace)
                .to_owned();
            v["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            String::new()
        };
        if v["metadata"]["uid"].is_null() {
            v["metadata"]["uid"] = json!(uid(&format!("{ns}/{resource}/{name}")));
        }
        if v["metadata"]["resourceVersion"].is_null() {
            st.resource_version += 1;
            v["metadata"]["resourceVersion"] = json!(st.resource_version.to_string());
        }
        st.objects
            .insert((gv, resource.to_owned(), ns, name), v.clone());
        v
    }

    /// Removes a stored object (`resource` plural, in the fake's namespace or cluster-wide).
    pub fn remove(&self, api_version: &str, resource: &str, name: &str) {
        let mut st = self.state.lock().unwrap();
        let ns = st.namespace.clone();
        st.objects.retain(|(g, r, n, m), _| {
            !(g == api_version && r == resource && m == name && (n == &ns || n.is_empty()))
        });
    }

    /// A stored object as it is now.
    pub fn stored(&self, api_version: &str, resource: &str, name: &str) -> Option<Value> {
        let st = self.state.lock().unwrap();
        st.objects
            .iter()
            .find(|((g, r, n, m), _)| {
                g == api_version
                    && r == resource
                    && m == name
                    && (n == &st.namespace || n.is_empty())
            })
            .map(|(_, v)| v.clone())
    }

    /// Installs Cilium: `cilium.io/v2` served, and its CiliumNetworkPolicy CRD, whose `v2`
    /// schema has `spec.enableDefaultDeny` when `default_deny` says so.
    pub fn cilium(&self, default_deny: bool) {
        let mut spec = json!({"ingress": {"type": "array"}, "ingressDeny": {"type": "array"},
                              "endpointSelector": {"type": "object"}});
        if default_deny {
            spec["enableDefaultDeny"] = json!({"type": "object", "properties": {
                "ingress": {"type": "boolean"}, "egress": {"type": "boolean"}}});
        }
        self.state.lock().unwrap().cilium = true;
        self.object(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "ciliumnetworkpolicies.cilium.io"},
            "spec": {"group": "cilium.io", "scope": "Namespaced",
                     "names": {"plural": "ciliumnetworkpolicies", "kind": "CiliumNetworkPolicy"},
                     "versions": [{"name": "v2", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                       "spec": {"type": "object", "properties": spec}}}}}]}
        }));
    }
}

impl FakeKube {
    /// Installs Calico: `crd.projectcalico.org/v1` served, with its (cluster-scoped) IPPools.
    pub fn calico(&self) {
        self.serve(CALICO_CRDS);
    }

    /// Serves `policy.networking.k8s.io/v1alpha1` (AdminNetworkPolicies).
    pub fn admin_network_policies(&self) {
        self.serve(ANP);
    }

    /// Installs Antrea: `crd.antrea.io/v1beta1` served.
    pub fn antrea(&self) {
        self.serve(ANTREA);
    }

    /// Serves one of the add-on group versions the fake knows (`ADD_ONS`).
    pub fn serve(&self, gv: &str) {
        let known = ADD_ONS
            .iter()
            .find(|k| **k == gv)
            .unwrap_or_else(|| panic!("the fake has no add-on {gv}"));
        self.state.lock().unwrap().add_ons.insert(known);
    }

    /// Stops serving an add-on group version (uninstalled, or another version installed).
    pub fn unserve(&self, gv: &str) {
        self.state.lock().unwrap().add_ons.remove(gv);
    }
}

const CALICO_CRDS: &str = "crd.projectcalico.org/v1";
const ANP: &str = "policy.networking.k8s.io/v1alpha1";
const ANTREA: &str = "crd.antrea.io/v1beta1";

/// The add-on group versions: served only once a test installs them. `projectcalico.org/v3` is
/// Calico's own API group (its CRDs carry it where Calico installs them so); `v1alpha2` of the
/// network-policy API serves ClusterNetworkPolicies; `crd.antrea.io/v1alpha1` is older Antrea's.
const ADD_ONS: [&str; 6] = [
    CALICO_CRDS,
    "projectcalico.org/v3",
    ANP,
    "policy.networking.k8s.io/v1alpha2",
    ANTREA,
    "crd.antrea.io/v1alpha1",
];

/// Whether the group version `gv` is served: the CNIs' groups only once installed.
pub(super) fn installed(st: &State, gv: &str) -> bool {
    if gv.starts_with("cilium.io/") {
        st.cilium
    } else if ADD_ONS.contains(&gv) {
        st.add_ons.contains(gv)
    } else {
        true
    }
}

/// What every fake cluster holds before a test adds to it: the namespaces, and the Service,
/// NetworkPolicy and ReplicaSets the collector's snapshots have always shown.
pub(super) fn seed(st: &mut State) {
    let ns = st.namespace.clone();
    let mut put = |gv: &str, res: &str, n: &str, name: &str, v: Value| {
        st.objects
            .insert((gv.into(), res.into(), n.into(), name.into()), v);
    };
    for name in ["kube-system", ns.as_str()] {
        put(
            "v1",
            "namespaces",
            "",
            name,
            json!({"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "uid": uid(&format!("namespace/{name}")), "resourceVersion": "12"},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        );
    }
    put(
        "v1",
        "services",
        &ns,
        "api-gateway",
        json!({"metadata": {"name": "api-gateway", "namespace": ns}, "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 443}]}}),
    );
    put(
        "networking.k8s.io/v1",
        "networkpolicies",
        &ns,
        "allow-gateway",
        json!({"metadata": {"name": "allow-gateway", "namespace": ns}, "spec": {"podSelector": {}}}),
    );
    put(
        "apps/v1",
        "replicasets",
        &ns,
        "api-gateway-5f6a1b",
        json!({"metadata": {"name": "api-gateway-5f6a1b", "namespace": ns, "uid": uid("rs-old")}, "spec": {"replicas": 1}}),
    );
    put(
        "apps/v1",
        "replicasets",
        &ns,
        "api-gateway-7d4b9c",
        json!({"metadata": {"name": "api-gateway-7d4b9c", "namespace": ns, "uid": uid("rs-new")}, "spec": {"replicas": 2}}),
    );
}

/// Discovery, as the API server serves it: `/api`, `/apis`, and each group version the fake
/// serves (`/apis/cilium.io/v2` only with Cilium installed, `/apis/crd.projectcalico.org/v1`
/// only with Calico; 404 otherwise, as for any group the
/// server does not have).
pub(super) fn discovery(st: &State, path: &str) -> Option<Reply> {
    let doc = match path {
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]}),
        "/apis" => {
            let mut groups = vec![
                "apps/v1",
                "batch/v1",
                "networking.k8s.io/v1",
                "apiextensions.k8s.io/v1",
            ];
            if st.cilium {
                groups.push("cilium.io/v2");
            }
            groups.extend(st.add_ons.iter().copied());
            // One entry per group, listing every version served, the first preferred.
            let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for gv in &groups {
                let (g, v) = gv.split_once('/').unwrap();
                by_group.entry(g).or_default().push(v);
            }
            let groups: Vec<Value> = by_group
                .iter()
                .map(|(g, versions)| {
                    let versions: Vec<Value> = versions
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        _ => {
            let gv = path
                .strip_prefix("/apis/")
                .or_else(|| path.strip_prefix("/api/"))?;
            if !installed(st, gv) {
                return None;
            }
            let resources = store::resources_of(gv);
            if resources.is_empty() {
                return None;
            }
            let resources: Vec<Value> = resources.iter().map(|(res, kind, namespaced)| {
                json!({"name": res, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind,
                       "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            }).collect();
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
        }
    };
    Some(Reply::Whole(200, serde_json::to_vec(&doc).unwrap()))
}
