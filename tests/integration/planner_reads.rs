//! What the planner reads from the cluster and how its writes are dry-run, over real HTTP to the
//! fake API server: a whole view (every kind, Nodes, the cluster's identity and clock), lists
//! read across pages, a refused or failing list failing the whole read, discovery with and
//! without `cilium.io/v2`, dry-runs accepted, refused (422, 409, a failed JSON patch `test`) or
//! not run, and the planner's Role and ClusterRole (`deploy/role-planner.yaml`) checked against
//! every request made: each one allowed, every grant used, nothing on Secrets. `pod_network`:
//! Calico IPPools and CiliumNodes read as the pod network, and refused lists failing the read.

mod other_engines;
mod pod_network;
mod secret_create;
mod stale;
mod writes;

use std::path::Path;

use serde_json::{json, Value};

use custody::containment::cluster::{dry_run, read_view, DryRun, DryRunRequest, Target};
use custody::kube::{Cluster, Retry};

use crate::fake_kube::{uid, FakeKube};
use crate::k8s::{cluster, NS};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn connect(rt: &tokio::runtime::Runtime, kube: &FakeKube) -> (Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = kube.kubeconfig(dir.path());
    let mut c = rt
        .block_on(custody::kube::connect(Some(&config), None))
        .unwrap();
    c.retry = Retry {
        attempts: 2,
        first: std::time::Duration::from_millis(1),
        longest: std::time::Duration::from_millis(1),
    };
    (c, dir)
}

/// The collector's cluster, plus what the planner reads: Nodes, policies, every workload kind.
fn planned_cluster() -> FakeKube {
    let kube = cluster();
    for (name, ip, cidr) in [
        ("node-a", "172.18.0.2", "10.244.0.0/24"),
        ("node-b", "172.18.0.3", "10.244.1.0/24"),
    ] {
        kube.object(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}));
    }
    kube.object(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "gateway-ingress"},
        "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 8443}]}]}}));
    kube.object(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "gateway"}, "spec": {"ingressClassName": "nginx",
        "rules": [{"host": "api.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "api-gateway", "port": {"number": 443}}}}]}}]}}),
    );
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i",
        "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "gateway-keys", "key": "api"}}}]}]}});
    kube.object(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ledger"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "serviceName": "ledger", "template": template}}));
    kube.object(
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}),
    );
    kube.object(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"template": template}}),
    );
    kube.object(
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "rotate"},
        "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}}),
    );
    kube
}

fn np_target(name: &str) -> Target {
    Target {
        api_version: "networking.k8s.io/v1".into(),
        resource: "networkpolicies".into(),
        namespace: NS.into(),
        name: name.into(),
    }
}

fn deployment_target() -> Target {
    Target {
        api_version: "apps/v1".into(),
        resource: "deployments".into(),
        namespace: NS.into(),
        name: "api-gateway".into(),
    }
}

