//! What the fake API server checks on every write, after the API server's validation code
//! (`pkg/apis/networking/validation`, apimachinery's name rules): names are DNS-1123 subdomains
//! (Services: DNS-1035 labels); a NetworkPolicy's `ipBlock.cidr` and `except` entries are valid
//! CIDRs (a non-canonical one such as `10.0.0.1/8` is accepted with a warning, as the API server
//! does today), each `except` a strict subset of its `cidr`; a peer names exactly one kind of
//! peer, or an ipBlock alone; ports have a known protocol and a valid number or name, `endPort`
//! only after a numeric `port` and not below it. CiliumNetworkPolicy CIDRs are checked too.
//! Secrets are checked in `secrets`. And the two patch formats: JSON patch (RFC 6902) and JSON
//! merge patch (RFC 7386).

use std::net::IpAddr;

use serde_json::{json, Value};

/// One field error, as the API server reports it in `details.causes`.
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub reason: &'static str,
}

impl FieldError {
    pub fn invalid(field: &str, value: &str, why: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: format!("Invalid value: {}: {why}", json!(value)),
            reason: "FieldValueInvalid",
        }
    }

    pub fn required(field: &str, why: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: format!("Required value: {why}")
                .trim_end_matches(": ")
                .to_owned(),
            reason: "FieldValueRequired",
        }
    }

    pub fn forbidden(field: &str, why: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: format!("Forbidden: {why}"),
            reason: "FieldValueForbidden",
        }
    }

    fn unsupported(field: &str, value: &str, supported: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: format!(
                "Unsupported value: {}: supported values: {supported}",
                json!(value)
            ),
            reason: "FieldValueNotSupported",
        }
    }
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn label_1123(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

pub fn is_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(label_1123)
}

