//! What the planner takes out of the objects it read, beyond their typed fields: a Node's
//! addresses and pod CIDRs, a Calico IPPool's and a CiliumNode's pod network, whether the CiliumNetworkPolicy CRD's schema has
//! `spec.enableDefaultDeny`, which resources a discovery document lists, and the API server's
//! `Date` header. Pure functions, so each rule is tested on its own.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use time::OffsetDateTime;

use crate::net::{normalise_ip, Cidr};

use super::{NodeInfo, PodNetwork};

/// A value the planner must understand and does not: the read fails rather than guess (a pod
/// CIDR that cannot be parsed could not be kept out of a block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {field} {value:?} is not {expected}")]
pub struct ParseError {
    /// The object, in words: `node node-a`, `Calico IPPool default-ipv4-ippool`.
    pub object: String,
    pub field: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// A Node's `InternalIP` and `ExternalIP` addresses (normalised: IPv4-mapped IPv6 is IPv4) and
/// its pod CIDRs (`spec.podCIDRs`, or `spec.podCIDR` on old Nodes). Host names are skipped; an
/// IP-typed address or a pod CIDR that does not parse is an error.
pub fn node_info(node: &Node) -> Result<NodeInfo, ParseError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let bad = |field: &'static str, value: &str, expected: &'static str| ParseError {
        object: format!("node {name}"),
        field,
        value: value.to_owned(),
        expected,
    };
    let mut addresses: Vec<IpAddr> = Vec::new();
    let listed = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    for a in listed.into_iter().flatten() {
        if a.type_ != "InternalIP" && a.type_ != "ExternalIP" {
            continue;
        }
        let ip: IpAddr = a
            .address
            .trim()
            .parse()
            .map_err(|_| bad("status.addresses", &a.address, "an IP address"))?;
        let ip = normalise_ip(ip);
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    let spec = node.spec.as_ref();
    let mut written: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if written.is_empty() {
        written.extend(spec.and_then(|s| s.pod_cidr.clone()));
    }
    let mut pod_cidrs = Vec::new();
    for text in &written {
        let cidr = Cidr::parse(text).ok_or_else(|| bad("spec.podCIDRs", text, "a CIDR"))?;
        if !pod_cidrs.contains(&cidr) {
            pod_cidrs.push(cidr);
        }
    }
    Ok(NodeInfo {
        name,
        addresses,
        pod_cidrs,
    })
}

/// A Calico IPPool's range (`crd.projectcalico.org/v1` `ippools`, `spec.cidr`). A disabled pool
/// counts too: pods keep the addresses it gave them. A pool without a CIDR that parses is an
/// error.
pub fn ip_pool_networks(pool: &serde_json::Value) -> Result<Vec<PodNetwork>, ParseError> {
    let source = format!("Calico IPPool {}", name_of(pool));
    let cidr = match pool.pointer("/spec/cidr") {
        Some(serde_json::Value::String(text)) => Cidr::parse(text).ok_or_else(|| ParseError {
            object: source.clone(),
            field: "spec.cidr",
            value: text.clone(),
            expected: "a CIDR",
        })?,
        other => {
            return Err(ParseError {
                object: source,
                field: "spec.cidr",
                value: other.map(ToString::to_string).unwrap_or_default(),
                expected: "a CIDR",
            })
        }
    };
    Ok(vec![PodNetwork { source, cidr }])
}

/// A CiliumNode's pod CIDRs (`cilium.io/v2` `ciliumnodes`): `spec.ipam.podCIDRs` (cluster-pool
/// IPAM) and `spec.ipam.pools.allocated[].cidrs` (multi-pool IPAM), without repeats. A node
/// with neither has none (ENI and Azure IPAM hand out addresses of the VPC); a field of another
/// shape, or an entry that does not parse, is an error.
pub fn cilium_node_networks(node: &serde_json::Value) -> Result<Vec<PodNetwork>, ParseError> {
    let source = format!("CiliumNode {}", name_of(node));
    let bad = |field: &'static str, value: &serde_json::Value, expected: &'static str| {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        ParseError {
            object: source.clone(),
            field,
            value,
            expected,
        }
    };
    let strings = |field: &'static str, v: Option<&serde_json::Value>| {
        let mut out = Vec::new();
        match v {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Array(items)) => {
                for item in items {
                    let text = item.as_str().ok_or_else(|| bad(field, item, "a CIDR"))?;
                    out.push(Cidr::parse(text).ok_or_else(|| bad(field, item, "a CIDR"))?);
                }
            }
            Some(other) => return Err(bad(field, other, "a list of CIDRs")),
        }
        Ok(out)
    };
    let ipam = node.pointer("/spec/ipam");
    let mut cidrs = strings("spec.ipam.podCIDRs", ipam.and_then(|i| i.get("podCIDRs")))?;
    match ipam.and_then(|i| i.pointer("/pools/allocated")) {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(allocations)) => {
            for a in allocations {
                cidrs.extend(strings(
                    "spec.ipam.pools.allocated[].cidrs",
                    a.get("cidrs"),
                )?);
            }
        }
        Some(other) => {
            return Err(bad(
                "spec.ipam.pools.allocated",
                other,
                "a list of allocations",
            ))
        }
    }
    let mut out: Vec<PodNetwork> = Vec::new();
    for cidr in cidrs {
        if !out.iter().any(|n| n.cidr == cidr) {
            out.push(PodNetwork {
                source: source.clone(),
                cidr,
            });
        }
    }
    Ok(out)
}

