//! Reading the `ClusterView`: discovery, the cluster's identity and clock, Nodes, the pod network
//! the CNI publishes (Calico IPPools, CiliumNodes: where discovery serves them), and every list
//! of each target namespace, each read whole (every page) and parsed into its typed model. Any
//! read that fails fails the whole view, naming what could not be read and the API's answer:
//! the planner never plans from a partial view.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use serde::de::DeserializeOwned;

use crate::kube::{encode, Cluster, KubeError};

use super::engines::{other_policies, Discovered, CALICO_VERSIONS};
use super::parse::{
    cilium_node_networks, enable_default_deny, ip_pool_networks, node_info, parse_http_date,
    served_resources, ParseError,
};
use super::{CiliumSupport, ClusterView, NamespaceView, PodNetwork};

/// The discovery document of the Cilium API group custody uses.
pub(super) const CILIUM_DISCOVERY: &str = "/apis/cilium.io/v2";
/// The CiliumNetworkPolicy CRD, read for its schema.
pub(super) const CILIUM_CRD: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/ciliumnetworkpolicies.cilium.io";

/// What could not be read: the view is not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The API server refused or failed the request, or nothing answered.
    #[error("cannot read {what} ({path}): {source}")]
    Request {
        what: String,
        path: String,
        #[source]
        source: KubeError,
    },
    /// It answered with something that is not the object or list asked for.
    #[error("cannot read {what} ({path}): the answer is not what the API serves: {error}")]
    Parse {
        what: String,
        path: String,
        error: String,
    },
    /// The answer carried no `Date` header custody can read, so custody's clock cannot be
    /// checked against the API server's.
    #[error("the API server sent no usable Date with {what} ({path}): {sent}; custody's clock cannot be checked against the API server's, so no plan is built on it")]
    NoDate {
        what: String,
        path: String,
        /// What was sent instead, in words (a header that was sent is quoted and escaped).
        sent: String,
    },
}

impl ReadError {
    /// The HTTP status the API server answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ReadError::Request { source, .. } => source.status,
            ReadError::Parse { .. } | ReadError::NoDate { .. } => None,
        }
    }
}

fn request(what: &str, path: &str, source: KubeError) -> ReadError {
    ReadError::Request {
        what: what.to_owned(),
        path: path.to_owned(),
        source,
    }
}

fn parse_error(what: &str, path: &str, error: impl std::fmt::Display) -> ReadError {
    ReadError::Parse {
        what: what.to_owned(),
        path: path.to_owned(),
        error: error.to_string(),
    }
}

/// Reads everything a plan for `namespaces` depends on. Discovery says whether `cilium.io/v2` and
/// `crd.projectcalico.org/v1` are served; Calico IPPools and CiliumNodes are read whenever they
/// are (the pod network, never blocked), CiliumEndpoints too (they tell whether Cilium enforces
/// a namespace, which the NetworkPolicy method must know), the CRD's schema and the
/// CiliumNetworkPolicies only when `cilium_wanted` (the policy asks for the Cilium method).
pub async fn read_view(
    cluster: &Cluster,
    namespaces: &[String],
    cilium_wanted: bool,
) -> Result<ClusterView, ReadError> {
    let (kube_system_uid, server_date) = identity(cluster).await?;
    let nodes: Vec<Node> = list(cluster, "Nodes", "/api/v1/nodes").await?;
    let nodes = nodes
        .iter()
        .map(node_info)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error("Nodes", "/api/v1/nodes", e))?;
    let cilium = cilium_support(cluster, cilium_wanted).await?;
    let mut discovered = Discovered::default();
    let pod_networks = pod_networks(cluster, &mut discovered, &cilium).await?;
    let other_policies = other_policies(cluster, &mut discovered, namespaces).await?;
    let mut view = ClusterView {
        server: cluster.server.clone(),
        kube_system_uid,
        server_date,
        nodes,
        pod_networks,
        cilium: cilium.clone(),
        other_policies,
        namespaces: Default::default(),
    };
    for ns in namespaces {
        let read = namespace(cluster, ns, &cilium, cilium_wanted).await?;
        view.namespaces.insert(ns.clone(), read);
    }
    Ok(view)
}

