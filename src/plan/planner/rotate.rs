//! Step 2, `rotate_secrets`: every reference to the Secret in the target's namespace (pod
//! templates of Deployments, StatefulSets, DaemonSets, Jobs and CronJobs, and running Pods:
//! `env[].valueFrom.secretKeyRef`, `envFrom[].secretRef`, `volumes[].secret`,
//! `volumes[].projected.sources[].secret`, in containers and initContainers), the new immutable
//! Secret, and a JSON patch per Deployment whose `test` ops check each reference. Only
//! Deployments listed in the policy are repointed; any other referrer refuses the step, naming it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use serde_json::{json, Value};

use super::super::document::{
    ChangeOp, KeyPlan, ObjectChange, ObjectRef, Preconditions, Reference, Repoint, Step,
    StepDetail, StepStatus,
};
use super::block::object_ref;
use super::{not_run, Ctx};
use crate::containment::cluster::NamespaceView;
use crate::policy::containment::{Encoding, KeySource, RotateSecret, StepKind};

/// What a patch writes where the new Secret's name goes: execution puts the name it chose (and
/// journaled) there.
pub const NEW_SECRET_PLACEHOLDER: &str = "{{new_secret}}";

/// One reference to the Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// JSON pointer to the field holding the Secret's name.
    pub path: String,
    pub value: String,
    /// The keys it reads; None when it reads them all (`envFrom`, a volume without `items`).
    pub keys: Option<Vec<String>>,
}

/// The references to `secret` in a pod spec found at JSON pointer `prefix`.
pub fn scan(spec: &PodSpec, prefix: &str, secret: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let groups = [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ];
    for (field, containers) in groups {
        for (i, c) in containers.into_iter().flatten().enumerate() {
            for (j, env) in c.env.iter().flatten().enumerate() {
                let r = env
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref());
                if let Some(r) = r.filter(|r| r.name == secret) {
                    out.push(Found {
                        path: format!("{prefix}/{field}/{i}/env/{j}/valueFrom/secretKeyRef/name"),
                        value: r.name.clone(),
                        keys: Some(vec![r.key.clone()]),
                    });
                }
            }
            for (j, from) in c.env_from.iter().flatten().enumerate() {
                if let Some(r) = from.secret_ref.as_ref().filter(|r| r.name == secret) {
                    out.push(Found {
                        path: format!("{prefix}/{field}/{i}/envFrom/{j}/secretRef/name"),
                        value: r.name.clone(),
                        keys: None,
                    });
                }
            }
        }
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if let Some(s) = v
            .secret
            .as_ref()
            .filter(|s| s.secret_name.as_deref() == Some(secret))
        {
            out.push(Found {
                path: format!("{prefix}/volumes/{i}/secret/secretName"),
                value: secret.to_owned(),
                keys: s
                    .items
                    .as_ref()
                    .map(|items| items.iter().map(|k| k.key.clone()).collect()),
            });
        }
        let sources = v.projected.as_ref().and_then(|p| p.sources.as_ref());
        for (j, src) in sources.into_iter().flatten().enumerate() {
            if let Some(s) = src.secret.as_ref().filter(|s| s.name == secret) {
                out.push(Found {
                    path: format!("{prefix}/volumes/{i}/projected/sources/{j}/secret/name"),
                    value: secret.to_owned(),
                    keys: s
                        .items
                        .as_ref()
                        .map(|items| items.iter().map(|k| k.key.clone()).collect()),
                });
            }
        }
    }
    out
}