#[test]
fn the_whole_view_is_read_with_every_kind_typed() {
    let kube = planned_cluster();
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    assert_eq!(view.kube_system_uid, uid("namespace/kube-system"));
    assert_eq!(view.server, c.server);
    assert_eq!(view.nodes.len(), 2);
    assert_eq!(
        view.nodes[0].addresses,
        ["172.18.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(view.nodes[1].pod_cidrs[0].to_string(), "10.244.1.0/24");
    assert!(!view.cilium.served && view.cilium.enable_default_deny.is_none());
    let ns = &view.namespaces[NS];
    assert_eq!(ns.pods.len(), 6);
    let names = |v: Vec<Option<String>>| v.into_iter().map(Option::unwrap).collect::<Vec<_>>();
    assert_eq!(
        names(
            ns.network_policies
                .iter()
                .map(|p| p.metadata.name.clone())
                .collect()
        ),
        ["allow-gateway", "gateway-ingress"]
    );
    // Every object read carries the resourceVersion the plan will pin.
    assert!(ns.network_policies[1].metadata.resource_version.is_some());
    assert_eq!(ns.services.len(), 1);
    assert_eq!(ns.ingresses.len(), 1);
    assert_eq!(ns.deployments.len(), 1);
    assert_eq!(ns.replica_sets.len(), 2);
    assert_eq!(
        (
            ns.stateful_sets.len(),
            ns.daemon_sets.len(),
            ns.jobs.len(),
            ns.cron_jobs.len()
        ),
        (1, 1, 1, 1)
    );
    assert!(ns.cilium_endpoints.is_none() && ns.cilium_policies.is_none());
    // The server's clock, from its Date header.
    let date = view.server_date;
    let now = time::OffsetDateTime::now_utc();
    assert!((date - now).whole_seconds().abs() <= 5, "{date} vs {now}");
    // Nothing but reads, and nothing on Secrets.
    assert!(kube
        .calls()
        .iter()
        .all(|c| c.method == "GET" && !c.target.contains("secrets")));
}

#[test]
fn lists_longer_than_a_page_are_read_whole() {
    let kube = planned_cluster();
    for i in 0..1203 {
        kube.object(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": format!("np-{i:04}")}, "spec": {"podSelector": {}}}),
        );
    }
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    assert_eq!(view.namespaces[NS].network_policies.len(), 1205);
    let pages: Vec<String> = kube
        .requests()
        .into_iter()
        .filter(|r| r.contains("/networkpolicies?"))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].contains("continue=offset-1000"), "{pages:?}");
}

#[test]
fn one_refused_or_failing_list_fails_the_read_naming_it() {
    let kube = planned_cluster();
    kube.faults(|f| f.forbidden = vec![format!("/apis/apps/v1/namespaces/{NS}/statefulsets")]);
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let e = rt
        .block_on(read_view(&c, &[NS.to_owned()], false))
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    let text = e.to_string();
    assert!(
        text.contains("StatefulSets of namespace waqiti") && text.contains("forbidden"),
        "{text}"
    );

    let kube = planned_cluster();
    kube.faults(|f| f.broken = vec!["/api/v1/nodes".into()]);
    let (c, _dir) = connect(&rt, &kube);
    let e = rt
        .block_on(read_view(&c, &[NS.to_owned()], false))
        .unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert!(
        e.to_string().contains("Nodes") && e.to_string().contains("etcdserver"),
        "{e}"
    );
    // Retried as kube.rs retries reads, then given up.
    assert_eq!(
        kube.requests()
            .iter()
            .filter(|r| r.starts_with("/api/v1/nodes"))
            .count(),
        2
    );

    // A Node the planner cannot understand fails the read too: its pod CIDR could not be kept
    // out of a block.
    let kube = planned_cluster();
    kube.object(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-z"},
        "spec": {"podCIDRs": ["10.244.9.0/33"]}}),
    );
    let (c, _dir) = connect(&rt, &kube);
    let e = rt
        .block_on(read_view(&c, &[NS.to_owned()], false))
        .unwrap_err();
    assert!(
        e.to_string().contains("node-z") && e.to_string().contains("10.244.9.0/33"),
        "{e}"
    );
}