fn is_label_1035(name: &str) -> bool {
    label_1123(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Every field error of `obj` (a `kind`), and the warnings of an accepted one.
pub fn validate(kind: &str, obj: &Value) -> (Vec<FieldError>, Vec<String>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (ok, rule) = if kind == "Service" {
        (is_label_1035(name), LABEL_1035)
    } else {
        (is_subdomain(name), SUBDOMAIN)
    };
    if !ok {
        errors.push(FieldError::invalid("metadata.name", name, rule));
    }
    match kind {
        "NetworkPolicy" => network_policy(obj, &mut errors, &mut warnings),
        "CiliumNetworkPolicy" => cilium_policy(obj, &mut errors, &mut warnings),
        "Secret" => super::secrets::validate(obj, &mut errors),
        _ => {}
    }
    (errors, warnings)
}

/// A CIDR as Go's `net.ParseCIDR` reads it, under the API server's strict IP rules (no leading
/// zeros, no IPv4-mapped IPv6): the address and prefix, or `None`.
fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    if let IpAddr::V6(v6) = ip {
        if v6.to_ipv4_mapped().is_some() {
            return None;
        }
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max)?;
    Some((ip, prefix))
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The network mask of `prefix` over `bits` (IPv4 in the top 32 bits, so one rule serves both).
fn mask(_ip: IpAddr, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

/// The canonical text of a CIDR: the network address (host bits cleared) and its prefix.
fn canonical(ip: IpAddr, prefix: u8) -> String {
    let net = bits(ip) & mask(ip, prefix);
    let addr: IpAddr = match ip {
        IpAddr::V4(_) => IpAddr::V4(((net >> 96) as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(net.into()),
    };
    format!("{addr}/{prefix}")
}

/// A valid CIDR, and a warning when it is not written canonically.
fn check_cidr(
    field: &str,
    text: &str,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<String>,
) -> Option<(IpAddr, u8)> {
    let Some((ip, prefix)) = parse_cidr(text) else {
        errors.push(FieldError::invalid(field, text, CIDR));
        return None;
    };
    let canon = canonical(ip, prefix);
    if canon != text {
        warnings.push(format!("{field}: non-standard CIDR value {} will be considered invalid in a future Kubernetes release: use {}", json!(text), json!(canon)));
    }
    Some((ip, prefix))
}

fn ip_block(field: &str, block: &Value, errors: &mut Vec<FieldError>, warnings: &mut Vec<String>) {
    let cidr = block["cidr"].as_str().unwrap_or_default();
    if cidr.is_empty() {
        errors.push(FieldError::required(&format!("{field}.cidr"), ""));
        return;
    }
    let outer = check_cidr(&format!("{field}.cidr"), cidr, errors, warnings);
    for (i, except) in block["except"].as_array().into_iter().flatten().enumerate() {
        let f = format!("{field}.except[{i}]");
        let text = except.as_str().unwrap_or_default();
        let Some((ip, prefix)) = check_cidr(&f, text, errors, warnings) else {
            continue;
        };
        let Some((oip, oprefix)) = outer else {
            continue;
        };
        let same_family = ip.is_ipv4() == oip.is_ipv4();
        let inside =
            same_family && (bits(ip) & mask(oip, oprefix)) == (bits(oip) & mask(oip, oprefix));
        if !inside || oprefix >= prefix {
            errors.push(FieldError::invalid(
                &f,
                text,
                "must be a strict subset of `cidr`",
            ));
        }
    }
}

fn port(field: &str, p: &Value, errors: &mut Vec<FieldError>) {
    if let Some(proto) = p.get("protocol").and_then(Value::as_str) {
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            errors.push(FieldError::unsupported(
                &format!("{field}.protocol"),
                proto,
                "\"SCTP\", \"TCP\", \"UDP\"",
            ));
        }
    }
    let number = match p.get("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                errors.push(FieldError::invalid(
                    &format!("{field}.port"),
                    &n.to_string(),
                    "must be between 1 and 65535, inclusive",
                ));
            }
            Some(n)
        }
        Some(Value::String(s)) => {
            let ok = !s.is_empty()
                && s.len() <= 15
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && s.bytes().any(|b| b.is_ascii_lowercase())
                && !s.starts_with('-')
                && !s.ends_with('-')
                && !s.contains("--");
            if !ok {
                errors.push(FieldError::invalid(
                    &format!("{field}.port"),
                    s,
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                ));
            }
            None
        }
        Some(other) => {
            errors.push(FieldError::invalid(
                &format!("{field}.port"),
                &other.to_string(),
                "must be a number or a name",
            ));
            None
        }
    };
    if let Some(end) = p.get("endPort").and_then(Value::as_i64) {
        match number {
            None => errors.push(FieldError::forbidden(
                &format!("{field}.endPort"),
                "may not be specified when `port` is non-numeric",
            )),
            Some(start) if end < start => errors.push(FieldError::invalid(
                &format!("{field}.endPort"),
                &end.to_string(),
                "must be greater than or equal to `port`",
            )),
            _ => {}
        }
    }
}

fn network_policy(obj: &Value, errors: &mut Vec<FieldError>, warnings: &mut Vec<String>) {
    let spec = &obj["spec"];
    for (i, t) in spec["policyTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let t = t.as_str().unwrap_or_default();
        if t != "Ingress" && t != "Egress" {
            errors.push(FieldError::unsupported(
                &format!("spec.policyTypes[{i}]"),
                t,
                "\"Ingress\", \"Egress\"",
            ));
        }
    }
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in spec[direction].as_array().into_iter().flatten().enumerate() {
            let base = format!("spec.{direction}[{i}]");
            for (j, p) in rule["ports"].as_array().into_iter().flatten().enumerate() {
                port(&format!("{base}.ports[{j}]"), p, errors);
            }
            for (j, peer) in rule[peers].as_array().into_iter().flatten().enumerate() {
                let field = format!("{base}.{peers}[{j}]");
                let has = |k: &str| peer.get(k).is_some_and(|v| !v.is_null());
                let n = ["podSelector", "namespaceSelector", "ipBlock"]
                    .iter()
                    .filter(|k| has(k))
                    .count();
                if n == 0 {
                    errors.push(FieldError::required(&field, "must specify a peer"));
                } else if has("ipBlock") && n > 1 {
                    errors.push(FieldError::forbidden(
                        &field,
                        "may not specify both ipBlock and another peer",
                    ));
                }
                if has("ipBlock") {
                    ip_block(
                        &format!("{field}.ipBlock"),
                        &peer["ipBlock"],
                        errors,
                        warnings,
                    );
                }
            }
        }
    }
}

