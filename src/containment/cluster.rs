//! What the planner reads from the live cluster before it proposes anything: `ClusterView`, one
//! snapshot of the objects a plan depends on, each as the API server returned it (with its
//! `resourceVersion`), plus the server's identity, its clock and whether the Cilium method is
//! available. The planner is a pure function of this view; reading it (through `kube.rs`, with
//! the planner's least-privilege Role) and the server-side dry-runs live here too.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use time::OffsetDateTime;

use crate::net::Cidr;

/// One snapshot of everything a plan reads.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    /// The API server URL, for information.
    pub server: String,
    /// The `kube-system` namespace's uid: the cluster's identity, pinned in the plan.
    pub kube_system_uid: String,
    /// The API server's `Date` header on the first read, to compare clocks.
    pub server_date: Option<OffsetDateTime>,
    /// Every Node's addresses and pod CIDRs: never blocked.
    pub nodes: Vec<NodeInfo>,
    /// What discovery says about the Cilium method.
    pub cilium: CiliumSupport,
    /// Per target namespace, what was read there.
    pub namespaces: BTreeMap<String, NamespaceView>,
}

/// A Node as the planner needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// `status.addresses` that parse as IP addresses (InternalIP, ExternalIP).
    pub addresses: Vec<IpAddr>,
    /// `spec.podCIDRs` (or `spec.podCIDR`).
    pub pod_cidrs: Vec<Cidr>,
}

/// Whether the Cilium method can be used: `cilium.io/v2` served, and the CRD's schema has
/// `enableDefaultDeny`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiliumSupport {
    /// `cilium.io/v2` is served (discovery lists `ciliumnetworkpolicies`).
    pub served: bool,
    /// `ciliumendpoints` is served too.
    pub endpoints_served: bool,
    /// The CiliumNetworkPolicy schema has `spec.enableDefaultDeny` (None: not known).
    pub enable_default_deny: Option<bool>,
}

/// What was read in one namespace. Lists are whole (every page) or the read fails.
#[derive(Clone, Debug, Default)]
pub struct NamespaceView {
    pub pods: Vec<Pod>,
    pub network_policies: Vec<NetworkPolicy>,
    pub services: Vec<Service>,
    pub ingresses: Vec<Ingress>,
    pub deployments: Vec<Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub stateful_sets: Vec<StatefulSet>,
    pub daemon_sets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub cron_jobs: Vec<CronJob>,
    /// The names of the namespace's CiliumEndpoints, when `ciliumendpoints` is served.
    pub cilium_endpoints: Option<Vec<String>>,
    /// CiliumNetworkPolicies as read (raw JSON: no typed model), when served.
    pub cilium_policies: Option<Vec<serde_json::Value>>,
}
