//! The test suite's fake Kubernetes API server, filled with a Deployment of N pods whose gateway
//! logs add up to a given size, for `bench/k8s.sh`. Prints the kubeconfig path and serves until
//! killed.
//!
//! cargo run --release --example fake_apiserver -- --pods 20 --bytes 1073741824 --dir /tmp/k

// Test code, shared with the test suite: a panic here ends a benchmark, not a collection.
#![allow(clippy::unwrap_used)]

// The module also carries what only the tests use (fault switches, request records, the pods'
// admin endpoints).
#[allow(dead_code, unused_imports)]
#[path = "../tests/integration/fake_kube.rs"]
mod fake_kube;

use std::collections::BTreeMap;

use fake_kube::{FakeContainer, FakeKube, FakePod, NOW};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    let pods: usize = arg("--pods", "20").parse().expect("--pods N");
    let bytes: usize = arg("--bytes", "1073741824").parse().expect("--bytes N");
    let dir = std::path::PathBuf::from(arg("--dir", "."));
    let kube = FakeKube::start("bench");
    kube.deployment("gateway", &[("app", "gateway")], &["edge"]);
    let per_pod = bytes / pods;
    for p in 0..pods {
        let mut lines = Vec::new();
        let mut size = 0;
        let mut i = 0usize;
        while size < per_pod {
            let status = if i.is_multiple_of(41) { 401 } else { 200 };
            let line = format!(
                "10.{}.{}.{} - - [26/Nov/2026:14:54:48 +0000] \"GET /api/v1/accounts/{} HTTP/1.1\" {status} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\"",
                p % 200,
                (i / 250) % 250,
                i % 250,
                i % 9973,
                200 + i % 4000
            );
            size += line.len() + 32; // and the timestamp the server puts in front
            lines.push((NOW - 86_400 + (i / 100) as i64, line.into_bytes()));
            i += 1;
        }
        kube.pod(FakePod {
            name: format!("gateway-7d4b9c-{p:05}"),
            labels: BTreeMap::from([
                ("app".to_owned(), "gateway".to_owned()),
                ("tier".to_owned(), "edge".to_owned()),
            ]),
            containers: vec![FakeContainer {
                name: "gateway".into(),
                lines,
                previous: None,
            }],
            init_containers: Vec::new(),
            node: format!("node-{}", p % 3),
        });
    }
    let kubeconfig = kube.kubeconfig(&dir);
    println!("{}", kubeconfig.display());
    loop {
        std::thread::park();
    }
}