#[test]
fn discovery_with_and_without_cilium() {
    let rt = runtime();
    // Without cilium.io/v2 the discovery document is a 404 and nothing else of Cilium is asked.
    let kube = planned_cluster();
    let (c, _dir) = connect(&rt, &kube);
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], true)).unwrap();
    assert_eq!(view.cilium, Default::default());
    let cilium: Vec<String> = kube
        .requests()
        .into_iter()
        .filter(|r| r.contains("cilium"))
        .collect();
    assert_eq!(cilium, ["/apis/cilium.io/v2"]);

    for default_deny in [true, false] {
        let kube = planned_cluster();
        kube.cilium(default_deny);
        kube.object(
            json!({"apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint",
            "metadata": {"name": "api-gateway-7d4b9c-abcde"}}),
        );
        kube.object(
            json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "l7"}, "spec": {"endpointSelector": {}}}),
        );
        let (c, _dir) = connect(&rt, &kube);
        let view = rt.block_on(read_view(&c, &[NS.to_owned()], true)).unwrap();
        assert!(view.cilium.served && view.cilium.endpoints_served);
        assert_eq!(view.cilium.enable_default_deny, Some(default_deny));
        let ns = &view.namespaces[NS];
        assert_eq!(
            ns.cilium_endpoints.as_deref(),
            Some(&["api-gateway-7d4b9c-abcde".to_owned()][..])
        );
        assert_eq!(
            ns.cilium_policies.as_ref().unwrap()[0]["metadata"]["name"],
            "l7"
        );
        // Not wanted: endpoints still read (they say Cilium enforces), the CRD and policies not.
        let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
        assert!(view.namespaces[NS].cilium_endpoints.is_some());
        assert!(view.namespaces[NS].cilium_policies.is_none());
        assert_eq!(view.cilium.enable_default_deny, None);
    }

    // Where the CRD lacks enableDefaultDeny the API server prunes it, with a warning: the
    // reason the planner refuses the Cilium method there.
    let kube = planned_cluster();
    kube.cilium(false);
    let (c, _dir) = connect(&rt, &kube);
    let cnp = DryRunRequest::Create {
        target: Target {
            api_version: "cilium.io/v2".into(),
            resource: "ciliumnetworkpolicies".into(),
            namespace: NS.into(),
            name: "custody-block-api-gateway".into(),
        },
        object: json!({"metadata": {"name": "custody-block-api-gateway"},
            "spec": {"endpointSelector": {}, "enableDefaultDeny": {"ingress": false, "egress": false},
                     "ingressDeny": [{"fromCIDRSet": [{"cidr": "203.0.113.7/32"}]}]}}),
    };
    let DryRun::Accepted { warnings } = rt.block_on(dry_run(&c, &cnp)) else {
        panic!()
    };
    assert_eq!(warnings, [r#"unknown field "spec.enableDefaultDeny""#]);

    // The CRD may not be read: not known, and the read goes on.
    let kube = planned_cluster();
    kube.cilium(true);
    kube.faults(|f| f.forbidden = vec!["/apis/apiextensions.k8s.io/".into()]);
    let (c, _dir) = connect(&rt, &kube);
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], true)).unwrap();
    assert!(view.cilium.served);
    assert_eq!(view.cilium.enable_default_deny, None);
}

#[test]
fn the_api_servers_date_is_recorded() {
    let kube = planned_cluster();
    kube.faults(|f| f.clock_skew = 3600);
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let ahead = view.server_date - time::OffsetDateTime::now_utc();
    assert!((3595..=3605).contains(&ahead.whole_seconds()), "{ahead}");
}

#[test]
fn an_answer_without_a_usable_date_fails_the_read() {
    let rt = runtime();
    // No Date header at all (a proxy in front of the API server that drops it).
    let kube = planned_cluster();
    kube.faults(|f| f.no_date = true);
    let (c, _dir) = connect(&rt, &kube);
    let e = rt
        .block_on(read_view(&c, &[NS.to_owned()], false))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the API server sent no usable Date with the kube-system Namespace (/api/v1/namespaces/kube-system): the answer has no Date header; custody's clock cannot be checked against the API server's, so no plan is built on it"
    );
    assert_eq!(e.status(), None);
    // Nothing else is read once the clock is unknown.
    assert_eq!(kube.requests(), ["/api/v1/namespaces/kube-system"]);

    // A Date that is not an HTTP date: quoted (escaped) in the error.
    let kube = planned_cluster();
    kube.faults(|f| f.date_text = Some("2026-11-26T14:54:48Z".into()));
    let (c, _dir) = connect(&rt, &kube);
    let e = rt
        .block_on(read_view(&c, &[NS.to_owned()], false))
        .unwrap_err();
    assert!(
        e.to_string().contains(
            r#"its Date header "2026-11-26T14:54:48Z" is not an HTTP date (IMF-fixdate)"#
        ),
        "{e}"
    );
}

