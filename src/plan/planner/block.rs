//! Step 1, `block_ips`, for one target: the NetworkPolicy method (through
//! `containment::netpol`, whose output is proven not to widen or narrow anything before it is
//! proposed) or the Cilium method (one `CiliumNetworkPolicy` with `ingressDeny`), the warnings an
//! approver must see, and the refusals CONTAINMENT.md requires.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{json, Value};

use super::super::document::{
    ChangeOp, DryRun, ObjectChange, ObjectRef, Preconditions, Step, StepDetail, StepStatus,
};
use super::{is_running, labels_of, not_run, Ctx};
use crate::containment::cluster::OtherPolicy;
use crate::containment::netpol::{
    self, eval, plan_block, BlockInput, Change, Offenders, Owner, Owners, PodInfo,
};
use crate::policy::containment::{BlockMethod, StepKind};

const NETPOL_API: &str = "networking.k8s.io/v1";
const CILIUM_API: &str = "cilium.io/v2";

/// Always true of an IP block, whatever the cluster: the approver must know it.
const LIMITS: &str = "an IP block does not stop a client that changes address, and established connections may survive it on some CNIs";

/// The block refuses addresses outside the pod network: a pod elsewhere in the cluster that is
/// an offender is still admitted by the namespace and pod selectors of the rules.
const IN_CLUSTER: &str = "an offender that is a pod in another namespace is not stopped: the rules' namespace and pod selectors still admit pods, whatever their address";

/// The `block_ips` step for `ctx.target`.
pub(super) fn step(ctx: &Ctx<'_>, number: u32, method: BlockMethod) -> Step {
    let mut step = Step {
        number,
        kind: StepKind::BlockIps,
        target: ctx.target.name.to_string(),
        namespace: ctx.target.namespace.to_string(),
        status: StepStatus::Planned,
        refusals: Vec::new(),
        warnings: Vec::new(),
        read: Vec::new(),
        changes: Vec::new(),
        preconditions: Preconditions::default(),
        detail: StepDetail::BlockIps {
            method: method_name(method).to_owned(),
            addresses: ctx.addresses.iter().map(|(ip, _)| ip.to_string()).collect(),
            owners: BTreeMap::new(),
        },
    };
    step.warnings = front_warnings(ctx);
    step.preconditions.other_engine_policies = ctx
        .view
        .other_policies
        .iter()
        .map(|p| (p.label(), p.resource_version.clone()))
        .collect();
    match method {
        BlockMethod::Networkpolicy => networkpolicy(ctx, &mut step),
        BlockMethod::Cilium => cilium(ctx, &mut step),
    }
    step.warnings.push(LIMITS.to_owned());
    step.warnings.push(IN_CLUSTER.to_owned());
    step.warnings
        .extend(ctx.pod_network.and_then(|p| p.warning()));
    step.status = if !step.refusals.is_empty() {
        step.changes.clear();
        StepStatus::Refused
    } else if step.changes.is_empty() {
        StepStatus::NothingToDo
    } else {
        StepStatus::Planned
    };
    step
}

fn method_name(m: BlockMethod) -> &'static str {
    match m {
        BlockMethod::Networkpolicy => "networkpolicy",
        BlockMethod::Cilium => "cilium",
    }
}

fn offenders(ctx: &Ctx<'_>) -> Offenders {
    Offenders::new(ctx.addresses.iter().map(|(ip, a)| {
        let expires_at = crate::timefmt::parse(&a.expires_at).unwrap_or(ctx.now);
        let owner = Owner {
            case: ctx.case.clone(),
            plan: ctx.plan.clone(),
            expires_at,
        };
        (*ip, owner)
    }))
}

