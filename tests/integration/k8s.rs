//! Collection from Kubernetes, end to end, against the fake API server in `fake_kube`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::fake_kube::{uid, FakeContainer, FakeKube, FakePod, NOW};
use crate::util::{
    assert_code, assert_success, line, sh, stderr, stdout, tool, Sandbox, INCOMPLETE,
};

pub(crate) const NS: &str = "waqiti";
const LONG_POD: &str = "api-gateway-with-a-very-long-deployment-name-7d4b9c88f-x2k4p";
const LONG_CONTAINER: &str = "gateway-sidecar-with-an-unusually-long-name";

/// The bag path `collection.json` gives for a pod's container log.
fn bag_path(collection: &serde_json::Value, pod: &str, container: &str, previous: bool) -> String {
    collection["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["pod"] == pod && s["container"] == container && s["previous"] == previous)
        .unwrap_or_else(|| panic!("no source for {pod}/{container} previous={previous}"))
        ["bag_path"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `n` access-log lines, a second apart, ending at NOW; every 7th is a 401 from an attacker.
fn access_lines(n: usize, salt: usize) -> Vec<(i64, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let t = NOW - (n - i) as i64;
            let (ip, status) = if i % 7 == 0 {
                ("203.0.113.66".to_owned(), 401)
            } else {
                (format!("10.1.{}.{}", salt, i % 50), 200)
            };
            (
                t,
                line(&ip, status, "/api/v1/login")
                    .trim_end()
                    .as_bytes()
                    .to_vec(),
            )
        })
        .collect()
}

fn container(
    name: &str,
    lines: Vec<(i64, Vec<u8>)>,
    previous: Option<Vec<(i64, Vec<u8>)>>,
) -> FakeContainer {
    FakeContainer {
        name: name.to_owned(),
        lines,
        previous,
    }
}

/// The waqiti api-gateway mid-rollout: two pods of the new ReplicaSet (one with a sidecar, one
/// restarted, with non-UTF-8 bytes in its log), one of the old, and pods that must not be taken.
pub(crate) fn cluster() -> FakeKube {
    let kube = FakeKube::start(NS);
    kube.deployment(
        "api-gateway",
        &[("app", "api-gateway")],
        &["edge", "public"],
    );
    kube.pod(FakePod {
        name: "api-gateway-7d4b9c-abcde".into(),
        labels: labels(&[
            ("app", "api-gateway"),
            ("tier", "edge"),
            ("pod-template-hash", "7d4b9c"),
        ]),
        containers: vec![
            container("gateway", access_lines(300, 1), None),
            container(
                "istio-proxy",
                vec![(NOW - 5, b"proxy started".to_vec())],
                None,
            ),
        ],
        init_containers: vec![container(
            "migrate",
            vec![(NOW - 3600, b"schema up to date".to_vec())],
            None,
        )],
        node: "node-a".into(),
    });
    let mut junk = access_lines(100, 2);
    junk.push((
        NOW - 1,
        b"\x16\x03\x01\x02\x00 binary \xff\xfe junk".to_vec(),
    ));
    kube.pod(FakePod {
        name: "api-gateway-7d4b9c-fghij".into(),
        labels: labels(&[
            ("app", "api-gateway"),
            ("tier", "public"),
            ("pod-template-hash", "7d4b9c"),
        ]),
        containers: vec![container("gateway", junk, Some(access_lines(200, 3)))],
        init_containers: Vec::new(),
        node: "node-b".into(),
    });
    kube.pod(FakePod {
        name: "api-gateway-5f6a1b-klmno".into(),
        labels: labels(&[
            ("app", "api-gateway"),
            ("tier", "edge"),
            ("pod-template-hash", "5f6a1b"),
        ]),
        containers: vec![container("gateway", access_lines(50, 4), None)],
        init_containers: Vec::new(),
        node: "node-a".into(),
    });
    // A pod name as long as Kubernetes allows, with a long container name that restarted.
    kube.pod(FakePod {
        name: LONG_POD.into(),
        labels: labels(&[("app", "api-gateway"), ("tier", "edge")]),
        containers: vec![container(
            LONG_CONTAINER,
            access_lines(20, 7),
            Some(access_lines(10, 8)),
        )],
        init_containers: Vec::new(),
        node: "node-c".into(),
    });
    // Not the Deployment's: another app, and the same app in a tier outside the selector.
    kube.pod(FakePod {
        name: "payments-6c7d8e-zzzzz".into(),
        labels: labels(&[("app", "payments"), ("tier", "edge")]),
        containers: vec![container("payments", access_lines(10, 5), None)],
        init_containers: Vec::new(),
        node: "node-a".into(),
    });
    kube.pod(FakePod {
        name: "api-gateway-canary-qqqqq".into(),
        labels: labels(&[("app", "api-gateway"), ("tier", "canary")]),
        containers: vec![container("gateway", access_lines(10, 6), None)],
        init_containers: Vec::new(),
        node: "node-c".into(),
    });
    kube
}

fn collect_k8s(sandbox: &Sandbox, kube: &FakeKube, extra: &[&str]) -> Output {
    let kubeconfig = kube.kubeconfig(sandbox.dir.path());
    let store = sandbox.store();
    let mut args = vec![
        "--store",
        store.to_str().unwrap(),
        "--json",
        "collect",
        "--namespace",
        NS,
    ];
    args.extend_from_slice(extra);
    sandbox
        .custody(&args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(out), stderr(out)))
}

