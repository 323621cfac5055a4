//! The Kubernetes source against a mock API (`tower-test`): the exact requests it makes.

use super::*;
use ::kube::client::Body;
use http::{Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn request(target: Target, since: Since, container: Option<&str>) -> K8sRequest {
    K8sRequest {
        namespace: "waqiti".into(),
        target,
        since,
        container: container.map(str::to_owned),
        context: None,
        kubeconfig: None,
    }
}

/// Runs `source.open()` against a mock API: every request's path and query, in order, with
/// the answers a cluster with one two-container pod (one container restarted) would give.
fn scenario(req: K8sRequest) -> (Vec<String>, usize) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut seen = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                assert_eq!(request.method(), http::Method::GET);
                let uri = request.uri().to_string();
                let body = if uri.contains("/deployments/") {
                    json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "api-gateway"},
                           "spec": {"selector": {"matchLabels": {"app": "api-gateway"},
                                     "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["canary", "dev"]},
                                                          {"key": "release", "operator": "Exists"}]},
                                    "template": {"spec": {"containers": []}}}})
                    .to_string()
                } else if uri.starts_with("/api/v1/namespaces/waqiti/pods?") {
                    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [{
                        "metadata": {"name": "gw-1", "uid": "u-1"},
                        "spec": {"nodeName": "n1", "containers": [{"name": "gateway", "image": "gw:1"}, {"name": "proxy", "image": "px:1"}]},
                        "status": {"containerStatuses": [
                            {"name": "gateway", "restartCount": 2, "image": "gw:1", "imageID": "gw@sha256:1", "ready": true},
                            {"name": "proxy", "restartCount": 0, "image": "px:1", "imageID": "px@sha256:2", "ready": true}]}}]})
                    .to_string()
                } else if uri.contains("/log?") {
                    "2026-11-26T14:54:48.000000001Z 10.0.0.1 - - [26/Nov/2026:14:54:48 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n".to_owned()
                } else {
                    json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []}).to_string()
                };
                seen.push(uri);
                send.send_response(Response::builder().status(200).body(Body::from(body.into_bytes())).unwrap());
            }
            seen
        })
    });
    let work = tempfile::tempdir().unwrap();
    let policy = crate::policy::CollectionPolicy::default().kubernetes;
    let mut source = K8sSource::new(req, policy, work.path().join("k8s")).with_client(
        move || ::kube::Client::new(service, "waqiti"),
        "https://mock",
    );
    let streams = source.open().unwrap().len();
    source.finished();
    drop(source);
    (server.join().unwrap(), streams)
}

#[test]
fn a_deployment_is_collected_with_these_exact_requests() {
    let (seen, streams) = scenario(request(
        Target::Deployment("api-gateway".into()),
        Since::Seconds(3600),
        None,
    ));
    let selector = "app%3Dapi-gateway%2Ctier%20notin%20%28canary%2Cdev%29%2Crelease";
    // One byte over the cap, to tell a cut log from one of exactly the cap.
    let limit = crate::policy::CollectionPolicy::default()
        .kubernetes
        .limit_bytes
        + 1;
    let log = |c: &str, previous: bool| {
        format!(
            "/api/v1/namespaces/waqiti/pods/gw-1/log?container={c}&timestamps=true{}&sinceSeconds=3600&limitBytes={limit}",
            if previous { "&previous=true" } else { "" }
        )
    };
    assert_eq!(
        seen[..9],
        [
            "/apis/apps/v1/namespaces/waqiti/deployments/api-gateway".to_owned(),
            // Lists are read a page at a time.
            format!("/api/v1/namespaces/waqiti/pods?labelSelector={selector}&limit=500"),
            format!(
                "/apis/apps/v1/namespaces/waqiti/replicasets?labelSelector={selector}&limit=500"
            ),
            "/api/v1/namespaces/waqiti/services?limit=500".to_owned(),
            "/api/v1/namespaces/waqiti/endpoints?limit=500".to_owned(),
            "/apis/discovery.k8s.io/v1/namespaces/waqiti/endpointslices?limit=500".to_owned(),
            "/apis/networking.k8s.io/v1/namespaces/waqiti/ingresses?limit=500".to_owned(),
            "/apis/networking.k8s.io/v1/namespaces/waqiti/networkpolicies?limit=500".to_owned(),
            "/api/v1/namespaces/waqiti/events?limit=500".to_owned(),
        ]
    );
    // The logs, in any order: both containers now, and the restarted one's previous.
    let mut logs = seen[9..].to_vec();
    logs.sort();
    let mut want = vec![
        log("gateway", false),
        log("gateway", true),
        log("proxy", false),
    ];
    want.sort();
    assert_eq!(logs, want);
    assert_eq!(streams, 3);
    assert!(seen.iter().all(|s| !s.contains("secret")));
}

#[test]
fn a_selector_one_container_and_a_start_time() {
    let (seen, streams) = scenario(request(
        Target::Selector("app=api-gateway".into()),
        Since::Time("2026-11-26T14:00:00+01:00".into()),
        Some("proxy"),
    ));
    assert_eq!(
        seen[0],
        "/api/v1/namespaces/waqiti/pods?labelSelector=app%3Dapi-gateway&limit=500"
    );
    let logs: Vec<&String> = seen.iter().filter(|s| s.contains("/log?")).collect();
    assert_eq!(logs.len(), 1);
    assert!(logs[0].contains("container=proxy&timestamps=true&sinceTime=2026-11-26T14%3A00%3A00%2B01%3A00&limitBytes="), "{}", logs[0]);
    assert_eq!(streams, 1);
}

#[test]
fn selectors_and_durations() {
    let selector: LabelSelector = serde_json::from_value(json!({
        "matchLabels": {"app": "a", "tier": "edge"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]},
                             {"key": "legacy", "operator": "DoesNotExist"}]
    }))
    .unwrap();
    assert_eq!(
        selector_string(&selector).unwrap(),
        "app=a,tier=edge,env in (prod,stage),!legacy"
    );
    assert!(selector_string(&LabelSelector::default()).is_err());
}