fn name_of(object: &serde_json::Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or_default()
}

/// Whether the CiliumNetworkPolicy CRD (`customresourcedefinitions/ciliumnetworkpolicies.cilium.io`,
/// as JSON) has `spec.enableDefaultDeny` in the `v2` version's schema: `Some(true)` or
/// `Some(false)` when `v2` has a schema, `None` when it has none (nothing known).
pub fn enable_default_deny(crd: &serde_json::Value) -> Option<bool> {
    let versions = crd.pointer("/spec/versions")?.as_array()?;
    let v2 = versions.iter().find(|v| v["name"] == "v2")?;
    let schema = v2.pointer("/schema/openAPIV3Schema")?;
    let spec = schema.pointer("/properties/spec")?;
    Some(spec.pointer("/properties/enableDefaultDeny").is_some())
}

/// The resource names a discovery document (`APIResourceList`, e.g. `/apis/cilium.io/v2`) lists,
/// subresources (`pods/log`) left out.
pub fn served_resources(list: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    let list: APIResourceList = serde_json::from_slice(list)?;
    Ok(list
        .resources
        .into_iter()
        .map(|r| r.name)
        .filter(|n| !n.contains('/'))
        .collect())
}

/// An HTTP `Date` header (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), as Go's net/http and so
/// the API server write it.
pub fn parse_http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), &format)
        .ok()
        .map(|t| t.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn node_addresses_are_ip_typed_normalised_and_unique() {
        let n = node(json!({
            "metadata": {"name": "node-a"},
            "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24", "fd00:10:244::/64"]},
            "status": {"addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "InternalIP", "address": "::ffff:172.18.0.2"},
                {"type": "ExternalIP", "address": "2001:db8::2"},
                {"type": "InternalDNS", "address": "node-a.internal"}
            ]}
        }));
        let info = node_info(&n).unwrap();
        assert_eq!(info.name, "node-a");
        assert_eq!(
            info.addresses,
            [
                "172.18.0.2".parse::<IpAddr>().unwrap(),
                "2001:db8::2".parse().unwrap()
            ]
        );
        assert_eq!(
            info.pod_cidrs,
            [
                Cidr::parse("10.244.0.0/24").unwrap(),
                Cidr::parse("fd00:10:244::/64").unwrap()
            ]
        );
    }

    #[test]
    fn an_old_node_has_only_pod_cidr_and_a_node_without_one_has_none() {
        let old = node(json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.1.0.0/24"}}));
        assert_eq!(
            node_info(&old).unwrap().pod_cidrs,
            [Cidr::parse("10.1.0.0/24").unwrap()]
        );
        let bare = node(json!({"metadata": {"name": "n"}}));
        let info = node_info(&bare).unwrap();
        assert!(info.addresses.is_empty() && info.pod_cidrs.is_empty());
    }

    #[test]
    fn what_cannot_be_parsed_fails_rather_than_being_left_unprotected() {
        let e = node_info(&node(
            json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.1.0.0/33"]}}),
        ))
        .unwrap_err();
        assert_eq!(e.field, "spec.podCIDRs");
        assert!(e.to_string().contains("10.1.0.0/33"), "{e}");
        let e = node_info(&node(json!({"metadata": {"name": "n"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.300"}]}})))
        .unwrap_err();
        assert_eq!(e.field, "status.addresses");
    }

    #[test]
    fn calico_ip_pools_give_their_cidr_and_refuse_what_does_not_parse() {
        let pool = json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
            "metadata": {"name": "default-ipv4-ippool"},
            "spec": {"cidr": "192.168.0.0/16", "blockSize": 26, "ipipMode": "Always",
                     "natOutgoing": true, "disabled": true, "nodeSelector": "all()"}});
        let nets = ip_pool_networks(&pool).unwrap();
        assert_eq!(
            nets,
            [PodNetwork {
                source: "Calico IPPool default-ipv4-ippool".into(),
                cidr: Cidr::parse("192.168.0.0/16").unwrap()
            }]
        );
        let v6 = json!({"metadata": {"name": "v6"}, "spec": {"cidr": "fd00:10:244::/64"}});
        assert!(!ip_pool_networks(&v6).unwrap()[0].cidr.is_ipv4());
        for spec in [
            json!({"cidr": "192.168.0.0/33"}),
            json!({}),
            json!({"cidr": 7}),
        ] {
            let pool = json!({"metadata": {"name": "p"}, "spec": spec});
            let e = ip_pool_networks(&pool).unwrap_err();
            assert_eq!(
                (e.object.as_str(), e.field),
                ("Calico IPPool p", "spec.cidr")
            );
        }
        let e = ip_pool_networks(&json!({"metadata": {"name": "p"}, "spec": {"cidr": "pods"}}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Calico IPPool p: spec.cidr \"pods\" is not a CIDR"
        );
    }

    #[test]
    fn cilium_nodes_give_their_pod_cidrs_of_every_ipam_mode() {
        let node = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNode",
            "metadata": {"name": "node-a"},
            "spec": {"addresses": [{"type": "InternalIP", "ip": "172.18.0.2"}],
                     "ipam": {"podCIDRs": ["10.0.1.0/24", "fd00:10::/96"],
                              "pools": {"allocated": [
                                  {"pool": "default", "cidrs": ["10.0.1.0/24", "10.20.0.0/27"]},
                                  {"pool": "empty"}]}}}});
        let nets = cilium_node_networks(&node).unwrap();
        let cidrs: Vec<String> = nets.iter().map(|n| n.cidr.to_string()).collect();
        assert_eq!(cidrs, ["10.0.1.0/24", "fd00:10::/96", "10.20.0.0/27"]);
        assert!(nets.iter().all(|n| n.source == "CiliumNode node-a"));
        // ENI-style IPAM: no pod CIDRs at all.
        let eni = json!({"metadata": {"name": "n"}, "spec": {"ipam": {"pool": {"10.1.2.3": {}}}}});
        assert!(cilium_node_networks(&eni).unwrap().is_empty());
        assert!(cilium_node_networks(&json!({"metadata": {"name": "n"}}))
            .unwrap()
            .is_empty());
        let bad = |ipam: serde_json::Value| {
            cilium_node_networks(&json!({"metadata": {"name": "n"}, "spec": {"ipam": ipam}}))
                .unwrap_err()
        };
        let e = bad(json!({"podCIDRs": ["10.0.1.0/24", "10.0.2.0/40"]}));
        assert_eq!(e.field, "spec.ipam.podCIDRs");
        assert!(e.to_string().contains("CiliumNode n") && e.to_string().contains("10.0.2.0/40"));
        assert_eq!(
            bad(json!({"podCIDRs": "10.0.1.0/24"})).expected,
            "a list of CIDRs"
        );
        assert_eq!(
            bad(json!({"pools": {"allocated": [{"pool": "p", "cidrs": [1]}]}})).field,
            "spec.ipam.pools.allocated[].cidrs"
        );
        assert_eq!(
            bad(json!({"pools": {"allocated": {}}})).field,
            "spec.ipam.pools.allocated"
        );
    }

    #[test]
    fn the_crd_schema_says_whether_enable_default_deny_exists() {
        let crd = |spec_props: serde_json::Value| {
            json!({"spec": {"versions": [
                {"name": "v2alpha1", "schema": {"openAPIV3Schema": {"properties": {"spec": {"properties": {"enableDefaultDeny": {}}}}}}},
                {"name": "v2", "served": true, "schema": {"openAPIV3Schema": {"properties": {"spec": {"properties": spec_props}}}}}
            ]}})
        };
        let with = crd(json!({"ingressDeny": {}, "enableDefaultDeny": {"type": "object"}}));
        assert_eq!(enable_default_deny(&with), Some(true));
        // Another version having it does not count.
        let without = crd(json!({"ingressDeny": {}}));
        assert_eq!(enable_default_deny(&without), Some(false));
        // No schema for v2, or no v2 at all: not known.
        assert_eq!(
            enable_default_deny(&json!({"spec": {"versions": [{"name": "v2"}]}})),
            None
        );
        assert_eq!(enable_default_deny(&json!({"spec": {}})), None);
    }

    #[test]
    fn discovery_lists_resources_without_subresources() {
        let doc = br#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"cilium.io/v2","resources":[
            {"name":"ciliumnetworkpolicies","singularName":"ciliumnetworkpolicy","namespaced":true,"kind":"CiliumNetworkPolicy","verbs":["get","list"]},
            {"name":"ciliumnetworkpolicies/status","singularName":"","namespaced":true,"kind":"CiliumNetworkPolicy","verbs":["get"]},
            {"name":"ciliumendpoints","singularName":"ciliumendpoint","namespaced":true,"kind":"CiliumEndpoint","verbs":["list"]}]}"#;
        assert_eq!(
            served_resources(doc).unwrap(),
            ["ciliumnetworkpolicies", "ciliumendpoints"]
        );
        assert!(served_resources(b"[]").is_err());
    }

    #[test]
    fn http_dates_are_read_as_the_api_server_writes_them() {
        let t = parse_http_date("Thu, 26 Nov 2026 14:54:48 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1_795_704_888);
        assert!(parse_http_date("2026-11-26T14:54:48Z").is_none());
        assert!(parse_http_date("Thu, 26 Nov 2026 14:54:48 PST").is_none());
    }
}