/// Unpacks the sealed archive with the standard tools and returns the bag's directory.
fn unpack(result: &serde_json::Value, into: &Path) -> std::path::PathBuf {
    let uri = result["archive"]["uri"].as_str().unwrap();
    let archive = uri.strip_prefix("file://").unwrap();
    let zstd = tool("zstd");
    sh(
        &format!(
            "{} -dc '{archive}' | tar -x -C '{}'",
            zstd.display(),
            into.display()
        ),
        into,
    );
    into.join(result["bundle_id"].as_str().unwrap())
}

#[test]
fn every_container_log_of_the_deployment_is_sealed_byte_for_byte() {
    let kube = cluster();
    let sandbox = Sandbox::new();
    let out = collect_k8s(&sandbox, &kube, &["--deployment", "api-gateway"]);
    assert_success(&out);
    let result = json(&out);
    let bag = unpack(&result, sandbox.dir.path());

    // Every log request named its container and asked for timestamps and a byte cap.
    let requests = kube.requests();
    let logs: Vec<&String> = requests.iter().filter(|r| r.contains("/log?")).collect();
    assert_eq!(logs.len(), 8, "{requests:#?}");
    for r in &logs {
        assert!(
            r.contains("container=") && r.contains("timestamps=true") && r.contains("limitBytes="),
            "{r}"
        );
    }
    assert!(
        requests.iter().all(|r| !r.contains("secrets")),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.contains("payments") && !r.contains("canary")),
        "{requests:#?}"
    );

    // Each served log is in the bag exactly as served.
    let expect = [
        ("api-gateway-7d4b9c-abcde", "gateway", false),
        ("api-gateway-7d4b9c-abcde", "istio-proxy", false),
        ("api-gateway-7d4b9c-fghij", "gateway", false),
        ("api-gateway-7d4b9c-fghij", "gateway", true),
        ("api-gateway-5f6a1b-klmno", "gateway", false),
        ("api-gateway-7d4b9c-abcde", "migrate", false),
        (LONG_POD, LONG_CONTAINER, false),
        (LONG_POD, LONG_CONTAINER, true),
    ];
    let collection: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bag.join("data/collection.json")).unwrap()).unwrap();
    for (pod, c, previous) in expect {
        let prefix =
            format!("/api/v1/namespaces/{NS}/pods/{pod}/log?container={c}&timestamps=true");
        let served: Vec<_> = kube
            .served(&prefix)
            .into_iter()
            .filter(|(k, _)| k.contains("previous=true") == previous)
            .collect();
        assert_eq!(served.len(), 1, "{prefix}");
        let sealed = std::fs::read(bag.join(bag_path(&collection, pod, c, previous))).unwrap();
        assert_eq!(sealed, served[0].1, "{pod}/{c} previous={previous}");
        assert!(!sealed.is_empty());
    }
    // Snapshots, as served.
    for (file, path) in [
        (
            "deployment.json",
            format!("/apis/apps/v1/namespaces/{NS}/deployments/api-gateway"),
        ),
        ("services.json", format!("/api/v1/namespaces/{NS}/services")),
        (
            "networkpolicies.json",
            format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"),
        ),
        ("events.json", format!("/api/v1/namespaces/{NS}/events")),
    ] {
        let served = kube.served(&path);
        assert_eq!(served.len(), 1, "{path}");
        assert_eq!(
            std::fs::read(bag.join("data/k8s").join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}")),
            served[0].1,
            "{file}"
        );
    }
    let pods = std::fs::read(bag.join("data/k8s/pods.json")).unwrap();
    let pods: serde_json::Value = serde_json::from_slice(&pods).unwrap();
    assert_eq!(pods["items"].as_array().unwrap().len(), 4);

    // collection.json: per container, the pod's uid, node, image, restart count, bytes, digest.
    assert_eq!(
        collection["request"]["server"]
            .as_str()
            .unwrap()
            .trim_end_matches('/'),
        kube.url()
    );
    let sources = collection["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 8);
    for s in sources {
        let pod = s["pod"].as_str().unwrap();
        assert_eq!(s["pod_uid"], uid(pod).as_str());
        assert!(
            s["node"].is_string() && s["image_id"].is_string() && s["container_id"].is_string(),
            "{s}"
        );
        assert!(s["started_at"].is_string(), "{s}");
        assert_eq!(s["truncated"], false);
        assert_eq!(s["complete"], true);
        assert_eq!(s["sha256"], s["sha256_received"]);
    }
    assert!(collection["failures"].as_array().unwrap().is_empty());
    // The analysis saw every pod's log: the attacker's 401s from all of them.
    let attacker = result["summary"]["top_ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ip"] == "203.0.113.66")
        .unwrap()
        .clone();
    let expected_401 = [300usize, 100, 200, 50, 20, 10]
        .iter()
        .map(|n| n.div_ceil(7))
        .sum::<usize>();
    assert_eq!(attacker["auth_failures"], expected_401 as u64);
    // … and names the pods that saw it.
    let suspicious = result["summary"]["suspicious"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ip"] == "203.0.113.66")
        .expect("the attacker is suspicious")
        .clone();
    let pods: Vec<&str> = suspicious["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        pods,
        [
            "api-gateway-5f6a1b-klmno",
            "api-gateway-7d4b9c-abcde",
            "api-gateway-7d4b9c-fghij",
            LONG_POD
        ]
    );
    assert_eq!(suspicious["failed_in"].as_array().unwrap().len(), 6);
    // The previous log is described by the previous container's status.
    let previous = sources
        .iter()
        .find(|s| s["pod"] == "api-gateway-7d4b9c-fghij" && s["previous"] == true)
        .unwrap();
    assert_eq!(previous["reason"], "OOMKilled");
    assert_eq!(previous["started_at"], "2026-11-26T09:00:00Z");

    assert_success(&sandbox.run(&["verify", sandbox.store().to_str().unwrap()]));
    rbac_allows_exactly(&requests);
}