fn run(rt: &tokio::runtime::Runtime, c: &Cluster, change: DryRunRequest) -> DryRun {
    rt.block_on(dry_run(c, &change))
}

#[test]
fn dry_runs_are_judged_and_nothing_is_stored() {
    let kube = planned_cluster();
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let read = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    let with_except = |except: &str| {
        let mut v = read.clone();
        v["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"] = json!([except]);
        v
    };
    let replace = |object: Value| DryRunRequest::Replace {
        target: np_target("gateway-ingress"),
        object,
    };
    assert_eq!(
        run(&rt, &c, replace(with_except("203.0.113.7/32"))),
        DryRun::Accepted { warnings: vec![] }
    );
    assert_eq!(
        kube.stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
            .unwrap(),
        read
    );
    let call = kube.calls().pop().unwrap();
    assert_eq!(call.method, "PUT");
    assert!(
        call.target
            .ends_with("/networkpolicies/gateway-ingress?dryRun=All&fieldManager=custody"),
        "{}",
        call.target
    );

    // A non-canonical CIDR is accepted with the API server's warning.
    let DryRun::Accepted { warnings } = run(&rt, &c, replace(with_except("203.0.113.7/24"))) else {
        panic!()
    };
    assert!(
        warnings[0].contains("non-standard CIDR value") && warnings[0].contains("203.0.113.0/24"),
        "{warnings:?}"
    );

    // An except outside its cidr: 422 Invalid, naming the field.
    let mut outside = read.clone();
    outside["spec"]["ingress"][0]["from"][0]["ipBlock"] =
        json!({"cidr": "10.0.0.0/8", "except": ["192.168.0.0/24"]});
    let DryRun::Refused {
        code,
        reason,
        message,
    } = run(&rt, &c, replace(outside))
    else {
        panic!()
    };
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.contains("spec.ingress[0].from[0].ipBlock.except[0]")
            && message.contains("must be a strict subset of `cidr`"),
        "{message}"
    );

    // A stale resourceVersion: 409 Conflict.
    let mut stale = with_except("203.0.113.7/32");
    stale["metadata"]["resourceVersion"] = json!("1");
    let DryRun::Refused { code, reason, .. } = run(&rt, &c, replace(stale)) else {
        panic!()
    };
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    // Creates: accepted and not stored; a name that is not a DNS subdomain refused.
    let block = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "custody-block-api-gateway", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app": "api-gateway"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["203.0.113.7/32"]}},
                                       {"ipBlock": {"cidr": "::/0"}}, {"namespaceSelector": {}, "podSelector": {}}]}]}});
    let create = |object: Value| DryRunRequest::Create {
        target: np_target("custody-block-api-gateway"),
        object,
    };
    assert!(matches!(
        run(&rt, &c, create(block.clone())),
        DryRun::Accepted { .. }
    ));
    assert!(kube
        .stored(
            "networking.k8s.io/v1",
            "networkpolicies",
            "custody-block-api-gateway"
        )
        .is_none());
    let mut bad_name = block.clone();
    bad_name["metadata"]["name"] = json!("Custody_Block");
    assert!(matches!(
        run(&rt, &c, create(bad_name)),
        DryRun::Refused { code: 422, .. }
    ));

    // Deletes: accepted, guarded by resourceVersion, not done.
    let delete = |rv: &str| DryRunRequest::Delete {
        target: np_target("gateway-ingress"),
        resource_version: Some(rv.into()),
    };
    let rv = read["metadata"]["resourceVersion"].as_str().unwrap();
    assert!(matches!(run(&rt, &c, delete(rv)), DryRun::Accepted { .. }));
    assert!(matches!(
        run(&rt, &c, delete("1")),
        DryRun::Refused { code: 409, .. }
    ));
    assert!(kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .is_some());
}