fn networkpolicy(ctx: &Ctx<'_>, step: &mut Step) {
    let ns = ctx.ns;
    let (target_pods, other_pods) = split_pods(ctx);
    let (baseline, admitting): (Vec<&OtherPolicy>, Vec<&OtherPolicy>) =
        ctx.view.other_policies.iter().partition(|p| p.baseline);
    if !admitting.is_empty() {
        step.refusals.push(format!(
            "policies of another engine are in force ({}): they can admit what this block refuses (an AdminNetworkPolicy Allow or an Admin-tier ClusterNetworkPolicy Accept comes before every NetworkPolicy; Calico and Antrea policies are evaluated beside or before them) and custody does not evaluate them, so custody cannot plan this block here: block these clients with that engine",
            labels(&admitting)
        ));
    }
    if let Some(names) = cilium_enforced(ctx, &target_pods) {
        step.refusals.push(format!("Cilium enforces this namespace (pods {names:?} have CiliumEndpoints): NetworkPolicy ipBlock peers do not match node, host or API-server identities there, so a block could refuse them; use block_ips.method: cilium"));
    }
    let target = netpol::Target {
        namespace: ctx.target.namespace.to_string(),
        name: ctx.target.name.to_string(),
        pod_selector: ctx.target.pod_selector.to_k8s(),
    };
    let offenders = offenders(ctx);
    let empty = Owners::new();
    let owners = ctx.block_owners.unwrap_or(&empty);
    let input = BlockInput {
        target: &target,
        target_pods: &target_pods.iter().map(|p| pod_info(p)).collect::<Vec<_>>(),
        other_pods: &other_pods.iter().map(|p| pod_info(p)).collect::<Vec<_>>(),
        policies: &ns.network_policies,
        offenders: &offenders,
        block_owners: owners,
    };
    let planned = plan_block(&input);
    step.refusals
        .extend(planned.refusals.iter().map(ToString::to_string));
    if !baseline.is_empty() && !planned.operator_decides && !offenders.is_empty() {
        step.refusals.push(format!(
            "baseline policies may deny ingress to the target pods ({}): they apply only to traffic no NetworkPolicy decides, and the operator's NetworkPolicies alone do not decide ingress to every target pod (one is isolated by none, or a custody block policy selects it), while a custody block policy admits (or, created by this block, would admit) every client but the blocked ones, those the baseline policies deny included; custody does not evaluate them, so it cannot plan this block here: isolate every target pod with a NetworkPolicy of your own that admits only what it should (nothing the baseline policies deny), and wait until no custody block policy selects them (every plan owning such a policy's addresses rolled back or expired; deleting the policy outside custody makes later blocks of its target refuse), then propose again",
            labels(&baseline)
        ));
    }
    step.preconditions.network_policies = planned.read.resource_versions.clone();
    step.preconditions.selecting = planned.read.selecting.iter().cloned().collect();
    step.read = ns
        .network_policies
        .iter()
        .map(|p| object_ref(NETPOL_API, "NetworkPolicy", &p.metadata))
        .collect();
    if let StepDetail::BlockIps { owners, .. } = &mut step.detail {
        *owners = owners_json(&planned.owners);
    }
    if !step.refusals.is_empty() {
        return;
    }
    if let Err(violations) = prove(ctx.ns, ctx.target, &planned.changes, &offenders, false) {
        step.refusals.push(format!(
            "the computed change would not be an exact block ({} differences, first: {}): custody does not propose it",
            violations.len(),
            serde_json::to_string(&violations[0]).unwrap_or_default()
        ));
        return;
    }
    for change in &planned.changes {
        step.warnings.extend(manager_warning(ns, change.name()));
        step.changes
            .push(to_object_change(ns, ctx.target.namespace.as_str(), change));
    }
}

/// The policies named as plans and messages name them, escaped.
fn labels(policies: &[&OtherPolicy]) -> String {
    let named: Vec<String> = policies.iter().map(|p| p.label()).collect();
    crate::terminal::escape(&named.join(", ")).into_owned()
}

/// The pods of the target that are running, and the namespace's other running pods.
fn split_pods<'a>(ctx: &Ctx<'a>) -> (Vec<&'a Pod>, Vec<&'a Pod>) {
    ctx.ns
        .pods
        .iter()
        .filter(|p| is_running(p))
        .partition(|p| ctx.target.pod_selector.matches(&labels_of(p)))
}