/// The shipped Role (`deploy/role.yaml`) allows every request custody made, and nothing on
/// Secrets or by wildcard.
fn rbac_allows_exactly(requests: &[String]) {
    let role: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/role.yaml"))
            .unwrap(),
    )
    .unwrap();
    let rules = role["rules"].as_array().unwrap();
    let text = serde_json::to_string(rules).unwrap();
    assert!(!text.contains("secrets") && !text.contains('*'), "{text}");
    let allows = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            let has = |field: &str, v: &str| r[field].as_array().unwrap().iter().any(|x| x == v);
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    let mut used: std::collections::BTreeSet<(String, String, String)> =
        std::collections::BTreeSet::new();
    for request in requests {
        let path = request.split('?').next().unwrap();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // /api/v1/namespaces/NS/RES[/NAME[/SUB]] or /apis/GROUP/VERSION/namespaces/NS/RES[/NAME]
        let (group, rest) = match parts[0] {
            "api" => ("", &parts[4..]),
            _ => (parts[1], &parts[5..]),
        };
        let (resource, verb) = match rest {
            [res] => (res.to_string(), "list"),
            [res, _name] => (res.to_string(), "get"),
            [res, _name, sub] => (format!("{res}/{sub}"), "get"),
            _ => panic!("unexpected request {request}"),
        };
        assert!(
            allows(group, &resource, verb),
            "deploy/role.yaml does not allow {verb} {group}/{resource} ({request})"
        );
        used.insert((group.to_owned(), resource, verb.to_owned()));
    }
    // … and grants nothing that is not used.
    for r in rules {
        for group in r["apiGroups"].as_array().unwrap() {
            for resource in r["resources"].as_array().unwrap() {
                for verb in r["verbs"].as_array().unwrap() {
                    let grant = (
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                        verb.as_str().unwrap().to_owned(),
                    );
                    assert!(
                        used.contains(&grant),
                        "deploy/role.yaml grants {grant:?}, which custody never uses"
                    );
                }
            }
        }
    }
}

