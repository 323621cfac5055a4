//! The fake API server's objects, served as the API reference describes the REST interface:
//! list (paged) and get for each kind the planner reads, cluster-wide Nodes and Namespaces, the
//! CiliumNetworkPolicy CRD and the `cilium.io/v2` kinds when Cilium is installed, Calico's
//! IPPools when Calico is; and writes —
//! POST to the collection, PUT, PATCH (JSON patch, merge patch) and DELETE on the object — with
//! `dryRun=All` judged and answered but not stored, and without it stored with a new
//! `resourceVersion`. Conflicts (stale `resourceVersion`: 409 `Conflict`; an existing name: 409
//! `AlreadyExists`), missing objects (404), unknown methods (405) and invalid objects (422
//! `Invalid`, from `validate`) are answered with the API server's `Status` bodies. A JSON patch
//! that cannot be applied (a `test` that fails, a path that is missing) is 422 `Invalid` with
//! the generic message and nothing else (`NewGenericServerResponse`: the reason is not sent).
//! What the server keeps from a write: `uid`, `creationTimestamp`, `status` (a write to the
//! object never changes it; a create clears it); `generation` moves with `spec` (for
//! Deployments also with the annotations) and is not kept for Secrets (`secrets`); a stored
//! write to a Deployment starts its rollout (`rollout`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::validate::{apply_json_patch, merge_patch, validate, FieldError};
use super::{Reply, Request, State};

/// A stored object's key: group/version, resource, namespace ("" when cluster-scoped), name.
pub type Key = (String, String, String, String);

/// (group/version, resource, kind, namespaced): what the fake serves.
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "pods", "Pod", true),
    ("v1", "secrets", "Secret", true),
    ("v1", "services", "Service", true),
    ("v1", "nodes", "Node", false),
    ("v1", "namespaces", "Namespace", false),
    (
        "networking.k8s.io/v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    ("networking.k8s.io/v1", "ingresses", "Ingress", true),
    ("apps/v1", "deployments", "Deployment", true),
    ("apps/v1", "replicasets", "ReplicaSet", true),
    ("apps/v1", "statefulsets", "StatefulSet", true),
    ("apps/v1", "daemonsets", "DaemonSet", true),
    ("batch/v1", "jobs", "Job", true),
    ("batch/v1", "cronjobs", "CronJob", true),
    (
        "cilium.io/v2",
        "ciliumnetworkpolicies",
        "CiliumNetworkPolicy",
        true,
    ),
    ("cilium.io/v2", "ciliumendpoints", "CiliumEndpoint", true),
    ("cilium.io/v2", "ciliumnodes", "CiliumNode", false),
    ("crd.projectcalico.org/v1", "ippools", "IPPool", false),
    (
        "crd.projectcalico.org/v1",
        "globalnetworkpolicies",
        "GlobalNetworkPolicy",
        false,
    ),
    (
        "crd.projectcalico.org/v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    (
        "policy.networking.k8s.io/v1alpha1",
        "adminnetworkpolicies",
        "AdminNetworkPolicy",
        false,
    ),
    (
        "policy.networking.k8s.io/v1alpha1",
        "baselineadminnetworkpolicies",
        "BaselineAdminNetworkPolicy",
        false,
    ),
    (
        "crd.antrea.io/v1beta1",
        "clusternetworkpolicies",
        "ClusterNetworkPolicy",
        false,
    ),
    (
        "crd.antrea.io/v1beta1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    ("projectcalico.org/v3", "ippools", "IPPool", false),
    (
        "projectcalico.org/v3",
        "globalnetworkpolicies",
        "GlobalNetworkPolicy",
        false,
    ),
    (
        "projectcalico.org/v3",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    (
        "policy.networking.k8s.io/v1alpha2",
        "clusternetworkpolicies",
        "ClusterNetworkPolicy",
        false,
    ),
    (
        "crd.antrea.io/v1alpha1",
        "clusternetworkpolicies",
        "ClusterNetworkPolicy",
        false,
    ),
    (
        "crd.antrea.io/v1alpha1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    (
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    ),
];

/// The kind and scope of `resource` in `gv`.
pub fn kind_of(gv: &str, resource: &str) -> Option<(&'static str, bool)> {
    KINDS
        .iter()
        .find(|k| k.0 == gv && k.1 == resource)
        .map(|k| (k.2, k.3))
}

/// The resource serving `kind` in `gv`.
pub fn resource_of(gv: &str, kind: &str) -> Option<&'static str> {
    KINDS.iter().find(|k| k.0 == gv && k.2 == kind).map(|k| k.1)
}

/// (resource, kind, namespaced) of every kind served in `gv`.
pub fn resources_of(gv: &str) -> Vec<(&'static str, &'static str, bool)> {
    KINDS
        .iter()
        .filter(|k| k.0 == gv)
        .map(|k| (k.1, k.2, k.3))
        .collect()
}

/// `networkpolicies.networking.k8s.io`, or `services` for the core group.
fn group_resource(gv: &str, resource: &str) -> String {
    match gv.split_once('/') {
        Some((group, _)) => format!("{resource}.{group}"),
        None => resource.to_owned(),
    }
}

pub fn status_with(code: u16, reason: &str, message: &str, details: Value) -> Reply {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code});
    if !details.is_null() {
        s["details"] = details;
    }
    Reply::Whole(code, serde_json::to_vec(&s).unwrap())
}