/// Every other field of `spec` that names `secret` where a Secret's name goes (`secretName`, or a
/// `name` under a field about secrets: CSI `nodePublishSecretRef`, `imagePullSecrets`, an
/// ephemeral container's `secretKeyRef`, …) beside the references `scan` found: custody cannot
/// repoint those, so the step is refused.
pub fn unrecognised(spec: &PodSpec, prefix: &str, secret: &str, found: &[Found]) -> Vec<String> {
    fn walk(v: &Value, path: &mut Vec<String>, secret: &str, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(v, path, secret, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(v, path, secret, out);
                    path.pop();
                }
            }
            Value::String(text) if text == secret => {
                let last = path.last().map(String::as_str);
                let about_secrets = path
                    .iter()
                    .rev()
                    .skip(1)
                    .take(2)
                    .any(|p| p.to_ascii_lowercase().contains("secret"));
                if last == Some("secretName") || (last == Some("name") && about_secrets) {
                    out.push(path.clone());
                }
            }
            _ => {}
        }
    }
    let Ok(value) = serde_json::to_value(spec) else {
        return vec![format!("{prefix}: the pod spec cannot be read")];
    };
    let mut hits = Vec::new();
    walk(&value, &mut Vec::new(), secret, &mut hits);
    hits.into_iter()
        .map(|segments| {
            let escaped: Vec<String> = segments
                .iter()
                .map(|s| s.replace('~', "~0").replace('/', "~1"))
                .collect();
            format!("{prefix}/{}", escaped.join("/"))
        })
        .filter(|path| !found.iter().any(|f| &f.path == path))
        .collect()
}

/// The `rotate_secrets` step for one policy entry.
pub(super) fn step(ctx: &Ctx<'_>, number: u32, rotation: &RotateSecret) -> Step {
    let secret = rotation.secret.to_string();
    let prefix = format!("{secret}-{}", ctx.plan);
    let mut step = Step {
        number,
        kind: StepKind::RotateSecrets,
        target: ctx.target.name.to_string(),
        namespace: ctx.target.namespace.to_string(),
        status: StepStatus::Planned,
        refusals: Vec::new(),
        warnings: vec![
            format!("the old Secret {secret} stays (it is evidence): revoke its key at the issuer, which custody cannot do"),
            format!("if {secret} is synced from outside the cluster (External Secrets, a CSI driver), rotate it at its source: a sync may overwrite the repointed references' Secret or re-create the old one"),
            "custody cannot read Secrets: the new Secret is of type Opaque with exactly the keys the policy lists".to_owned(),
        ],
        read: Vec::new(),
        changes: Vec::new(),
        preconditions: Preconditions::default(),
        detail: StepDetail::RotateSecrets {
            secret: secret.clone(),
            new_name_prefix: prefix.clone(),
            keys: key_plans(rotation),
            deployments: Vec::new(),
        },
    };
    let listed: BTreeSet<String> = rotation
        .deployments
        .iter()
        .map(ToString::to_string)
        .collect();
    let keys: BTreeSet<String> = rotation.keys.keys().map(ToString::to_string).collect();
    let repoints = references(ctx.ns, &secret, &listed, &keys, &mut step);
    step.changes.push(secret_create(ctx, rotation, &prefix));
    for r in &repoints {
        let refs: BTreeMap<String, String> = r
            .references
            .iter()
            .map(|x| (x.path.clone(), x.value.clone()))
            .collect();
        step.preconditions
            .deployment_refs
            .insert(r.deployment.clone(), refs);
        step.changes.push(deployment_patch(ctx, r));
    }
    if let StepDetail::RotateSecrets { deployments, .. } = &mut step.detail {
        *deployments = repoints;
    }
    if !step.refusals.is_empty() {
        step.status = StepStatus::Refused;
        step.changes.clear();
    }
    step
}

fn key_plans(rotation: &RotateSecret) -> BTreeMap<String, KeyPlan> {
    rotation
        .keys
        .iter()
        .map(|(k, source)| {
            let plan = match source {
                KeySource::Provided => KeyPlan::Provided,
                KeySource::Generate { bytes, encoding } => KeyPlan::Generate {
                    bytes: *bytes,
                    encoding: match encoding {
                        Encoding::Base64 => "base64",
                        Encoding::Base64url => "base64url",
                        Encoding::Hex => "hex",
                    }
                    .to_owned(),
                },
            };
            (k.to_string(), plan)
        })
        .collect()
}

