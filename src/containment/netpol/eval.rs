//! The union evaluator: whether a set of NetworkPolicies admits ingress from a source to a pod
//! on a port, as the API reference defines it — a pod that no policy selects for Ingress admits
//! everything; a selected pod admits what any ingress rule of any selecting policy admits. The
//! planner uses it to check its own changes at sample points (`check_no_widening`) and the tests to judge them.
//!
//! Sources are either an address outside the pod network (matched by `ipBlock`s only) or a pod
//! with its namespace's labels (matched by pod and namespace selectors only): the API leaves
//! `ipBlock` matching of pod addresses to the implementation, and custody never blocks pod
//! addresses.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::selector::{isolates_for_ingress, selects, Labels};
use super::Offenders;
use crate::net::{normalise_ip, Cidr};

/// A port a container of the destination pod declares, for named ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`; the API's default is `TCP`.
    pub protocol: String,
}

/// A destination pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EvalPod {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub ports: Vec<NamedPort>,
    /// A pod of the target: offending sources must be refused to it.
    pub target: bool,
}

/// Where traffic comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// An address outside the pod network.
    Ip { addr: IpAddr },
    /// A pod, in a namespace with labels.
    Pod {
        namespace: String,
        namespace_labels: Labels,
        labels: Labels,
    },
}

/// The protocol and port of the traffic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Traffic {
    pub protocol: String,
    pub port: u16,
}

/// Whether `policies` (all read; those of other namespaces are ignored) admit `traffic` from
/// `source` to `pod`.
pub fn admits(
    policies: &[NetworkPolicy],
    pod: &EvalPod,
    source: &Source,
    traffic: &Traffic,
) -> bool {
    let mut selecting = policies
        .iter()
        .filter(|p| {
            p.metadata
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == pod.namespace)
        })
        .filter(|p| isolates_for_ingress(p, &pod.labels))
        .peekable();
    if selecting.peek().is_none() {
        return true;
    }
    selecting.any(|policy| {
        let policy_ns = policy
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(&pod.namespace);
        let rules = policy.spec.as_ref().and_then(|s| s.ingress.as_deref());
        rules.unwrap_or_default().iter().any(|rule| {
            let ports = rule.ports.as_deref().unwrap_or_default();
            let from = rule.from.as_deref().unwrap_or_default();
            (ports.is_empty() || ports.iter().any(|p| port_matches(p, pod, traffic)))
                && (from.is_empty() || from.iter().any(|p| peer_matches(p, policy_ns, source)))
        })
    })
}

fn port_matches(entry: &NetworkPolicyPort, pod: &EvalPod, traffic: &Traffic) -> bool {
    let protocol = entry.protocol.as_deref().unwrap_or("TCP");
    if protocol != traffic.protocol {
        return false;
    }
    let port = i32::from(traffic.port);
    match &entry.port {
        None => true,
        Some(IntOrString::Int(start)) => match entry.end_port {
            Some(end) => (*start..=end).contains(&port),
            None => *start == port,
        },
        Some(IntOrString::String(name)) => pod
            .ports
            .iter()
            .any(|p| p.name == *name && p.protocol == protocol && p.port == traffic.port),
    }
}

fn peer_matches(peer: &NetworkPolicyPeer, policy_ns: &str, source: &Source) -> bool {
    match source {
        Source::Ip { addr } => peer.ip_block.as_ref().is_some_and(|block| {
            let addr = normalise_ip(*addr);
            let within = |text: &String| Cidr::parse(text).is_some_and(|c| c.contains(&addr));
            within(&block.cidr) && !block.except.iter().flatten().any(within)
        }),
        Source::Pod {
            namespace,
            namespace_labels,
            labels,
        } => {
            if peer.ip_block.is_some() {
                return false;
            }
            let ns_ok = match &peer.namespace_selector {
                Some(sel) => selects(Some(sel), namespace_labels),
                None => namespace == policy_ns,
            };
            let pod_ok = match &peer.pod_selector {
                Some(sel) => selects(Some(sel), labels),
                None => peer.namespace_selector.is_some(),
            };
            ns_ok && pod_ok
        }
    }
}

/// A difference between before and after that the block must not make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Violation {
    /// An offending address is still admitted to a target pod.
    OffenderAdmitted {
        pod: String,
        source: Source,
        traffic: Traffic,
    },
    /// A source admitted before, and not offending, is refused after.
    Narrowed {
        pod: String,
        source: Source,
        traffic: Traffic,
    },
    /// A source refused before is admitted after.
    Widened {
        pod: String,
        source: Source,
        traffic: Traffic,
    },
}