/// A request's path taken apart: (gv, resource, namespace, name).
pub fn parse_path(path: &str) -> Option<(String, String, String, Option<String>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (gv, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, res, rest @ ..] => (ns.to_string(), {
            let mut r = vec![*res];
            r.extend_from_slice(rest);
            r
        }),
        other => (String::new(), other.to_vec()),
    };
    match rest.as_slice() {
        [res] => Some((gv, res.to_string(), ns, None)),
        [res, name] => Some((gv, res.to_string(), ns, Some(name.to_string()))),
        // A subresource (`pods/NAME/log`): not an object.
        _ => None,
    }
}

/// Serves `req` if it is about a kind the fake stores; `None` leaves it to the caller (logs,
/// events, discovery).
pub fn route(
    st: &mut State,
    req: &Request,
    list: &dyn Fn(&str, &str, Vec<Value>) -> Reply,
) -> Option<Reply> {
    let (gv, resource, ns, name) = parse_path(&req.path)?;
    let (kind, namespaced) = kind_of(&gv, &resource)?;
    if !super::cluster::installed(st, &gv) {
        return None;
    }
    // Cluster-scoped kinds have no namespace; namespaced ones are listed across namespaces only.
    if !namespaced && !ns.is_empty() {
        return None;
    }
    if namespaced && ns.is_empty() && (name.is_some() || req.method != "GET") {
        return None;
    }
    let dry_run = req.query.get("dryRun").is_some_and(|v| v == "All");
    if req.method == "GET" && gv == "apps/v1" && resource == "deployments" {
        super::rollout::observe(st, &ns, name.as_deref());
    }
    Some(match (req.method.as_str(), name) {
        ("GET", None) => {
            let selector = req.query.get("labelSelector").cloned().unwrap_or_default();
            let mut items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((g, r, n, _), _)| {
                    *g == gv && *r == resource && (ns.is_empty() || *n == ns)
                })
                .map(|(_, v)| v.clone())
                .filter(|v| super::selects(&selector, &labels_of(v)))
                .collect();
            if resource == "pods" && ns == st.namespace {
                let fake: Vec<Value> = st
                    .pods
                    .iter()
                    .filter(|p| super::selects(&selector, &p.labels))
                    .map(|p| super::pods::pod_json(st, &ns, p))
                    .collect();
                items.splice(0..0, fake);
            }
            let list_kind = format!("{kind}List");
            let rv = st.resource_version.to_string();
            let reply = list(&list_kind, &gv, items);
            with_list_version(reply, &rv)
        }
        ("GET", Some(name)) => match get(st, &gv, &resource, &ns, &name) {
            Some(v) => Reply::Whole(200, serde_json::to_vec(&v).unwrap()),
            None => not_found(&gv, &resource, &name),
        },
        ("POST", None) => create(st, req, (&gv, &resource, kind, &ns), dry_run),
        ("PUT", Some(name)) => replace(st, req, (&gv, &resource, kind, &ns), &name, dry_run),
        ("PATCH", Some(name)) => patch(st, req, (&gv, &resource, kind, &ns), &name, dry_run),
        ("DELETE", Some(name)) => delete(st, req, (&gv, &resource, &ns), &name, dry_run),
        (method, _) => status_with(
            405,
            "MethodNotAllowed",
            &format!(
                "the server does not allow this method on the requested resource ({method} {})",
                req.path
            ),
            Value::Null,
        ),
    })
}