/// Scans every workload of the namespace; records what it read, refuses the step for every
/// referrer that cannot be repointed and for keys the policy lacks, and returns the Deployments
/// to repoint.
fn references(
    ns: &NamespaceView,
    secret: &str,
    listed: &BTreeSet<String>,
    keys: &BTreeSet<String>,
    step: &mut Step,
) -> Vec<Repoint> {
    let mut repoints = Vec::new();
    let check_keys = |found: &[Found], owner: &str, step: &mut Step| {
        for f in found {
            for k in f.keys.iter().flatten() {
                if !keys.contains(k) {
                    step.refusals.push(format!("{owner} reads key {k:?} of Secret {secret} ({}), which rotate_secrets.keys does not list: the new Secret would lack it", f.path));
                }
            }
        }
    };
    for d in &ns.deployments {
        let name = d.metadata.name.clone().unwrap_or_default();
        step.read
            .push(object_ref("apps/v1", "Deployment", &d.metadata));
        let spec = d.spec.as_ref().and_then(|s| s.template.spec.as_ref());
        let found = spec
            .map(|s| scan(s, "/spec/template/spec", secret))
            .unwrap_or_default();
        let other = spec
            .map(|s| unrecognised(s, "/spec/template/spec", secret, &found))
            .unwrap_or_default();
        for path in other {
            step.refusals.push(format!("Deployment {name} names Secret {secret} at {path}, a reference custody cannot repoint"));
        }
        if found.is_empty() {
            if listed.contains(&name) {
                step.warnings.push(format!("Deployment {name} is listed in rotate_secrets but does not reference Secret {secret}: nothing to repoint there"));
            }
            continue;
        }
        check_keys(&found, &format!("Deployment {name}"), step);
        if !listed.contains(&name) {
            step.refusals.push(format!("Deployment {name} references Secret {secret} but is not listed in rotate_secrets.deployments: it would keep the old key"));
            continue;
        }
        if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            step.warnings.push(format!("Deployment {name} is paused: its rollout will not happen and the step will fail unless it is resumed"));
        }
        repoints.push(Repoint {
            deployment: name,
            references: found
                .into_iter()
                .map(|f| Reference {
                    path: f.path,
                    value: f.value,
                    key: f
                        .keys
                        .filter(|k| k.len() == 1)
                        .and_then(|k| k.into_iter().next()),
                })
                .collect(),
        });
    }
    for name in listed {
        if !ns
            .deployments
            .iter()
            .any(|d| d.metadata.name.as_deref() == Some(name.as_str()))
        {
            step.refusals.push(format!("Deployment {name}, listed in rotate_secrets.deployments, does not exist in the namespace"));
        }
    }
    let others = [
        (
            "StatefulSet",
            workload_specs(&ns.stateful_sets, |w| {
                (
                    &w.metadata,
                    w.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                )
            }),
        ),
        (
            "DaemonSet",
            workload_specs(&ns.daemon_sets, |w| {
                (
                    &w.metadata,
                    w.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                )
            }),
        ),
        (
            "Job",
            workload_specs(&ns.jobs, |w| {
                (
                    &w.metadata,
                    w.spec.as_ref().and_then(|s| s.template.spec.as_ref()),
                )
            }),
        ),
        (
            "CronJob",
            workload_specs(&ns.cron_jobs, |w| {
                (
                    &w.metadata,
                    w.spec
                        .job_template
                        .spec
                        .as_ref()
                        .and_then(|j| j.template.spec.as_ref()),
                )
            }),
        ),
    ];
    for (kind, specs) in others {
        for (name, spec) in specs {
            let refers = |s: &PodSpec| {
                !scan(s, "", secret).is_empty() || !unrecognised(s, "", secret, &[]).is_empty()
            };
            if spec.is_some_and(refers) {
                step.refusals.push(format!("{kind} {name} references Secret {secret}: only Deployments can be repointed, so rotating would leave it on the old key"));
            }
        }
    }
    for pod in &ns.pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &pod.spec else { continue };
        let found = scan(spec, "/spec", secret);
        let other = unrecognised(spec, "/spec", secret, &found);
        if found.is_empty() && other.is_empty() {
            continue;
        }
        for path in other {
            step.refusals.push(format!(
                "Pod {name} names Secret {secret} at {path}, a reference custody cannot repoint"
            ));
        }
        check_keys(&found, &format!("Pod {name}"), step);
        match owning_deployment(ns, pod) {
            Some(d) if listed.contains(&d) => {}
            Some(d) => step.refusals.push(format!("Pod {name} (of Deployment {d}) references Secret {secret}, and its Deployment is not repointed")),
            None => step.refusals.push(format!("Pod {name} references Secret {secret} and is not owned through a listed Deployment: it would keep the old key")),
        }
    }
    step.refusals.dedup();
    repoints
}

