//! What the planner reads from the live cluster before it proposes anything: `ClusterView`, one
//! snapshot of the objects a plan depends on, each as the API server returned it (with its
//! `resourceVersion`), plus the server's identity, its clock, the pod network the CNI publishes
//! (Calico IPPools, CiliumNodes) and whether the Cilium method is available. The planner is a pure function of this view; reading it (`read`, through
//! `kube.rs`, with the planner's least-privilege Role in `deploy/role-planner.yaml`), what is
//! parsed out of the objects read (`parse`) and the server-side dry-runs (`dry_run`) live here too.

mod dry_run;
mod engines;
mod parse;
mod read;

pub use dry_run::{dry_run, status_text, DryRunRequest, Target, FIELD_MANAGER};
pub use parse::{
    cilium_node_networks, enable_default_deny, ip_pool_networks, node_info, parse_http_date,
    served_resources, ParseError,
};
pub use read::{identity, read_view, ReadError};

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use time::OffsetDateTime;

use crate::net::Cidr;

/// One snapshot of everything a plan reads.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// The API server URL, for information.
    pub server: String,
    /// The `kube-system` namespace's uid: the cluster's identity, pinned in the plan.
    pub kube_system_uid: String,
    /// The API server's `Date` header on the first read, to compare clocks: a view is never
    /// read without it.
    pub server_date: OffsetDateTime,
    /// Every Node's addresses and pod CIDRs: never blocked.
    pub nodes: Vec<NodeInfo>,
    /// The pod network as the CNI publishes it where Nodes may not (Calico IPPools, CiliumNode
    /// pod CIDRs), read when discovery serves them: never blocked either.
    pub pod_networks: Vec<PodNetwork>,
    /// What discovery says about the Cilium method.
    pub cilium: CiliumSupport,
    /// The policies of other engines that can admit what a NetworkPolicy refuses
    /// (AdminNetworkPolicies, Admin-tier ClusterNetworkPolicies, Calico and Antrea policies), or
    /// baseline ones that deny what a custody block policy would admit, cluster-wide and in the
    /// target namespaces: custody does not evaluate them.
    pub other_policies: Vec<OtherPolicy>,
    /// Per target namespace, what was read there.
    pub namespaces: BTreeMap<String, NamespaceView>,
}

/// A policy of another engine, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherPolicy {
    /// In words: `AdminNetworkPolicy`, `Calico NetworkPolicy`, ...
    pub kind: String,
    /// The group version it was read at.
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: String,
    pub resource_version: String,
    /// A baseline policy (a BaselineAdminNetworkPolicy, a Baseline-tier ClusterNetworkPolicy):
    /// it applies only to traffic no NetworkPolicy decides, so it matters only where the
    /// operator's NetworkPolicies alone do not decide ingress to the target pods.
    pub baseline: bool,
}

impl OtherPolicy {
    /// `<kind> [<namespace>/]<name>`, as plans and messages name it.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
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

/// One range of the pod network, and what published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetwork {
    /// In words, for the plan: `Calico IPPool default-ipv4-ippool`, `CiliumNode node-a`.
    pub source: String,
    pub cidr: Cidr,
}

/// Whether the Cilium method can be used: `cilium.io/v2` served, and the CRD's schema has
/// `enableDefaultDeny`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiliumSupport {
    /// `cilium.io/v2` is served (discovery lists `ciliumnetworkpolicies`).
    pub served: bool,
    /// `ciliumendpoints` is served too.
    pub endpoints_served: bool,
    /// `ciliumnodes` is served too (their pod CIDRs are read).
    pub nodes_served: bool,
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

/// The server-side dry-run (`dryRun=All`) of one change, as recorded in the plan
/// (`plan::document::DryRun` is this type).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum DryRun {
    /// The API server accepted it; its warnings (`Warning` headers), if any.
    Accepted { warnings: Vec<String> },
    /// The API server refused it: the Status code, reason and message.
    Refused {
        code: u16,
        reason: String,
        message: String,
    },
    /// The change cannot be dry-run (a `pods/proxy` call; a Secret whose values exist only at
    /// execution).
    NotSupported { why: String },
    /// It could not be run (the step is refused, or the request failed): why.
    NotRun { why: String },
}