/// The list's `metadata.resourceVersion` is the store's.
fn with_list_version(reply: Reply, rv: &str) -> Reply {
    match reply {
        Reply::Whole(200, body) => {
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            v["metadata"]["resourceVersion"] = json!(rv);
            Reply::Whole(200, serde_json::to_vec(&v).unwrap())
        }
        other => other,
    }
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn get(st: &State, gv: &str, res: &str, ns: &str, name: &str) -> Option<Value> {
    let key = (
        gv.to_owned(),
        res.to_owned(),
        ns.to_owned(),
        name.to_owned(),
    );
    if let Some(v) = st.objects.get(&key) {
        return Some(v.clone());
    }
    if res == "pods" && ns == st.namespace {
        return st
            .pods
            .iter()
            .find(|p| p.name == name)
            .map(|p| super::pods::pod_json(st, ns, p));
    }
    None
}

pub fn not_found(gv: &str, res: &str, name: &str) -> Reply {
    let gr = group_resource(gv, res);
    let group = gv.split_once('/').map_or("", |g| g.0);
    status_with(
        404,
        "NotFound",
        &format!("{gr} \"{name}\" not found"),
        json!({"name": name, "group": group, "kind": res}),
    )
}

fn conflict(gv: &str, res: &str, name: &str, why: &str) -> Reply {
    let gr = group_resource(gv, res);
    let group = gv.split_once('/').map_or("", |g| g.0);
    status_with(
        409,
        "Conflict",
        &format!("Operation cannot be fulfilled on {gr} \"{name}\": {why}"),
        json!({"name": name, "group": group, "kind": res}),
    )
}

fn invalid(kind: &str, gv: &str, name: &str, errors: &[FieldError]) -> Reply {
    let group = gv.split_once('/').map_or("", |g| g.0);
    let qualified = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let each: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    let message = if each.len() == 1 {
        format!("{qualified} \"{name}\" is invalid: {}", each[0])
    } else {
        format!("{qualified} \"{name}\" is invalid: [{}]", each.join(", "))
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
        .collect();
    status_with(
        422,
        "Invalid",
        &message,
        json!({"name": name, "group": group, "kind": kind, "causes": causes}),
    )
}

fn bad_request(message: &str) -> Reply {
    status_with(400, "BadRequest", message, Value::Null)
}

type Coll<'a> = (&'a str, &'a str, &'static str, &'a str);

/// Checks what every write checks (an update also against `current`), then stores it (unless a
/// dry-run) and answers the object.
fn judge(
    st: &mut State,
    coll: Coll<'_>,
    (name, current): (&str, Option<&Value>),
    mut obj: Value,
    dry_run: bool,
    code: u16,
) -> Reply {
    let (gv, res, kind, ns) = coll;
    let mut errors = Vec::new();
    if let (Some(current), "Secret") = (current, kind) {
        super::secrets::validate_update(current, &obj, &mut errors);
    }
    let (more, mut warnings) = validate(kind, &obj);
    errors.extend(more);
    if !errors.is_empty() {
        return invalid(kind, gv, name, &errors);
    }
    if kind == "CiliumNetworkPolicy" {
        prune_unknown_spec_fields(st, &mut obj, &mut warnings);
    }
    obj["apiVersion"] = json!(gv);
    obj["kind"] = json!(kind);
    if !ns.is_empty() {
        obj["metadata"]["namespace"] = json!(ns);
    }
    if !dry_run {
        st.resource_version += 1;
        obj["metadata"]["resourceVersion"] = json!(st.resource_version.to_string());
        st.objects
            .insert((gv.into(), res.into(), ns.into(), name.into()), obj.clone());
        if kind == "Deployment" {
            super::rollout::written(st, ns, name, current, &obj);
        }
    }
    Reply::Warned(code, serde_json::to_vec(&obj).unwrap(), warnings)
}

/// A custom resource's fields that its CRD's structural schema does not know are pruned, with
/// the warning server-side field validation (`Warn`, the default) gives: so a
/// CiliumNetworkPolicy's `enableDefaultDeny` silently disappears where the CRD lacks it.
fn prune_unknown_spec_fields(st: &State, obj: &mut Value, warnings: &mut Vec<String>) {
    let key = (
        "apiextensions.k8s.io/v1".to_owned(),
        "customresourcedefinitions".to_owned(),
        String::new(),
        "ciliumnetworkpolicies.cilium.io".to_owned(),
    );
    let Some(crd) = st.objects.get(&key) else {
        return;
    };
    let known = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let unknown: Vec<String> = spec
            .keys()
            .filter(|k| !known.contains_key(*k))
            .cloned()
            .collect();
        for field in unknown {
            spec.remove(&field);
            warnings.push(format!("unknown field \"spec.{field}\""));
        }
    }
}

fn body_object(req: &Request) -> Result<Value, Reply> {
    let v: Value = serde_json::from_slice(&req.body).map_err(|e| {
        bad_request(&format!(
            "the body of the request was in an unknown format: {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(bad_request(
            "the body of the request was in an unknown format: not an object",
        ));
    }
    Ok(v)
}

/// The body's `metadata.namespace` and `kind` must agree with the request's.
fn same_scope(obj: &Value, coll: Coll<'_>) -> Result<(), Reply> {
    let (_, _, kind, ns) = coll;
    if let Some(n) = obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        if !ns.is_empty() && n != ns {
            return Err(bad_request("the namespace of the provided object does not match the namespace sent on the request"));
        }
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != kind {
            return Err(bad_request(&format!(
                "the kind of the provided object ({k}) does not match the resource ({kind})"
            )));
        }
    }
    Ok(())
}

fn create(st: &mut State, req: &Request, coll: Coll<'_>, dry_run: bool) -> Reply {
    let mut obj = match body_object(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = same_scope(&obj, coll) {
        return r;
    }
    let (gv, res, kind, ns) = coll;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if name.is_empty() {
        return invalid(
            kind,
            gv,
            "",
            &[FieldError::required(
                "metadata.name",
                "name or generateName is required",
            )],
        );
    }
    if get(st, gv, res, ns, &name).is_some() {
        let gr = group_resource(gv, res);
        return status_with(
            409,
            "AlreadyExists",
            &format!("{gr} \"{name}\" already exists"),
            json!({"name": name, "group": gv.split_once('/').map_or("", |g| g.0), "kind": res}),
        );
    }
    if obj
        .pointer("/metadata/resourceVersion")
        .is_some_and(|v| !v.is_null())
    {
        return bad_request("resourceVersion should not be set on objects to be created");
    }
    if kind == "Secret" && st.faults.echoing_webhook {
        let sent = obj["data"].to_string();
        let mut decoded = String::new();
        for v in obj["data"].as_object().into_iter().flat_map(|d| d.values()) {
            if let Ok(bytes) = super::secrets::decode(v.as_str().unwrap_or_default()) {
                decoded.push_str(&String::from_utf8_lossy(&bytes));
                decoded.push(' ');
            }
        }
        let cut: String = decoded
            .chars()
            .take(decoded.chars().count() / 2 + 6)
            .collect();
        return status_with(
            400,
            "BadRequest",
            &format!("admission webhook \"secrets.example.io\" denied the request: data {sent} looks like {cut}"),
            Value::Null,
        );
    }
    if kind == "Secret" {
        if let Err(r) = super::secrets::decode_secret(&mut obj, false) {
            return r;
        }
    } else {
        obj["metadata"]["generation"] = json!(1);
    }
    if has_status(kind) {
        obj["status"] = json!({});
    }
    obj["metadata"]["uid"] = json!(super::uid(&format!("{ns}/{res}/{name}")));
    obj["metadata"]["creationTimestamp"] = json!("2026-11-26T15:00:00Z");
    judge(st, coll, (&name, None), obj, dry_run, 201)
}

fn replace(st: &mut State, req: &Request, coll: Coll<'_>, name: &str, dry_run: bool) -> Reply {
    let mut obj = match body_object(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = same_scope(&obj, coll) {
        return r;
    }
    let (gv, res, kind, ns) = coll;
    if obj.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        let said = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        return bad_request(&format!(
            "the name of the object ({said}) does not match the name on the URL ({name})"
        ));
    }
    let Some(current) = get(st, gv, res, ns, name) else {
        return not_found(gv, res, name);
    };
    let sent = obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if sent.is_empty() {
        return invalid(
            kind,
            gv,
            name,
            &[FieldError::invalid(
                "metadata.resourceVersion",
                "0",
                "must be specified for an update",
            )],
        );
    }
    let now = current
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if sent != now {
        return conflict(gv, res, name, "the object has been modified; please apply your changes to the latest version and try again");
    }
    if kind == "Secret" {
        if let Err(r) = super::secrets::decode_secret(&mut obj, false) {
            return r;
        }
    }
    keep_server_fields(kind, &current, &mut obj);
    judge(st, coll, (name, Some(&current)), obj, dry_run, 200)
}

/// Kinds with a `status` subresource: a write to the object leaves their status alone.
fn has_status(kind: &str) -> bool {
    [
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Pod",
        "Service",
        "Node",
        "Namespace",
    ]
    .contains(&kind)
}

/// What a client cannot change: uid, creation time, the status of a kind with a status
/// subresource; the generation moves with the spec (a Deployment's also with its annotations,
/// which it copies to its ReplicaSets); Secrets have none.
fn keep_server_fields(kind: &str, current: &Value, obj: &mut Value) {
    for field in ["uid", "creationTimestamp"] {
        if let Some(v) = current["metadata"].get(field) {
            obj["metadata"][field] = v.clone();
        }
    }
    if has_status(kind) {
        match (current.get("status"), obj.as_object_mut()) {
            (Some(s), _) => obj["status"] = s.clone(),
            (None, Some(o)) => {
                o.remove("status");
            }
            (None, None) => {}
        }
    }
    if kind == "Secret" {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("generation");
        }
        return;
    }
    let generation = current
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let annotations = |v: &Value| v.pointer("/metadata/annotations").cloned();
    let changed = current.get("spec") != obj.get("spec")
        || (kind == "Deployment" && annotations(current) != annotations(obj));
    obj["metadata"]["generation"] = json!(generation + i64::from(changed));
}

fn patch(st: &mut State, req: &Request, coll: Coll<'_>, name: &str, dry_run: bool) -> Reply {
    let (gv, res, kind, ns) = coll;
    let Some(current) = get(st, gv, res, ns, name) else {
        return not_found(gv, res, name);
    };
    let patched = match req.content_type.as_str() {
        "application/json-patch+json" => {
            let Ok(ops) = serde_json::from_slice::<Vec<Value>>(&req.body) else {
                return bad_request("the body of the request was in an unknown format: not a JSON patch");
            };
            match apply_json_patch(&current, &ops) {
                Ok(v) => v,
                // As the API server answers a patch that cannot be applied (a failed `test`, a
                // missing path): `NewGenericServerResponse(422, …)`, which keeps the reason to
                // itself (no causes: `isUnexpectedResponse` is false).
                Err(_) => {
                    return status_with(422, "Invalid", "the server rejected our request due to an error in our request",
                        json!({}))
                }
            }
        }
        "application/merge-patch+json" => match serde_json::from_slice::<Value>(&req.body) {
            Ok(p) => merge_patch(&current, &p),
            Err(e) => return bad_request(&format!("the body of the request was in an unknown format: {e}")),
        },
        other => {
            return status_with(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json ({other})"), Value::Null)
        }
    };
    let mut patched = patched;
    let sent = patched
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let now = current
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !sent.is_empty() && sent != now {
        return conflict(gv, res, name, "the object has been modified; please apply your changes to the latest version and try again");
    }
    if kind == "Secret" {
        if let Err(r) = super::secrets::decode_secret(&mut patched, true) {
            return r;
        }
    }
    keep_server_fields(kind, &current, &mut patched);
    judge(st, coll, (name, Some(&current)), patched, dry_run, 200)
}

fn delete(
    st: &mut State,
    req: &Request,
    coll: (&str, &str, &str),
    name: &str,
    dry_run: bool,
) -> Reply {
    let (gv, res, ns) = coll;
    let key = (
        gv.to_owned(),
        res.to_owned(),
        ns.to_owned(),
        name.to_owned(),
    );
    let Some(current) = st.objects.get(&key).cloned() else {
        return not_found(gv, res, name);
    };
    let options: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    if let Some(want) = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
    {
        let now = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if want != now {
            return conflict(gv, res, name, &format!("the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({now}). The object might have been modified"));
        }
    }
    if !dry_run {
        st.objects.remove(&key);
        st.resource_version += 1;
    }
    Reply::Whole(200, serde_json::to_vec(&current).unwrap())
}

/// A request RBAC refuses, answered as the API server's authorizer does: who may not do which
/// verb on which resource where.
pub fn forbidden(st: &State, req: &Request) -> Reply {
    let user = format!("system:serviceaccount:{}:custody", st.namespace);
    let Some((gv, resource, ns, name)) = parse_path(&req.path) else {
        return status_with(
            403,
            "Forbidden",
            &format!(
                "forbidden: User {user:?} cannot {} path {:?}",
                req.method.to_lowercase(),
                req.path
            ),
            Value::Null,
        );
    };
    let verb = match (req.method.as_str(), &name) {
        ("GET", None) if req.query.get("watch").is_some_and(|w| w == "true") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        (other, _) => {
            return status_with(
                405,
                "MethodNotAllowed",
                &format!(
                    "the server does not allow this method on the requested resource ({other} {})",
                    req.path
                ),
                Value::Null,
            )
        }
    };
    let group = gv.split_once('/').map_or("", |g| g.0);
    let what = match &name {
        Some(n) => format!("{} {n:?}", group_resource(&gv, &resource)),
        None => group_resource(&gv, &resource),
    };
    let scope = if ns.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {ns:?}")
    };
    let mut details = json!({"kind": resource});
    if let Some(n) = &name {
        details["name"] = json!(n);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    status_with(
        403,
        "Forbidden",
        &format!("{what} is forbidden: User {user:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"),
        details,
    )
}