/// The `kube-system` Namespace's uid and the `Date` of the answer (the first request made): an
/// answer without a `Date` that parses is refused, since the clock check needs it.
pub async fn identity(cluster: &Cluster) -> Result<(String, time::OffsetDateTime), ReadError> {
    const WHAT: &str = "the kube-system Namespace";
    const PATH: &str = "/api/v1/namespaces/kube-system";
    let answer = cluster
        .send(&http::Method::GET, PATH, None, &[])
        .await
        .map_err(|e| request(WHAT, PATH, e))?;
    if !(200..300).contains(&answer.status) {
        return Err(request(WHAT, PATH, refusal(&answer)));
    }
    let ns: Namespace =
        serde_json::from_slice(&answer.body).map_err(|e| parse_error(WHAT, PATH, e))?;
    let uid = ns
        .metadata
        .uid
        .filter(|u| !u.is_empty())
        .ok_or_else(|| parse_error(WHAT, PATH, "it has no uid"))?;
    let date = answer.date.as_deref().and_then(parse_http_date);
    let date = date.ok_or_else(|| ReadError::NoDate {
        what: WHAT.to_owned(),
        path: PATH.to_owned(),
        sent: match &answer.date {
            None => "the answer has no Date header".to_owned(),
            Some(text) => format!(
                "its Date header {:?} is not an HTTP date (IMF-fixdate)",
                text.chars().take(100).collect::<String>()
            ),
        },
    })?;
    Ok((uid, date))
}

/// A 4xx answer as an error: the Status message when it sent one.
fn refusal(answer: &crate::kube::Answer) -> KubeError {
    let message = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(300)
                .collect()
        });
    KubeError {
        message: format!("{message} (HTTP {})", answer.status),
        status: Some(answer.status),
    }
}

/// The resources a discovery document lists, or `None` when the server does not have the group
/// version (404). Any other failure fails the read: what is served must be known.
pub(super) async fn discover(
    cluster: &Cluster,
    what: &str,
    path: &str,
) -> Result<Option<Vec<String>>, ReadError> {
    let answer = cluster
        .send(&http::Method::GET, path, None, &[])
        .await
        .map_err(|e| request(what, path, e))?;
    if answer.status == 404 {
        return Ok(None);
    }
    if !(200..300).contains(&answer.status) {
        return Err(request(what, path, refusal(&answer)));
    }
    served_resources(&answer.body)
        .map(Some)
        .map_err(|e| parse_error(what, path, e))
}

async fn cilium_support(cluster: &Cluster, wanted: bool) -> Result<CiliumSupport, ReadError> {
    const WHAT: &str = "the cilium.io/v2 discovery document";
    let Some(served) = discover(cluster, WHAT, CILIUM_DISCOVERY).await? else {
        return Ok(CiliumSupport::default());
    };
    let mut support = CiliumSupport {
        served: served.iter().any(|r| r == "ciliumnetworkpolicies"),
        endpoints_served: served.iter().any(|r| r == "ciliumendpoints"),
        nodes_served: served.iter().any(|r| r == "ciliumnodes"),
        enable_default_deny: None,
    };
    if wanted && support.served {
        support.enable_default_deny = crd_default_deny(cluster).await?;
    }
    Ok(support)
}

/// The pod network the CNI publishes: every Calico IPPool's CIDR when discovery serves
/// `ippools` in one of Calico's groups, and every CiliumNode's pod CIDRs when it serves
/// `ciliumnodes`. Both are cluster-scoped lists; a list refused or failing fails the read.
async fn pod_networks(
    cluster: &Cluster,
    discovered: &mut Discovered,
    cilium: &CiliumSupport,
) -> Result<Vec<PodNetwork>, ReadError> {
    let mut out = Vec::new();
    if let Some(doc) = discovered
        .first_serving(cluster, CALICO_VERSIONS, "ippools")
        .await?
    {
        let path = format!("{doc}/ippools");
        out.extend(networks(cluster, "the Calico IPPools", &path, ip_pool_networks).await?);
    }
    if cilium.nodes_served {
        let path = format!("{CILIUM_DISCOVERY}/ciliumnodes");
        out.extend(networks(cluster, "the CiliumNodes", &path, cilium_node_networks).await?);
    }
    Ok(out)
}

/// One cluster-scoped list, each item's ranges taken out by `parse`.
async fn networks(
    cluster: &Cluster,
    what: &str,
    path: &str,
    parse: fn(&serde_json::Value) -> Result<Vec<PodNetwork>, ParseError>,
) -> Result<Vec<PodNetwork>, ReadError> {
    let items: Vec<serde_json::Value> = list(cluster, what, path).await?;
    let mut out = Vec::new();
    for item in &items {
        out.extend(parse(item).map_err(|e| parse_error(what, path, e))?);
    }
    Ok(out)
}