#[test]
fn faults_are_recorded_and_the_rest_is_sealed() {
    let kube = cluster();
    kube.faults(|f| {
        f.gone.push("api-gateway-5f6a1b-klmno".into());
        f.forbidden.push(format!(
            "/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"
        ));
        f.broken.push(format!("/api/v1/namespaces/{NS}/events"));
        f.drop_after
            .insert(("api-gateway-7d4b9c-abcde".into(), "gateway".into()), 2000);
    });
    let sandbox = Sandbox::new();
    let out = collect_k8s(
        &sandbox,
        &kube,
        &["--deployment", "api-gateway", "--since", "10m"],
    );
    // Sealed, but known to be incomplete: its own exit code.
    assert_code(&out, INCOMPLETE);
    let result = json(&out);
    assert_eq!(result["complete"], false);
    let bag = unpack(&result, sandbox.dir.path());
    let collection: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bag.join("data/collection.json")).unwrap()).unwrap();
    let failures = collection["failures"].as_array().unwrap();
    let text = serde_json::to_string(failures).unwrap();
    assert!(
        text.contains("networkpolicies") && text.contains("403"),
        "{text}"
    );
    assert!(text.contains("events") && text.contains("500"), "{text}");
    assert!(
        text.contains("api-gateway-5f6a1b-klmno") && text.contains("not found"),
        "{text}"
    );
    assert!(text.contains("stream broke"), "{text}");
    // The dropped stream's first bytes are kept and marked incomplete.
    let cut = std::fs::read(bag.join(bag_path(
        &collection,
        "api-gateway-7d4b9c-abcde",
        "gateway",
        false,
    )))
    .unwrap();
    assert_eq!(cut.len(), 2000);
    let sent = kube.served(&format!(
        "/api/v1/namespaces/{NS}/pods/api-gateway-7d4b9c-abcde/log?container=gateway&"
    ));
    assert_eq!(
        cut, sent[0].1,
        "the bytes before the break are kept as sent"
    );
    let sources = collection["sources"].as_array().unwrap();
    let dropped = sources
        .iter()
        .find(|s| s["pod"] == "api-gateway-7d4b9c-abcde" && s["container"] == "gateway")
        .unwrap();
    assert_eq!(dropped["complete"], false);
    // --since became sinceSeconds.
    assert!(kube
        .requests()
        .iter()
        .filter(|r| r.contains("/log?"))
        .all(|r| r.contains("sinceSeconds=600")));
    // Each failure is in the journal too, and the case verifies.
    let journal = sandbox
        .store()
        .join("cases")
        .join(result["case_id"].as_str().unwrap())
        .join("journal");
    let failed = crate::util::journal_entry_paths(&journal)
        .iter()
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("\"source_failed\"")
        })
        .count();
    assert_eq!(failed, 4);
    // Intact, and reported as incomplete: each failure named.
    let verified = sandbox.run(&["--json", "verify", sandbox.store().to_str().unwrap()]);
    assert_code(&verified, INCOMPLETE);
    let report = json(&verified);
    assert_eq!(report["ok"], true);
    assert_eq!(report["complete"], false);
    assert_eq!(
        report["incomplete"].as_array().unwrap().len(),
        4,
        "{report}"
    );
}

