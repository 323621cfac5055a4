//! Waiting for a Deployment's rollout after the rotation repointed it: the Deployment
//! controller's own record of it in `status` (`observedGeneration`, updated and available
//! replicas), a paused Deployment and a progress deadline passed read as failures.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::containment::cluster::status_text;
use crate::kube::{encode, Cluster};
use crate::terminal::escape as esc;

/// How often a rollout is looked at.
const ROLLOUT_POLL: Duration = Duration::from_millis(500);

/// Waits until Deployment `namespace/name` has rolled out its current generation: observed,
/// and every replica updated and available. A paused Deployment, one past its progress
/// deadline, or `timeout` fails; so does one whose rolled-out template no longer holds each
/// `expect`ed value at its path (JSON pointer) — another field manager (GitOps, Helm) reverted
/// the patch, and what rolled out is not the rotation.
pub async fn rollout(
    cluster: &Cluster,
    (namespace, name): (&str, &str),
    expect: &[(String, String)],
    timeout: Duration,
) -> Result<Value, String> {
    let path = format!(
        "/apis/apps/v1/namespaces/{}/deployments/{}",
        encode(namespace),
        encode(name)
    );
    let what = format!("Deployment {}/{}", esc(namespace), esc(name));
    let deadline = Instant::now() + timeout;
    loop {
        let last = match cluster.send(&http::Method::GET, &path, None, &[]).await {
            Ok(a) if a.status == 200 => match serde_json::from_slice::<Value>(&a.body) {
                Ok(d) => {
                    let n = |p: &str| d.pointer(p).and_then(Value::as_i64);
                    if d.pointer("/spec/paused") == Some(&Value::Bool(true)) {
                        return Err(format!("{what} is paused: its rollout does not proceed; resume it and run execute again"));
                    }
                    let progressing = d
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"));
                    let want = n("/spec/replicas").unwrap_or(1);
                    let observed = n("/status/observedGeneration").unwrap_or(0);
                    let generation = n("/metadata/generation").unwrap_or(i64::MAX);
                    // A condition of an earlier rollout counts only once the controller has
                    // seen this generation.
                    if observed >= generation
                        && progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
                    {
                        return Err(format!("{what} has timed out progressing (ProgressDeadlineExceeded): its new pods do not become available"));
                    }
                    let status = |p: &str| n(p).unwrap_or(0);
                    let done = observed >= generation
                        && status("/status/updatedReplicas") == want
                        && status("/status/availableReplicas") == want
                        && status("/status/replicas") == want;
                    if done {
                        for (path, value) in expect {
                            let found = d.pointer(path).and_then(Value::as_str);
                            if found != Some(value.as_str()) {
                                return Err(format!(
                                    "{what} rolled out without the new Secret: {} holds {} rather than {}, so another field manager (GitOps, Helm) reverted the patch; the old key is still in use",
                                    esc(path),
                                    esc(found.unwrap_or("nothing")),
                                    esc(value)
                                ));
                            }
                        }
                        return Ok(d.get("status").cloned().unwrap_or(Value::Null));
                    }
                    format!(
                        "observed generation {observed} of {generation}, {} of {want} replicas updated, {} available",
                        status("/status/updatedReplicas"),
                        status("/status/availableReplicas")
                    )
                }
                Err(e) => format!("its answer is not a Deployment: {e}"),
            },
            Ok(a) => {
                let (reason, message) = status_text(&a);
                format!("{} {reason}: {message}", a.status)
            }
            Err(e) => esc(&e.message).into_owned(),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} did not roll out within {} s: {last}",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(ROLLOUT_POLL).await;
    }
}

/// Why the Deployment `target` names cannot be rolled out now (it is paused, or cannot be
/// read), or `None`.
pub async fn paused(
    cluster: &Cluster,
    target: &crate::containment::cluster::Target,
) -> Option<String> {
    let what = format!(
        "Deployment {}/{}",
        esc(&target.namespace),
        esc(&target.name)
    );
    let answer = match cluster
        .send(&http::Method::GET, &target.object_path(), None, &[])
        .await
    {
        Ok(a) => a,
        Err(e) => return Some(format!("cannot read {what}: {}", esc(&e.message))),
    };
    if answer.status != 200 {
        let (reason, message) = status_text(&answer);
        return Some(format!(
            "cannot read {what}: {} {reason}: {message}",
            answer.status
        ));
    }
    let d: Value = serde_json::from_slice(&answer.body).ok()?;
    (d.pointer("/spec/paused") == Some(&Value::Bool(true))).then(|| {
        format!("{what} is paused: a repointed Deployment would never roll out; resume it first")
    })
}