fn pod_info(p: &Pod) -> PodInfo {
    PodInfo {
        name: p.metadata.name.clone().unwrap_or_default(),
        labels: labels_of(p),
        host_network: p
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false),
    }
}

/// The target pods that have a CiliumEndpoint, if any: Cilium then enforces them.
fn cilium_enforced(ctx: &Ctx<'_>, pods: &[&Pod]) -> Option<Vec<String>> {
    let endpoints = ctx.ns.cilium_endpoints.as_ref()?;
    let names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .filter(|n| endpoints.contains(n))
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Checks the union of the namespace's policies before and after the changes: the offenders are
/// refused to every target pod and nothing else changes, for sample sources and ports. With
/// `lift`, the changes lift a block: the policies as they are must be those after them with the
/// offenders (the released addresses) refused and nothing else changed — every offender
/// admitted before is then not a difference (a hand edit may have let it in already).
pub(super) fn prove(
    ns: &crate::containment::cluster::NamespaceView,
    target: &crate::policy::containment::Target,
    changes: &[Change],
    offenders: &Offenders,
    lift: bool,
) -> Result<(), Vec<eval::Violation>> {
    let before = &ns.network_policies;
    let mut after: Vec<NetworkPolicy> = before.clone();
    for change in changes {
        let name = change.name().to_owned();
        after.retain(|p| p.metadata.name.as_deref() != Some(name.as_str()));
        match change {
            Change::Create { policy } | Change::Replace { policy, .. } => {
                after.push(policy.clone());
            }
            Change::Delete { .. } => {}
        }
    }
    let name = target.namespace.to_string();
    let pods = eval_pods(ns, target);
    let pod_sources: Vec<eval::Source> = pods
        .iter()
        .map(|p| eval::Source::Pod {
            namespace: name.clone(),
            namespace_labels: [("kubernetes.io/metadata.name".to_owned(), name.clone())].into(),
            labels: p.labels.clone(),
        })
        .collect();
    let all: Vec<NetworkPolicy> = before.iter().chain(after.iter()).cloned().collect();
    let samples = eval::Samples::around(&all, offenders, &pod_sources);
    if !lift {
        return eval::check_no_widening(before, &after, &pods, &samples, offenders);
    }
    let found = eval::check_no_widening(&after, before, &pods, &samples, offenders);
    let left: Vec<eval::Violation> = found
        .err()
        .into_iter()
        .flatten()
        .filter(|v| !matches!(v, eval::Violation::OffenderAdmitted { .. }))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(left)
    }
}

/// The namespace's running pods as the evaluator sees them, each marked whether the target
/// selects it.
pub(super) fn eval_pods(
    ns: &crate::containment::cluster::NamespaceView,
    target: &crate::policy::containment::Target,
) -> Vec<eval::EvalPod> {
    let name = target.namespace.to_string();
    ns.pods
        .iter()
        .filter(|p| is_running(p))
        .map(|p| eval::EvalPod {
            namespace: name.clone(),
            name: p.metadata.name.clone().unwrap_or_default(),
            labels: labels_of(p),
            ports: named_ports(p),
            target: target.pod_selector.matches(&labels_of(p)),
        })
        .collect()
}

fn named_ports(p: &Pod) -> Vec<eval::NamedPort> {
    let containers = p.spec.as_ref().map(|s| s.containers.as_slice());
    containers
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|port| {
            Some(eval::NamedPort {
                name: port.name.clone()?,
                port: u16::try_from(port.container_port).ok()?,
                protocol: port.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
            })
        })
        .collect()
}