#[test]
fn a_json_patch_whose_test_fails_is_refused() {
    let kube = planned_cluster();
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let path = "/spec/template/spec/containers/0/name";
    let patch = |value: &str| DryRunRequest::Patch {
        target: deployment_target(),
        patch: json!([{"op": "test", "path": path, "value": value},
                      {"op": "replace", "path": path, "value": "gateway-2"}]),
    };
    assert!(matches!(
        run(&rt, &c, patch("gateway")),
        DryRun::Accepted { .. }
    ));
    let call = kube.calls().pop().unwrap();
    assert_eq!(
        (call.method.as_str(), call.content_type.as_str()),
        ("PATCH", "application/json-patch+json")
    );
    let DryRun::Refused {
        code,
        reason,
        message,
    } = run(&rt, &c, patch("sidecar"))
    else {
        panic!()
    };
    // The API server does not say which value failed (`NewGenericServerResponse`, no causes).
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        "the server rejected our request due to an error in our request"
    );
    let stored = kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    assert_eq!(stored.pointer(path).unwrap(), "gateway");
}

#[test]
fn secrets_are_never_sent_and_unreachable_servers_are_not_run() {
    let kube = planned_cluster();
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let secret = DryRunRequest::Create {
        target: Target {
            api_version: "v1".into(),
            resource: "secrets".into(),
            namespace: NS.into(),
            name: "k".into(),
        },
        object: json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}}),
    };
    assert!(matches!(run(&rt, &c, secret), DryRun::NotSupported { .. }));
    assert!(kube.calls().is_empty());

    // Nothing listens: no judgement.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    let text = std::fs::read_to_string(kube.kubeconfig(dir.path())).unwrap();
    std::fs::write(
        &config,
        text.replace(&kube.port.to_string(), &port.to_string()),
    )
    .unwrap();
    let mut gone = rt
        .block_on(custody::kube::connect(Some(&config), None))
        .unwrap();
    gone.retry = Retry::ONCE;
    let change = DryRunRequest::Patch {
        target: deployment_target(),
        patch: json!([]),
    };
    assert!(matches!(run(&rt, &gone, change), DryRun::NotRun { .. }));
}

#[test]
fn real_writes_are_stored_and_guarded_like_the_api_server() {
    let kube = planned_cluster();
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    let put = http::Method::PUT;
    let path =
        format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/gateway-ingress");
    let mut np = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    let before: u64 = np["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    np["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"] = json!(["198.51.100.9/32"]);
    let body = serde_json::to_vec(&np).unwrap();
    let answer = rt
        .block_on(c.send(&put, &path, Some("application/json"), &body))
        .unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.date.is_some());
    let stored = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    let after: u64 = stored["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > before);
    assert_eq!(
        stored["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"][0],
        "198.51.100.9/32"
    );
    // The same body again is stale now.
    let answer = rt
        .block_on(c.send(&put, &path, Some("application/json"), &body))
        .unwrap();
    assert_eq!(answer.status, 409);
    // A removed object is missing; a method the resource does not have.
    kube.remove("networking.k8s.io/v1", "networkpolicies", "allow-gateway");
    let missing = path.replace("gateway-ingress", "allow-gateway");
    let answer = rt
        .block_on(c.send(&http::Method::GET, &missing, None, &[]))
        .unwrap();
    assert_eq!(answer.status, 404);
    let answer = rt
        .block_on(c.send(&http::Method::POST, &path, Some("application/json"), b"{}"))
        .unwrap();
    assert_eq!(answer.status, 405);
    let status: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("MethodNotAllowed"))
    );
    // Discovery of the built-in groups.
    let answer = rt
        .block_on(c.send(&http::Method::GET, "/apis", None, &[]))
        .unwrap();
    let groups: Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(!groups.to_string().contains("cilium.io"));
}