fn workload_specs<'a, T>(
    items: &'a [T],
    f: impl Fn(
        &'a T,
    ) -> (
        &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        Option<&'a PodSpec>,
    ),
) -> Vec<(String, Option<&'a PodSpec>)> {
    items
        .iter()
        .map(|w| {
            let (meta, spec) = f(w);
            (meta.name.clone().unwrap_or_default(), spec)
        })
        .collect()
}

/// The Deployment a pod belongs to, through its controlling ReplicaSet.
fn owning_deployment(ns: &NamespaceView, pod: &Pod) -> Option<String> {
    let controller =
        |refs: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
         kind: &str| {
            refs.into_iter()
                .flatten()
                .find(|r| r.controller == Some(true) && r.kind == kind)
                .map(|r| (r.name.clone(), r.uid.clone()))
        };
    let (rs_name, rs_uid) = controller(pod.metadata.owner_references.as_ref(), "ReplicaSet")?;
    let rs = ns.replica_sets.iter().find(|r| {
        r.metadata.name.as_deref() == Some(rs_name.as_str())
            && r.metadata.uid.as_deref() == Some(rs_uid.as_str())
    })?;
    let (d_name, d_uid) = controller(rs.metadata.owner_references.as_ref(), "Deployment")?;
    ns.deployments
        .iter()
        .any(|d| {
            d.metadata.name.as_deref() == Some(d_name.as_str())
                && d.metadata.uid.as_deref() == Some(d_uid.as_str())
        })
        .then_some(d_name)
}

fn secret_create(ctx: &Ctx<'_>, rotation: &RotateSecret, prefix: &str) -> ObjectChange {
    let name = format!("{prefix}-{{{{random}}}}");
    let data: serde_json::Map<String, Value> = rotation
        .keys
        .keys()
        .map(|k| (k.to_string(), Value::String("(redacted)".to_owned())))
        .collect();
    ObjectChange {
        op: ChangeOp::Create,
        object: ObjectRef {
            api_version: "v1".to_owned(),
            kind: "Secret".to_owned(),
            namespace: Some(ctx.target.namespace.to_string()),
            name: name.clone(),
            resource_version: None,
        },
        before: None,
        after: Some(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": ctx.target.namespace.to_string(),
                "labels": {"app.kubernetes.io/managed-by": "custody"},
                "annotations": {"custody.io/case": ctx.case.to_string(), "custody.io/plan": ctx.plan.to_string(), "custody.io/replaces": rotation.secret.to_string()},
            },
            "immutable": true,
            "type": "Opaque",
            "data": data,
        })),
        patch: None,
        dry_run: super::super::document::DryRun::NotSupported {
            why: "the values exist only at execution, and custody never sends them before"
                .to_owned(),
        },
    }
}

fn deployment_patch(ctx: &Ctx<'_>, r: &Repoint) -> ObjectChange {
    let mut ops: Vec<Value> = r
        .references
        .iter()
        .map(|x| json!({"op": "test", "path": x.path, "value": x.value}))
        .collect();
    ops.extend(
        r.references
            .iter()
            .map(|x| json!({"op": "replace", "path": x.path, "value": NEW_SECRET_PLACEHOLDER})),
    );
    let d = ctx
        .ns
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(r.deployment.as_str()));
    ObjectChange {
        op: ChangeOp::Patch,
        object: ObjectRef {
            api_version: "apps/v1".to_owned(),
            kind: "Deployment".to_owned(),
            namespace: Some(ctx.target.namespace.to_string()),
            name: r.deployment.clone(),
            resource_version: d.and_then(|d| d.metadata.resource_version.clone()),
        },
        before: None,
        after: None,
        patch: Some(Value::Array(ops)),
        dry_run: not_run(),
    }
}