pub(super) fn to_object_change(
    ns: &crate::containment::cluster::NamespaceView,
    namespace: &str,
    change: &Change,
) -> ObjectChange {
    let before = ns
        .network_policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(change.name()))
        .map(|p| {
            let mut p = p.clone();
            p.metadata.managed_fields = None;
            serde_json::to_value(p).unwrap_or(Value::Null)
        });
    let (op, after, rv) = match change {
        Change::Create { policy } => (ChangeOp::Create, Some(policy), None),
        Change::Replace {
            policy,
            resource_version,
        } => (
            ChangeOp::Replace,
            Some(policy),
            Some(resource_version.clone()),
        ),
        Change::Delete {
            resource_version, ..
        } => (ChangeOp::Delete, None, Some(resource_version.clone())),
    };
    ObjectChange {
        op,
        object: ObjectRef {
            api_version: NETPOL_API.to_owned(),
            kind: "NetworkPolicy".to_owned(),
            namespace: Some(namespace.to_owned()),
            name: change.name().to_owned(),
            resource_version: rv,
        },
        before,
        after: after.map(|p| serde_json::to_value(p).unwrap_or(Value::Null)),
        patch: None,
        dry_run: not_run(),
    }
}

/// A warning when another field manager (GitOps, Helm, kubectl apply) owns the policy: it may
/// put the rules back.
pub(super) fn manager_warning(
    ns: &crate::containment::cluster::NamespaceView,
    name: &str,
) -> Option<String> {
    let policy = ns
        .network_policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))?;
    let managers: Vec<String> = policy
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .filter(|m| m != "custody")
        .collect();
    (!managers.is_empty()).then(|| {
        format!("NetworkPolicy {name} is also managed by {managers:?}: a GitOps or Helm sync may revert the block")
    })
}

pub(super) fn owners_json(owners: &Owners) -> BTreeMap<String, Vec<Owner>> {
    owners
        .iter()
        .map(|(ip, set)| (ip.to_string(), set.iter().cloned().collect()))
        .collect()
}