fn cilium_policy(obj: &Value, errors: &mut Vec<FieldError>, warnings: &mut Vec<String>) {
    for section in ["ingress", "ingressDeny"] {
        for (i, rule) in obj["spec"][section]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, set) in rule["fromCIDRSet"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let field = format!("spec.{section}[{i}].fromCIDRSet[{j}]");
                if let Some(cidr) = set["cidr"].as_str() {
                    check_cidr(&format!("{field}.cidr"), cidr, errors, warnings);
                }
            }
        }
    }
}

/// The RFC 6901 pointer's parent and last token.
fn split_pointer(path: &str) -> Result<(Vec<String>, String), String> {
    if path.is_empty() {
        return Err("the whole document cannot be patched".into());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("JSON pointer {path:?} does not start with /"));
    };
    let mut tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let last = tokens.pop().unwrap_or_default();
    Ok((tokens, last))
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
    path: &str,
) -> Result<&'a mut Value, String> {
    let mut at = doc;
    for t in tokens {
        at = match at {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {path}: missing value"))?;
    }
    Ok(at)
}

fn take(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (tokens, last) = split_pointer(path)?;
    let parent = parent_mut(doc, &tokens, path)?;
    match parent {
        Value::Object(m) => m.remove(&last),
        Value::Array(a) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < a.len())
            .map(|i| a.remove(i)),
        _ => None,
    }
    .ok_or_else(|| format!("doc is missing path: {path}: missing value"))
}

fn put(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), String> {
    let (tokens, last) = split_pointer(path)?;
    let parent = parent_mut(doc, &tokens, path)?;
    match parent {
        Value::Object(m) => {
            if replace && !m.contains_key(&last) {
                return Err(format!(
                    "replace operation does not apply: doc is missing key: {path}: missing value"
                ));
            }
            m.insert(last, value);
        }
        Value::Array(a) if last == "-" && !replace => a.push(value),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .map_err(|_| format!("invalid array index {last:?} in {path}"))?;
            if replace && i < a.len() {
                a[i] = value;
            } else if !replace && i <= a.len() {
                a.insert(i, value);
            } else {
                return Err(format!("doc is missing path: {path}: missing value"));
            }
        }
        _ => return Err(format!("doc is missing path: {path}: missing value")),
    }
    Ok(())
}

/// Applies an RFC 6902 patch; the error in words when an op fails (a `test` that does not hold
/// fails the whole patch, which then changes nothing).
pub fn apply_json_patch(doc: &Value, ops: &[Value]) -> Result<Value, String> {
    let mut out = doc.clone();
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("missing value for {path}"))
        };
        match op["op"].as_str().unwrap_or_default() {
            "add" => put(&mut out, path, value()?, false)?,
            "replace" => put(&mut out, path, value()?, true)?,
            "remove" => {
                take(&mut out, path)?;
            }
            "test" => {
                let found = out.pointer(path);
                if found != Some(&value()?) {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            "move" | "copy" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = if op["op"] == "move" {
                    take(&mut out, from)?
                } else {
                    out.pointer(from)
                        .cloned()
                        .ok_or_else(|| format!("doc is missing from path: {from}"))?
                };
                put(&mut out, path, v, false)?;
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(out)
}

/// RFC 7386: objects merged key by key, `null` removes, anything else replaces.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match doc {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}
