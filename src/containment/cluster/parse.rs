//! What the planner takes out of the objects it read, beyond their typed fields: a Node's
//! addresses and pod CIDRs, whether the CiliumNetworkPolicy CRD's schema has
//! `spec.enableDefaultDeny`, which resources a discovery document lists, and the API server's
//! `Date` header. Pure functions, so each rule is tested on its own.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use time::OffsetDateTime;

use crate::net::{normalise_ip, Cidr};

use super::NodeInfo;

/// A value the planner must understand and does not: the read fails rather than guess (a pod
/// CIDR that cannot be parsed could not be kept out of a block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {node}: {field} {value:?} is not {expected}")]
pub struct ParseError {
    pub node: String,
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
        node: name.clone(),
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