pub(super) fn object_ref(
    api_version: &str,
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> ObjectRef {
    ObjectRef {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone(),
    }
}

/// Services and Ingresses in front of the target, and clients taken from `X-Forwarded-For`: an
/// L3 block cannot stop those clients.
fn front_warnings(ctx: &Ctx<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let target_pods: Vec<&Pod> = ctx
        .ns
        .pods
        .iter()
        .filter(|p| is_running(p))
        .filter(|p| ctx.target.pod_selector.matches(&labels_of(p)))
        .collect();
    let selects_target = |selector: Option<&BTreeMap<String, String>>| {
        selector.is_some_and(|sel| {
            !sel.is_empty()
                && target_pods
                    .iter()
                    .any(|p| sel.iter().all(|(k, v)| labels_of(p).get(k) == Some(v)))
        })
    };
    let mut fronting = Vec::new();
    for svc in &ctx.ns.services {
        let Some(spec) = &svc.spec else { continue };
        if !selects_target(spec.selector.as_ref()) {
            continue;
        }
        let name = svc.metadata.name.clone().unwrap_or_default();
        fronting.push(name.clone());
        let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
        let policy = spec.external_traffic_policy.as_deref().unwrap_or("Cluster");
        if matches!(kind, "LoadBalancer" | "NodePort") && policy == "Cluster" {
            out.push(format!("Service {name} is {kind} with externalTrafficPolicy: Cluster: nodes source-NAT its clients, so the pods see node addresses and an IP block cannot stop those clients (set externalTrafficPolicy: Local, or block at the load balancer)"));
        }
    }
    for ing in &ctx.ns.ingresses {
        let name = ing.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &ing.spec else { continue };
        let backends = spec
            .default_backend
            .iter()
            .chain(
                spec.rules
                    .iter()
                    .flatten()
                    .filter_map(|r| r.http.as_ref())
                    .flat_map(|h| h.paths.iter().map(|p| &p.backend)),
            )
            .filter_map(|b| b.service.as_ref().map(|s| s.name.clone()));
        let hits: Vec<String> = backends.filter(|b| fronting.contains(b)).collect();
        if !hits.is_empty() {
            out.push(format!("Ingress {name} routes to the target (Services {hits:?}) through an ingress controller: its clients may arrive from the controller's pods or its load balancer, whose addresses a block cannot tell from the clients': block them at the controller or the load balancer"));
        }
    }
    if !ctx.trusted_proxies.is_empty() {
        out.push(format!("the analysis takes client addresses from X-Forwarded-For behind the trusted proxies {:?}: such clients' packets come from the proxy, and an IP block on the target cannot stop them", ctx.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>()));
    }
    out
}

fn cilium(ctx: &Ctx<'_>, step: &mut Step) {
    let support = &ctx.view.cilium;
    if !support.served {
        step.refusals.push("block_ips.method is cilium but the API server does not serve cilium.io/v2 ciliumnetworkpolicies".to_owned());
        return;
    }
    if support.enable_default_deny != Some(true) {
        step.refusals.push("the served CiliumNetworkPolicy schema lacks spec.enableDefaultDeny (or it could not be read): a deny-only policy would put the target's pods into default-deny".to_owned());
    }
    let (target_pods, _) = split_pods(ctx);
    if target_pods.is_empty() {
        step.refusals
            .push("no pod of the target is running".to_owned());
    }
    let endpoints = ctx.ns.cilium_endpoints.clone().unwrap_or_default();
    let missing: Vec<String> = target_pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .filter(|n| !endpoints.contains(n))
        .collect();
    if !missing.is_empty() {
        step.refusals.push(format!(
            "target pods {missing:?} have no CiliumEndpoint: Cilium does not enforce them"
        ));
    }
    let name = match netpol::block_policy_name(&ctx.target.name.to_string()) {
        Ok(n) => n,
        Err(e) => {
            step.refusals.push(e.to_string());
            return;
        }
    };
    let existing = ctx
        .ns
        .cilium_policies
        .iter()
        .flatten()
        .find(|p| p["metadata"]["name"] == name.as_str());
    let empty = Owners::new();
    let mut owners = ctx.block_owners.unwrap_or(&empty).clone();
    for (ip, owner) in offenders(ctx).entries() {
        owners.entry(*ip).or_default().extend(owner.iter().cloned());
    }
    if let StepDetail::BlockIps { owners: o, .. } = &mut step.detail {
        *o = owners_json(&owners);
    }
    if let Some(p) = existing {
        step.read.push(ObjectRef {
            api_version: CILIUM_API.to_owned(),
            kind: "CiliumNetworkPolicy".to_owned(),
            namespace: Some(ctx.target.namespace.to_string()),
            name: name.clone(),
            resource_version: p["metadata"]["resourceVersion"].as_str().map(str::to_owned),
        });
    }
    let mut addrs: Vec<IpAddr> = owners.keys().copied().collect();
    if let Some(p) = existing {
        match existing_cidrs(ctx, p) {
            Ok(held) => {
                let unowned: Vec<String> = held
                    .iter()
                    .filter(|a| !owners.contains_key(a))
                    .map(ToString::to_string)
                    .collect();
                if !unowned.is_empty() {
                    step.warnings.push(format!("the custody CiliumNetworkPolicy {name} denies {unowned:?}, which no owner in the journal holds: kept"));
                }
                addrs.extend(held.iter().filter(|a| !owners.contains_key(a)));
                addrs.sort();
            }
            Err(what) => step.refusals.push(format!(
                "the custody CiliumNetworkPolicy {name} was changed outside custody ({what}); restore or delete it"
            )),
        }
    }
    if !step.refusals.is_empty() || ctx.addresses.is_empty() {
        return;
    }
    let after = cilium_policy(ctx, &name, &addrs);
    let rv = existing.and_then(|p| p["metadata"]["resourceVersion"].as_str().map(str::to_owned));
    if existing.is_some() && rv.is_none() {
        step.refusals.push(format!(
            "CiliumNetworkPolicy {name} has no resourceVersion, so a replace cannot be guarded"
        ));
        return;
    }
    step.changes.push(ObjectChange {
        op: if existing.is_some() {
            ChangeOp::Replace
        } else {
            ChangeOp::Create
        },
        object: ObjectRef {
            api_version: CILIUM_API.to_owned(),
            kind: "CiliumNetworkPolicy".to_owned(),
            namespace: Some(ctx.target.namespace.to_string()),
            name,
            resource_version: rv.clone(),
        },
        before: existing.cloned().map(strip_managed),
        after: Some(with_rv(after, rv)),
        patch: None,
        dry_run: DryRun::NotRun {
            why: "not run yet".to_owned(),
        },
    });
}

/// The addresses an existing custody CiliumNetworkPolicy denies, if it has exactly the shape
/// custody writes (the target's selector, default-deny off, one `ingressDeny` rule of host
/// CIDRs and nothing else); else what differs.
fn existing_cidrs(ctx: &Ctx<'_>, policy: &Value) -> Result<Vec<IpAddr>, String> {
    let spec = policy["spec"].as_object().ok_or("it has no spec")?;
    if let Some(extra) = spec.keys().find(|k| {
        !matches!(
            k.as_str(),
            "endpointSelector" | "enableDefaultDeny" | "ingressDeny"
        )
    }) {
        return Err(format!("spec.{extra} is custody's no longer"));
    }
    let selector = serde_json::to_value(ctx.target.pod_selector.to_k8s()).unwrap_or(Value::Null);
    if spec.get("endpointSelector") != Some(&selector) {
        return Err("its endpointSelector is not the target's".to_owned());
    }
    if spec.get("enableDefaultDeny") != Some(&json!({"ingress": false, "egress": false})) {
        return Err("enableDefaultDeny is not off for ingress and egress".to_owned());
    }
    let rules = spec["ingressDeny"]
        .as_array()
        .ok_or("ingressDeny is not a list")?;
    let [rule] = rules.as_slice() else {
        return Err("ingressDeny is not one rule".to_owned());
    };
    let rule = rule.as_object().ok_or("ingressDeny[0] is not an object")?;
    if rule.keys().any(|k| k != "fromCIDRSet") {
        return Err("ingressDeny[0] holds more than fromCIDRSet".to_owned());
    }
    let mut out = Vec::new();
    for entry in rule["fromCIDRSet"].as_array().into_iter().flatten() {
        let text = entry["cidr"].as_str().unwrap_or_default();
        let cidr = crate::net::Cidr::parse(text)
            .filter(|c| c.prefix() == if c.is_ipv4() { 32 } else { 128 })
            .filter(|_| entry.as_object().is_some_and(|o| o.len() == 1))
            .ok_or_else(|| format!("fromCIDRSet entry {entry} is not a host address"))?;
        out.push(cidr.addr());
    }
    Ok(out)
}

fn strip_managed(mut v: Value) -> Value {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

fn with_rv(mut v: Value, rv: Option<String>) -> Value {
    if let (Some(rv), Some(m)) = (rv, v.get_mut("metadata").and_then(Value::as_object_mut)) {
        m.insert("resourceVersion".to_owned(), Value::String(rv));
    }
    v
}

/// The custody CiliumNetworkPolicy: deny ingress from every owned address, with default-deny
/// off so the deny-only policy does not isolate the pods.
fn cilium_policy(ctx: &Ctx<'_>, name: &str, addrs: &[IpAddr]) -> Value {
    let cidrs: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"cidr": crate::net::Cidr::host(*a).to_string()}))
        .collect();
    json!({
        "apiVersion": CILIUM_API,
        "kind": "CiliumNetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": ctx.target.namespace.to_string(),
            "labels": {"app.kubernetes.io/managed-by": "custody"},
        },
        "spec": {
            "endpointSelector": serde_json::to_value(ctx.target.pod_selector.to_k8s()).unwrap_or(Value::Null),
            "enableDefaultDeny": {"ingress": false, "egress": false},
            "ingressDeny": [{"fromCIDRSet": cidrs}],
        },
    })
}