/// The planner's Role and ClusterRole allow every request `read_view` and the dry-runs made,
/// and grant nothing that is not used.
#[test]
fn the_planner_role_allows_exactly_what_the_planner_does() {
    let kube = planned_cluster();
    kube.cilium(true);
    kube.calico();
    kube.admin_network_policies();
    kube.antrea();
    kube.serve("policy.networking.k8s.io/v1alpha2");
    let rt = runtime();
    let (c, _dir) = connect(&rt, &kube);
    rt.block_on(read_view(&c, &[NS.to_owned()], true)).unwrap();
    // Calico whose CRDs carry its own API group: read there instead.
    kube.unserve("crd.projectcalico.org/v1");
    kube.serve("projectcalico.org/v3");
    rt.block_on(read_view(&c, &[NS.to_owned()], true)).unwrap();
    let np = kube
        .stored("networking.k8s.io/v1", "networkpolicies", "gateway-ingress")
        .unwrap();
    let rv = np["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let cnp = |name: &str| Target {
        api_version: "cilium.io/v2".into(),
        resource: "ciliumnetworkpolicies".into(),
        namespace: NS.into(),
        name: name.into(),
    };
    kube.object(json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "custody-block-old"}, "spec": {}}));
    let old = kube
        .stored("cilium.io/v2", "ciliumnetworkpolicies", "custody-block-old")
        .unwrap();
    let changes = [
        DryRunRequest::Create {
            target: np_target("custody-block-x"),
            object: json!({"metadata": {"name": "custody-block-x"}, "spec": {"podSelector": {}}}),
        },
        DryRunRequest::Replace {
            target: np_target("gateway-ingress"),
            object: np,
        },
        DryRunRequest::Delete {
            target: np_target("gateway-ingress"),
            resource_version: Some(rv),
        },
        DryRunRequest::Patch {
            target: deployment_target(),
            patch: json!([]),
        },
        DryRunRequest::Create {
            target: cnp("custody-block-y"),
            object: json!({"metadata": {"name": "custody-block-y"}, "spec": {"endpointSelector": {},
            "enableDefaultDeny": {"ingress": false, "egress": false}, "ingressDeny": [{"fromCIDRSet": [{"cidr": "203.0.113.7/32"}]}]}}),
        },
        DryRunRequest::Replace {
            target: cnp("custody-block-old"),
            object: old.clone(),
        },
        DryRunRequest::Delete {
            target: cnp("custody-block-old"),
            resource_version: old["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_owned),
        },
    ];
    for change in &changes {
        let outcome = run(&rt, &c, change.clone());
        assert!(
            matches!(outcome, DryRun::Accepted { .. }),
            "{change:?}: {outcome:?}"
        );
    }
    let calls = kube.calls();
    assert!(calls
        .iter()
        .all(|c| !String::from_utf8_lossy(&c.body).contains("Secret")));
    rbac_allows_exactly(&calls);
}

/// (cluster-scoped, group, resource, verb, name) of a request; `None` for discovery. A
/// subresource is `resource/subresource` (`pods/proxy`, whatever path follows it).
fn grant_needed(
    method: &str,
    target: &str,
) -> Option<(bool, String, String, String, Option<String>)> {
    let path = target.split('?').next().unwrap();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _, rest @ ..] => ("", rest),
        ["apis", g, _, rest @ ..] => (*g, rest),
        _ => return None,
    };
    let (cluster_scoped, rest) = match rest {
        ["namespaces", _, rest @ ..] if !rest.is_empty() => (false, rest),
        other => (true, other),
    };
    let (resource, name) = match rest {
        [] => return None,
        [res] => (*res, None),
        [res, name] => (*res, Some(name.to_string())),
        [res, name, sub, ..] => {
            // `pods/NAME:PORT/proxy/…`: the object is the pod, the port is not part of it.
            let name = name.split(':').next().unwrap_or(name);
            return Some((
                cluster_scoped,
                group.to_owned(),
                format!("{res}/{sub}"),
                verb_of(method, true).to_owned(),
                Some(name.to_owned()),
            ));
        }
    };
    Some((
        cluster_scoped,
        group.to_owned(),
        resource.to_owned(),
        verb_of(method, name.is_some()).to_owned(),
        name,
    ))
}