/// Checks, for every pod, sample source and sample port (plus every offender as a source and
/// every named port of the pod), that `after` refuses the offenders to the target pods, admits
/// every non-offending source `before` admitted, and admits nothing `before` refused.
pub fn check_no_widening(
    before: &[NetworkPolicy],
    after: &[NetworkPolicy],
    pods: &[EvalPod],
    samples: &Samples,
    offenders: &Offenders,
) -> Result<(), Vec<Violation>> {
    let mut sources: BTreeSet<Source> = samples.sources.iter().cloned().collect();
    sources.extend(offenders.addrs().map(|addr| Source::Ip { addr }));
    let mut violations = Vec::new();
    for pod in pods {
        let mut traffic: BTreeSet<Traffic> = samples.traffic.iter().cloned().collect();
        traffic.extend(pod.ports.iter().map(|p| Traffic {
            protocol: p.protocol.clone(),
            port: p.port,
        }));
        for source in &sources {
            let offending = matches!(source, Source::Ip { addr } if offenders.contains(addr));
            for t in &traffic {
                let was = admits(before, pod, source, t);
                let is = admits(after, pod, source, t);
                let (pod_name, source, traffic) = (pod.name.clone(), source.clone(), t.clone());
                let found = if offending && pod.target && is {
                    Some(Violation::OffenderAdmitted {
                        pod: pod_name,
                        source,
                        traffic,
                    })
                } else if !was && is {
                    Some(Violation::Widened {
                        pod: pod_name,
                        source,
                        traffic,
                    })
                } else if !offending && was && !is {
                    Some(Violation::Narrowed {
                        pod: pod_name,
                        source,
                        traffic,
                    })
                } else {
                    None
                };
                violations.extend(found);
            }
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// The sources and ports to probe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    pub sources: Vec<Source>,
    pub traffic: Vec<Traffic>,
}

impl Samples {
    /// Samples around the edges of what `policies` and `offenders` name: each offender and its
    /// neighbours, the first, last and neighbouring addresses of every `cidr` and `except`, a few
    /// public addresses of each family; every port, `endPort` and their neighbours on each
    /// protocol named; and the given pods as pod sources (plus an unlabelled pod in a namespace
    /// of its own). Enough to find a rule that admits or refuses more than it should.
    pub fn around(
        policies: &[NetworkPolicy],
        offenders: &Offenders,
        pod_sources: &[Source],
    ) -> Self {
        let mut addrs: BTreeSet<IpAddr> =
            ["0.0.0.0", "8.8.8.8", "255.255.255.255", "::", "2001:db8::1"]
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
        let mut edge = |c: Cidr| {
            for a in [c.network().addr(), c.last_addr()] {
                addrs.extend(neighbours(a));
            }
        };
        for a in offenders.addrs() {
            edge(Cidr::host(a));
        }
        let mut ports: BTreeSet<(String, i64)> = BTreeSet::new();
        for policy in policies {
            let rules = policy.spec.as_ref().and_then(|s| s.ingress.as_deref());
            for rule in rules.unwrap_or_default() {
                for peer in rule.from.iter().flatten() {
                    if let Some(block) = &peer.ip_block {
                        let texts =
                            std::iter::once(&block.cidr).chain(block.except.iter().flatten());
                        texts.filter_map(|t| Cidr::parse(t)).for_each(&mut edge);
                    }
                }
                for p in rule.ports.iter().flatten() {
                    let proto = p.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
                    if let Some(IntOrString::Int(n)) = p.port {
                        for n in [n, p.end_port.unwrap_or(n)] {
                            ports.extend([-1, 0, 1].map(|d| (proto.clone(), i64::from(n) + d)));
                        }
                    }
                    ports.insert((proto, 1));
                }
            }
        }
        ports.insert(("TCP".to_owned(), 443));
        let mut sources: Vec<Source> = addrs.into_iter().map(|addr| Source::Ip { addr }).collect();
        sources.extend(pod_sources.iter().cloned());
        sources.push(Source::Pod {
            namespace: "custody-sample-elsewhere".to_owned(),
            namespace_labels: Labels::new(),
            labels: Labels::new(),
        });
        let traffic = ports
            .into_iter()
            .filter_map(|(protocol, port)| {
                Some(Traffic {
                    protocol,
                    port: u16::try_from(port).ok()?,
                })
            })
            .collect();
        Samples { sources, traffic }
    }
}

/// `a`, and the addresses just below and above it.
fn neighbours(a: IpAddr) -> Vec<IpAddr> {
    match a {
        IpAddr::V4(v) => {
            let n = u32::from(v);
            [n.checked_sub(1), Some(n), n.checked_add(1)]
                .into_iter()
                .flatten()
                .map(|n| IpAddr::V4(n.into()))
                .collect()
        }
        IpAddr::V6(v) => {
            let n = u128::from(v);
            [n.checked_sub(1), Some(n), n.checked_add(1)]
                .into_iter()
                .flatten()
                .map(|n| IpAddr::V6(n.into()))
                .collect()
        }
    }
}