/// The CRD's answer on `enableDefaultDeny`; `None` when the CRD may not be read (403) or is not
/// there (404): the planner then refuses the Cilium method rather than guess.
async fn crd_default_deny(cluster: &Cluster) -> Result<Option<bool>, ReadError> {
    const WHAT: &str = "the CiliumNetworkPolicy CRD";
    match cluster.get(CILIUM_CRD).await {
        Ok(bytes) => {
            let crd: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| parse_error(WHAT, CILIUM_CRD, e))?;
            Ok(enable_default_deny(&crd))
        }
        Err(e) if matches!(e.status, Some(403 | 404)) => Ok(None),
        Err(e) => Err(request(WHAT, CILIUM_CRD, e)),
    }
}

async fn namespace(
    cluster: &Cluster,
    ns: &str,
    cilium: &CiliumSupport,
    cilium_wanted: bool,
) -> Result<NamespaceView, ReadError> {
    let n = encode(ns);
    let core = format!("/api/v1/namespaces/{n}");
    let apps = format!("/apis/apps/v1/namespaces/{n}");
    let batch = format!("/apis/batch/v1/namespaces/{n}");
    let net = format!("/apis/networking.k8s.io/v1/namespaces/{n}");
    let cil = format!("/apis/cilium.io/v2/namespaces/{n}");
    let what = |kind: &str| format!("the {kind} of namespace {ns}");
    let mut view = NamespaceView {
        pods: list::<Pod>(cluster, &what("Pods"), &format!("{core}/pods")).await?,
        network_policies: list::<NetworkPolicy>(
            cluster,
            &what("NetworkPolicies"),
            &format!("{net}/networkpolicies"),
        )
        .await?,
        services: list::<Service>(cluster, &what("Services"), &format!("{core}/services")).await?,
        ingresses: list::<Ingress>(cluster, &what("Ingresses"), &format!("{net}/ingresses"))
            .await?,
        deployments: list::<Deployment>(
            cluster,
            &what("Deployments"),
            &format!("{apps}/deployments"),
        )
        .await?,
        replica_sets: list::<ReplicaSet>(
            cluster,
            &what("ReplicaSets"),
            &format!("{apps}/replicasets"),
        )
        .await?,
        stateful_sets: list::<StatefulSet>(
            cluster,
            &what("StatefulSets"),
            &format!("{apps}/statefulsets"),
        )
        .await?,
        daemon_sets: list::<DaemonSet>(cluster, &what("DaemonSets"), &format!("{apps}/daemonsets"))
            .await?,
        jobs: list::<Job>(cluster, &what("Jobs"), &format!("{batch}/jobs")).await?,
        cron_jobs: list::<CronJob>(cluster, &what("CronJobs"), &format!("{batch}/cronjobs"))
            .await?,
        cilium_endpoints: None,
        cilium_policies: None,
    };
    if cilium.endpoints_served {
        let path = format!("{cil}/ciliumendpoints");
        let items: Vec<serde_json::Value> = list(cluster, &what("CiliumEndpoints"), &path).await?;
        let names = items
            .iter()
            .map(|e| {
                e.pointer("/metadata/name")
                    .and_then(|n| n.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| parse_error(&what("CiliumEndpoints"), &path, "one has no name"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        view.cilium_endpoints = Some(names);
    }
    if cilium.served && cilium_wanted {
        let path = format!("{cil}/ciliumnetworkpolicies");
        view.cilium_policies = Some(list(cluster, &what("CiliumNetworkPolicies"), &path).await?);
    }
    Ok(view)
}

/// One list, whole (every page, within `kube.rs`'s size caps), as typed items.
pub(super) async fn list<T: DeserializeOwned>(
    cluster: &Cluster,
    what: &str,
    path: &str,
) -> Result<Vec<T>, ReadError> {
    #[derive(serde::Deserialize)]
    struct Items<T> {
        // `null` from some servers for an empty list.
        #[serde(default = "none")]
        items: Option<Vec<T>>,
    }
    let bytes = cluster
        .list(path)
        .await
        .map_err(|e| request(what, path, e))?;
    let whole: Items<T> = serde_json::from_slice(&bytes).map_err(|e| parse_error(what, path, e))?;
    Ok(whole.items.unwrap_or_default())
}

fn none<T>() -> Option<T> {
    None
}