#[test]
fn nothing_collectable_is_an_error_and_writes_nothing() {
    let kube = cluster();
    kube.faults(|f| f.forbidden.push(format!("/api/v1/namespaces/{NS}/pods/")));
    let sandbox = Sandbox::new();
    let out = collect_k8s(&sandbox, &kube, &["--deployment", "api-gateway"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("nothing could be collected"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
    assert!(!sandbox.store().join("cases").exists());

    let out = collect_k8s(&sandbox, &kube, &["--deployment", "no-such-deployment"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    // A server that is not there.
    let dead = FakeKube::start(NS);
    let kubeconfig = dead.kubeconfig(sandbox.dir.path());
    std::fs::write(
        &kubeconfig,
        std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace(&dead.url(), "http://127.0.0.1:9"),
    )
    .unwrap();
    let out = sandbox
        .custody(&[
            "--store",
            sandbox.store().to_str().unwrap(),
            "collect",
            "--namespace",
            NS,
            "--deployment",
            "x",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Deployment"), "{}", stderr(&out));
}

#[test]
fn a_selector_and_one_container_and_the_log_parameters() {
    let kube = cluster();
    let sandbox = Sandbox::new();
    let out = collect_k8s(
        &sandbox,
        &kube,
        &[
            "--selector",
            "app=api-gateway,tier notin (canary)",
            "--container",
            "istio-proxy",
            "--since-time",
            "2026-11-26T14:50:00Z",
        ],
    );
    // One pod has no such container: recorded, and the collection is incomplete for it.
    assert_code(&out, INCOMPLETE);
    assert!(
        json(&out)["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no container istio-proxy"),
        "{}",
        stdout(&out)
    );
    let requests = kube.requests();
    let logs: Vec<&String> = requests.iter().filter(|r| r.contains("/log?")).collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].contains("container=istio-proxy"));
    assert!(
        logs[0].contains("sinceTime=2026-11-26T14%3A50%3A00Z"),
        "{}",
        logs[0]
    );
    assert!(!requests.iter().any(|r| r.contains("/deployments/")));
}

#[test]
fn the_fake_server_answers_like_the_api_server() {
    // What custody relies on, checked against the fake itself: the 400s it must never trigger.
    let kube = cluster();
    let get = |path: &str| -> (u16, String) {
        let out = std::process::Command::new(tool("python3"))
            .args([
                "-c",
                "import sys, urllib.request, urllib.error\ntry:\n r = urllib.request.urlopen(sys.argv[1]); print(r.status); print(r.read().decode('latin-1'))\nexcept urllib.error.HTTPError as e:\n print(e.code); print(e.read().decode())",
                &format!("{}{path}", kube.url()),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (code, body) = text.split_once('\n').unwrap_or(("0", ""));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    };
    let (code, body) = get(&format!(
        "/api/v1/namespaces/{NS}/pods/api-gateway-7d4b9c-abcde/log"
    ));
    assert_eq!(code, 400);
    assert!(
        body.contains("a container name must be specified"),
        "{body}"
    );
    let (code, body) = get(&format!(
        "/api/v1/namespaces/{NS}/pods/api-gateway-5f6a1b-klmno/log?previous=true"
    ));
    assert_eq!(code, 400);
    assert!(body.contains("previous terminated container"), "{body}");
    let (code, body) = get(&format!(
        "/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dapi-gateway%2C%21tier"
    ));
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (code, body) = get(&format!(
        "/api/v1/namespaces/{NS}/pods/api-gateway-5f6a1b-klmno/log?limitBytes=10&timestamps=true"
    ));
    assert_eq!(code, 200);
    assert_eq!(body.trim_end_matches('\n').len(), 10, "{body}");
    let (code, _) = get(&format!("/api/v1/namespaces/{NS}/secrets"));
    assert_eq!(code, 403);
}

#[test]
fn streams_are_capped_at_the_policy_limit_and_marked_truncated() {
    let kube = cluster();
    let sandbox = Sandbox::new();
    // Not ./policies, which would apply to every run in the sandbox.
    let policies = sandbox.path("capped-policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("collection.yaml"),
        "kubernetes:\n  limit_bytes: 1000\n  concurrency: 1\n",
    )
    .unwrap();
    let out = collect_k8s(
        &sandbox,
        &kube,
        &[
            "--selector",
            "app=api-gateway,tier=edge,pod-template-hash",
            "--container",
            "gateway",
            "--policies",
            policies.to_str().unwrap(),
        ],
    );
    // A log cut at the cap is incomplete evidence.
    assert_code(&out, INCOMPLETE);
    let result = json(&out);
    assert_eq!(result["failures"].as_array().unwrap().len(), 2, "{result}");
    assert_eq!(result["failures"][0]["kind"], "truncated");
    let bag = unpack(&result, sandbox.dir.path());
    let collection: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bag.join("data/collection.json")).unwrap()).unwrap();
    let sources = collection["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2, "{sources:#?}");
    for s in sources {
        assert_eq!(s["truncated"], true, "{s}");
        assert_eq!(s["bytes"], 1000);
        assert_eq!(s["limit_bytes"], 1000);
    }
    assert!(kube
        .requests()
        .iter()
        .filter(|r| r.contains("/log?"))
        .all(|r| r.ends_with("limitBytes=1001")));

    // A log of exactly the cap's size is whole, not truncated.
    let whole = collect_k8s(
        &sandbox,
        &kube,
        &[
            "--selector",
            "app=api-gateway,pod-template-hash=5f6a1b",
            "--container",
            "gateway",
        ],
    );
    assert_success(&whole);
    let exact = json(&whole)["sources"][0]["bytes"].as_u64().unwrap();
    std::fs::write(
        policies.join("collection.yaml"),
        format!("kubernetes:\n  limit_bytes: {exact}\n  concurrency: 1\n"),
    )
    .unwrap();
    let out = collect_k8s(
        &sandbox,
        &kube,
        &[
            "--selector",
            "app=api-gateway,pod-template-hash=5f6a1b",
            "--container",
            "gateway",
            "--policies",
            policies.to_str().unwrap(),
        ],
    );
    assert_success(&out);
    let bag = unpack(&json(&out), sandbox.dir.path());
    let collection: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bag.join("data/collection.json")).unwrap()).unwrap();
    assert_eq!(collection["sources"][0]["truncated"], false);
    assert_eq!(collection["sources"][0]["bytes"], exact);
}

#[test]
fn a_list_longer_than_a_page_is_read_page_by_page_and_sealed_whole() {
    // Lists are bounded per answer: a namespace with thousands of Events is read with `limit`
    // and `continue`, and the bag keeps one list with every item.
    let sandbox = Sandbox::new();
    let kube = cluster();
    kube.events(1_234);
    let out = collect_k8s(&sandbox, &kube, &["--deployment", "api-gateway"]);
    assert_success(&out);
    let result = json(&out);
    let requests = kube.requests();
    let pages: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with(&format!("/api/v1/namespaces/{NS}/events?")))
        .collect();
    assert_eq!(
        pages,
        [
            &format!("/api/v1/namespaces/{NS}/events?limit=500"),
            &format!("/api/v1/namespaces/{NS}/events?limit=500&continue=offset-500"),
            &format!("/api/v1/namespaces/{NS}/events?limit=500&continue=offset-1000"),
        ]
    );
    let bag = unpack(&result, sandbox.dir.path());
    let events: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bag.join("data/k8s/events.json")).unwrap()).unwrap();
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1_235);
    assert_eq!(items[1_234]["metadata"]["name"], "api-gateway.e01233");
    assert_eq!(events["kind"], "EventList");
    assert!(events["metadata"].get("continue").is_none());
    assert_success(&sandbox.run(&["verify", sandbox.store().to_str().unwrap()]));
}

#[test]
fn a_brief_api_outage_is_ridden_out() {
    // Regression: a 2-second outage of the API server (503 to everything) failed the collection.
    let sandbox = Sandbox::new();
    let kube = cluster();
    kube.faults(|f| {
        f.unavailable_until = Some(std::time::Instant::now() + std::time::Duration::from_secs(2))
    });
    let out = collect_k8s(&sandbox, &kube, &["--deployment", "api-gateway"]);
    assert_success(&out);
    let result = json(&out);
    assert_eq!(result["complete"], true, "{}", stdout(&out));
    // The first requests were refused and asked again.
    let requests = kube.requests();
    let deployment = format!("/apis/apps/v1/namespaces/{NS}/deployments/api-gateway");
    assert!(
        requests.iter().filter(|r| **r == deployment).count() >= 2,
        "{requests:?}"
    );
    assert!(stderr(&out).contains("trying again"), "{}", stderr(&out));
}
