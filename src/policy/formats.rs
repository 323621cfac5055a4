//! `formats.yaml`: which proxies are trusted for X-Forwarded-For, JSON field names for JSON lines
//! that match no preset, and custom line formats as regular expressions with named groups.

use std::net::IpAddr;

use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::PolicyError;
use crate::net::Cidr;

/// The named groups a custom format may use.
pub const CUSTOM_GROUPS: [&str; 7] = ["ip", "status", "time", "method", "path", "ua", "xff"];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatsPolicy {
    /// How the client address of a request is chosen.
    #[serde(default)]
    pub client_ip: ClientIpPolicy,
    /// Field names for JSON lines that match no preset.
    #[serde(default)]
    pub json_fields: JsonFields,
    /// Custom line formats.
    #[serde(default)]
    pub custom: Vec<CustomFormat>,
    #[serde(skip)]
    compiled: Vec<(String, Regex)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpPolicy {
    /// Addresses or CIDR ranges of your own proxies; X-Forwarded-For is used only for requests
    /// that arrived from one of them. Empty: the remote address is always the client.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
}

/// Candidate field names, the first present wins.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonFields {
    /// The client address (may be `address:port` or `[v6]:port`).
    #[serde(default = "default_ip_fields")]
    pub ip: Vec<String>,
    /// The response status.
    #[serde(default = "default_status_fields")]
    pub status: Vec<String>,
    /// The request time: RFC 3339, Common Log Format, or Unix seconds.
    #[serde(default = "default_time_fields")]
    pub time: Vec<String>,
    #[serde(default)]
    pub method: Vec<String>,
    #[serde(default)]
    pub path: Vec<String>,
    /// The X-Forwarded-For header.
    #[serde(default)]
    pub xff: Vec<String>,
}

fn default_ip_fields() -> Vec<String> {
    vec!["client_ip".into(), "remote_addr".into(), "ip".into()]
}
fn default_status_fields() -> Vec<String> {
    vec!["status".into(), "status_code".into()]
}
fn default_time_fields() -> Vec<String> {
    vec!["time".into(), "timestamp".into(), "@timestamp".into()]
}

impl Default for JsonFields {
    fn default() -> Self {
        Self {
            ip: default_ip_fields(),
            status: default_status_fields(),
            time: default_time_fields(),
            method: Vec::new(),
            path: Vec::new(),
            xff: Vec::new(),
        }
    }
}

/// A line format given as a regular expression with named groups.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFormat {
    /// Chosen with `--format custom:NAME`: lowercase letters, digits and `-`.
    pub name: String,
    /// The expression; groups `ip` and `status` are required.
    pub pattern: String,
}

impl Default for FormatsPolicy {
    fn default() -> Self {
        // The shipped file is parsed by a test, so this cannot fail at run time.
        FormatsPolicy::parse("built-in formats.yaml", super::DEFAULT_FORMATS)
            .expect("the built-in formats policy is valid")
    }
}

impl FormatsPolicy {
    pub fn parse(path: &str, text: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::ParsePolicy {
            path: path.to_owned(),
            message,
        };
        let mut policy: FormatsPolicy = super::from_yaml(path, text)?;
        let f = &policy.json_fields;
        if f.ip.is_empty() || f.status.is_empty() {
            return Err(err(
                "json_fields: ip and status need at least one name each".into(),
            ));
        }
        let mut compiled = Vec::new();
        for (i, c) in policy.custom.iter().enumerate() {
            if crate::id::CaseId::new(c.name.as_str()).is_err() {
                return Err(err(format!(
                    "custom[{i}].name {:?}: use lowercase letters, digits and '-'",
                    c.name
                )));
            }
            if compiled.iter().any(|(n, _)| *n == c.name) {
                return Err(err(format!("custom[{i}].name {:?} is used twice", c.name)));
            }
            // Matching is linear in the line, but a large compiled pattern makes the constant
            // large; a log format needs nothing near these limits.
            let re = RegexBuilder::new(&c.pattern)
                .size_limit(64 * 1024)
                .dfa_size_limit(2 * 1024 * 1024)
                .build()
                .map_err(|e| {
                    err(format!(
                        "custom[{i}] ({}): pattern does not compile: {e}",
                        c.name
                    ))
                })?;
            let names: Vec<&str> = re.capture_names().flatten().collect();
            for required in ["ip", "status"] {
                if !names.contains(&required) {
                    return Err(err(format!(
                        "custom[{i}] ({}): the pattern needs a group (?P<{required}>…)",
                        c.name
                    )));
                }
            }
            if let Some(unknown) = names.iter().find(|n| !CUSTOM_GROUPS.contains(n)) {
                return Err(err(format!(
                    "custom[{i}] ({}): unknown group {unknown:?}; use {}",
                    c.name,
                    CUSTOM_GROUPS.join(", ")
                )));
            }
            compiled.push((c.name.clone(), re));
        }
        policy.compiled = compiled;
        Ok(policy)
    }

    /// The trusted proxy ranges.
    pub fn trusted_proxies(&self) -> &[Cidr] {
        &self.client_ip.trusted_proxies
    }

    /// The compiled custom formats, in policy order.
    pub fn custom_formats(&self) -> &[(String, Regex)] {
        &self.compiled
    }

    /// Whether `ip` is one of our proxies.
    pub fn is_trusted_proxy(&self, ip: &IpAddr) -> bool {
        self.client_ip
            .trusted_proxies
            .iter()
            .any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_format_policies_name_the_problem() {
        let cases = [
            (
                "client_ip: {trusted_proxies: [10.0.0.0/40]}",
                "trusted_proxies[0]",
            ),
            (
                "custom: [{name: x, pattern: '(?P<ip>\\S+)'}]",
                "(?P<status>",
            ),
            (
                "custom: [{name: x, pattern: '(?P<ip>\\S+) (?P<status>\\d+) (?P<bogus>.)'}]",
                "unknown group",
            ),
            (
                "custom: [{name: x, pattern: '(?P<ip>'}]",
                "does not compile",
            ),
            (
                "custom: [{name: X, pattern: '(?P<ip>\\S+) (?P<status>\\d+)'}]",
                "name",
            ),
            ("json_fields: {ip: []}", "json_fields"),
            ("colour: blue", "unknown field"),
        ];
        for (text, want) in cases {
            let err = FormatsPolicy::parse("formats.yaml", text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let ok = FormatsPolicy::parse(
            "f",
            "client_ip: {trusted_proxies: [10.0.0.0/8]}\ncustom: [{name: x, pattern: '(?P<ip>\\S+) (?P<status>\\d+)'}]",
        )
        .unwrap();
        assert!(ok.is_trusted_proxy(&"10.1.2.3".parse().unwrap()));
        assert_eq!(ok.custom_formats().len(), 1);
    }
}