/// The RBAC verb of a request with `method`, on one object (`named`) or a collection.
fn verb_of(method: &str, named: bool) -> &'static str {
    match (method, named) {
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => panic!("unexpected method {method}"),
    }
}

/// The Role and ClusterRole rules of each file: (file, cluster-scoped, rule).
fn rules_of_files(files: &[&str]) -> Vec<(String, bool, Value)> {
    let mut out = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for d in &docs {
            let cluster_scoped = match d["kind"].as_str() {
                Some("Role") => false,
                Some("ClusterRole") => true,
                _ => continue,
            };
            for r in d["rules"].as_array().unwrap() {
                out.push((file.to_string(), cluster_scoped, r.clone()));
            }
        }
    }
    out
}

fn strings(r: &Value, f: &str) -> Vec<String> {
    r[f].as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Every request in `calls` is allowed by a rule of `files`, and every grant of `exact` (one
/// of `files`) is used by one.
pub(crate) fn roles_allow(files: &[&str], exact: &str, calls: &[crate::fake_kube::Call]) {
    let rules = rules_of_files(files);
    let mut used = std::collections::BTreeSet::new();
    for call in calls {
        let Some((cluster_scoped, group, resource, verb, name)) =
            grant_needed(&call.method, &call.target)
        else {
            continue;
        };
        let at = rules.iter().position(|(_, cs, r)| {
            let names = strings(r, "resourceNames");
            *cs == cluster_scoped
                && strings(r, "apiGroups").contains(&group)
                && strings(r, "resources").contains(&resource)
                && strings(r, "verbs").contains(&verb)
                && (names.is_empty() || name.as_ref().is_some_and(|n| names.contains(n)))
        });
        let at = at.unwrap_or_else(|| {
            panic!(
                "{files:?} do not allow {verb} {group}/{resource} {name:?} ({} {})",
                call.method, call.target
            )
        });
        used.insert((at, group, resource, verb));
    }
    for (at, (file, _, r)) in rules.iter().enumerate() {
        if file != exact {
            continue;
        }
        for group in strings(r, "apiGroups") {
            for resource in strings(r, "resources") {
                for verb in strings(r, "verbs") {
                    let grant = (at, group.clone(), resource.clone(), verb);
                    assert!(
                        used.contains(&grant),
                        "{exact} grants {grant:?}, which is never used"
                    );
                }
            }
        }
    }
}

fn rbac_allows_exactly(calls: &[crate::fake_kube::Call]) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/role-planner.yaml"),
    )
    .unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let rules_of = |kind: &str| -> Vec<Value> {
        let doc = docs
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(doc["metadata"]["name"], "custody-planner");
        doc["rules"].as_array().unwrap().clone()
    };
    let (role, cluster_role) = (rules_of("Role"), rules_of("ClusterRole"));
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        let b = docs
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(b["subjects"][0]["name"], "custody-planner", "{kind}");
        assert_eq!(
            b["roleRef"]["kind"],
            if kind == "RoleBinding" {
                "Role"
            } else {
                "ClusterRole"
            }
        );
    }
    assert!(docs
        .iter()
        .any(|d| d["kind"] == "ServiceAccount" && d["metadata"]["name"] == "custody-planner"));
    let all = serde_json::to_string(&(&role, &cluster_role)).unwrap();
    assert!(!all.contains("secrets") && !all.contains('*'), "{all}");
    roles_allow(
        &["deploy/role-planner.yaml"],
        "deploy/role-planner.yaml",
        calls,
    );
}
