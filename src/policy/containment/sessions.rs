//! `invalidate_sessions`: the gateway's admin call that ends its sessions, made through the
//! `pods/proxy` subresource — port, method, path, an optional body template whose one placeholder
//! lists the blocked addresses, the token (one named Secret key) and the header it is sent in,
//! whether the call is made on every pod or once, whether it may be repeated, and its timeout.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use super::names::{DnsLabel, DnsSubdomain, HeaderName, SecretKey};
use crate::duration::Duration;

/// The one placeholder a body may hold.
pub const ADDRESSES_PLACEHOLDER: &str = "{{addresses}}";

/// The largest body template, in bytes.
const MAX_BODY: usize = 64 * 1024;
/// The longest path.
const MAX_PATH: usize = 2048;

/// One admin call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WrittenCall")]
pub struct InvalidateSessions {
    /// The target (from `targets`) whose pods are called.
    pub target: DnsLabel,
    /// The container port called, 1 to 65535.
    pub port: u16,
    pub method: HttpMethod,
    /// The request path: starts with `/`, no `.` or `..` segment, no query or fragment.
    pub path: AdminPath,
    /// The request body, where `{{addresses}}` stands for the blocked addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyTemplate>,
    /// The Secret key whose value is the admin token.
    pub token: TokenRef,
    /// The header the token is sent in.
    pub header: HeaderName,
    pub scope: Scope,
    /// Whether repeating the call is harmless: a non-idempotent call whose outcome is unknown
    /// is never repeated.
    pub idempotent: bool,
    /// How long one call may take, 1s to 5m.
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenCall {
    target: DnsLabel,
    #[serde(deserialize_with = "port")]
    port: u16,
    method: HttpMethod,
    path: AdminPath,
    body: Option<BodyTemplate>,
    token: TokenRef,
    header: HeaderName,
    scope: Scope,
    idempotent: bool,
    #[serde(default = "default_timeout", deserialize_with = "timeout")]
    timeout: Duration,
}

impl TryFrom<WrittenCall> for InvalidateSessions {
    type Error = String;

    fn try_from(w: WrittenCall) -> Result<Self, String> {
        if w.body.is_some() && w.method == HttpMethod::Get {
            return Err(
                "body: a GET request carries no body; use POST, PUT, PATCH or DELETE".into(),
            );
        }
        Ok(Self {
            target: w.target,
            port: w.port,
            method: w.method,
            path: w.path,
            body: w.body,
            token: w.token,
            header: w.header,
            scope: w.scope,
            idempotent: w.idempotent,
            timeout: w.timeout,
        })
    }
}

fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let n = i64::deserialize(deserializer)?;
    u16::try_from(n).ok().filter(|p| *p != 0).ok_or_else(|| {
        serde::de::Error::custom(format!("port {n} is out of range: give 1 to 65535"))
    })
}

fn default_timeout() -> Duration {
    super::duration("10s")
}

fn timeout<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    super::bounded_duration(deserializer, 1, 5 * 60, "1s to 5m")
}

/// The admin call's HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
    Patch,
}

impl HttpMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Patch => "PATCH",
        }
    }
}

/// Which pods are called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every pod of the target whose containers have started (each holds its own sessions).
    PerPod,
    /// One pod (the sessions are shared, in a database or cache).
    Once,
}

/// Where the admin token is: one key of one Secret in the target's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRef {
    pub secret: DnsSubdomain,
    pub key: SecretKey,
}

/// An admin path: `/` then RFC 3986 path characters, no `.` or `..` segment (raw or
/// percent-encoded), no encoded `/` or `\`, no query (`?`) or fragment (`#`), no control
/// characters. The API server joins it to `…/pods/NAME:PORT/proxy`, so a path that climbs out
/// would reach another API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AdminPath(String);

impl AdminPath {
    pub fn new(path: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("path {:?}: {why}", path.escape_debug().to_string()));
        if !path.starts_with('/') {
            return bad("must start with /");
        }
        if path.len() > MAX_PATH {
            return bad("is longer than 2048 bytes");
        }
        if let Some(c) = path.chars().find(|c| !is_path_char(*c)) {
            let why = match c {
                '?' | '#' => "holds a query or fragment (? or #), which the call cannot carry",
                c if c.is_control() => "holds a control character",
                _ => "holds a character that is not allowed in a path (use %XX escapes)",
            };
            return bad(why);
        }
        let lower = path.to_ascii_lowercase();
        let encoded = ["%2e", "%2f", "%5c", "%00"];
        if encoded.iter().any(|e| lower.contains(e)) {
            return bad("holds an encoded '.', '/', '\\' or NUL");
        }
        if !valid_escapes(path) {
            return bad("holds a % that is not followed by two hex digits");
        }
        if path.contains("//") {
            return bad("holds an empty segment (//)");
        }
        if path.split('/').any(|s| s == "." || s == "..") || path.contains("..") {
            return bad("holds '..' or a '.' segment");
        }
        Ok(Self(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 3986 `pchar` and `/`.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c)
}

fn valid_escapes(path: &str) -> bool {
    let b = path.as_bytes();
    b.iter().enumerate().all(|(i, c)| {
        *c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

impl<'de> Deserialize<'de> for AdminPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        AdminPath::new(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A request body whose only placeholder is `{{addresses}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BodyTemplate(String);

impl BodyTemplate {
    pub fn new(text: &str) -> Result<Self, String> {
        if text.len() > MAX_BODY {
            return Err("body: is longer than 64 KiB".into());
        }
        let mut rest = text;
        while let Some(at) = rest.find("{{") {
            let after = &rest[at..];
            if !after.starts_with(ADDRESSES_PLACEHOLDER) {
                let shown: String = after.chars().take(40).collect();
                return Err(format!(
                    "body: {:?} is not a placeholder; the only one is {ADDRESSES_PLACEHOLDER} \
                     (the blocked addresses as a JSON array of strings)",
                    shown.escape_debug().to_string()
                ));
            }
            rest = &after[ADDRESSES_PLACEHOLDER.len()..];
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The body with every `{{addresses}}` replaced by the addresses as a JSON array of
    /// strings, normalised (IPv4-mapped IPv6 is IPv4), sorted and without repeats, so the same
    /// addresses always give the same bytes.
    pub fn render(&self, addresses: &[IpAddr]) -> String {
        let mut ips: Vec<IpAddr> = addresses
            .iter()
            .map(|ip| crate::net::normalise_ip(*ip))
            .collect();
        ips.sort_unstable();
        ips.dedup();
        let list: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
        self.0
            .replace(ADDRESSES_PLACEHOLDER, &format!("[{}]", list.join(",")))
    }
}

impl<'de> Deserialize<'de> for BodyTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BodyTemplate::new(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl InvalidateSessions {
    /// The body to send for `addresses`, if the call has one.
    pub fn render_body(&self, addresses: &[IpAddr]) -> Option<String> {
        self.body.as_ref().map(|b| b.render(addresses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<InvalidateSessions, String> {
        super::super::parse_entry(text)
    }

    const GOOD: &str = "target: api-gateway\nport: 9000\nmethod: POST\npath: /admin/sessions/revoke\nbody: '{\"clients\": {{addresses}}}'\ntoken: {secret: gateway-admin, key: token}\nheader: X-Custody-Admin-Token\nscope: per_pod\nidempotent: true\n";

    #[test]
    fn a_call_reads_and_renders_its_body() {
        let call = parse(GOOD).unwrap();
        assert_eq!((call.port, call.method.as_str()), (9000, "POST"));
        assert_eq!(call.timeout.as_secs(), 10);
        assert_eq!(call.scope, Scope::PerPod);
        let ips: Vec<IpAddr> = ["::ffff:192.0.2.7", "2001:db8::1", "192.0.2.7", "10.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let body = call.render_body(&ips).unwrap();
        assert_eq!(
            body,
            r#"{"clients": ["10.0.0.1","192.0.2.7","2001:db8::1"]}"#
        );
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["clients"][2], "2001:db8::1");
        assert_eq!(call.render_body(&[]).unwrap(), r#"{"clients": []}"#);
        let no_body = parse(&GOOD.replace("body: '{\"clients\": {{addresses}}}'\n", "")).unwrap();
        assert_eq!(no_body.render_body(&ips), None);
    }

    #[test]
    fn bad_calls_name_the_field_and_line() {
        let cases = [
            (
                "port: 9000",
                "port: 0",
                "port",
                "out of range: give 1 to 65535",
            ),
            ("port: 9000", "port: 70000", "port", "out of range"),
            ("port: 9000", "port: http", "port", "line"),
            ("method: POST", "method: post", "method", "unknown variant"),
            (
                "method: POST",
                "method: CONNECT",
                "method",
                "unknown variant",
            ),
            (
                "method: POST",
                "method: GET",
                "",
                "a GET request carries no body",
            ),
            (
                "/admin/sessions/revoke",
                "admin/sessions",
                "path",
                "must start with /",
            ),
            (
                "/admin/sessions/revoke",
                "/admin/../api/v1/secrets",
                "path",
                "'..'",
            ),
            (
                "/admin/sessions/revoke",
                "/admin/./revoke",
                "path",
                "'.' segment",
            ),
            (
                "/admin/sessions/revoke",
                "/admin/%2E%2E/x",
                "path",
                "encoded",
            ),
            ("/admin/sessions/revoke", "/admin/%2fx", "path", "encoded"),
            (
                "/admin/sessions/revoke",
                "/admin/%zz",
                "path",
                "two hex digits",
            ),
            (
                "/admin/sessions/revoke",
                "/admin?all=1",
                "path",
                "query or fragment",
            ),
            (
                "/admin/sessions/revoke",
                "/admin#x",
                "path",
                "query or fragment",
            ),
            (
                "/admin/sessions/revoke",
                "\"/admin\\x01x\"",
                "path",
                "control character",
            ),
            ("/admin/sessions/revoke", "//admin", "path", "empty segment"),
            ("/admin/sessions/revoke", "/admin x", "path", "not allowed"),
            (
                "{{addresses}}",
                "{{clients}}",
                "body",
                "the only one is {{addresses}}",
            ),
            (
                "{{addresses}}",
                "{{ addresses }}",
                "body",
                "not a placeholder",
            ),
            (
                "{{addresses}}}",
                "{{addresses}}{{",
                "body",
                "not a placeholder",
            ),
            (
                "header: X-Custody-Admin-Token",
                "header: Authorization",
                "header",
                "the API server consumes it on pods/proxy",
            ),
            (
                "header: X-Custody-Admin-Token",
                "header: Proxy-Authorization",
                "header",
                "consumes",
            ),
            (
                "header: X-Custody-Admin-Token",
                "header: Cookie",
                "header",
                "cannot carry",
            ),
            (
                "header: X-Custody-Admin-Token",
                "header: host",
                "header",
                "cannot carry",
            ),
            (
                "header: X-Custody-Admin-Token",
                "header: 'X Token'",
                "header",
                "not an HTTP header name",
            ),
            ("scope: per_pod", "scope: all", "scope", "unknown variant"),
            ("idempotent: true\n", "", "", "missing field `idempotent`"),
            (
                "idempotent: true\n",
                "idempotent: true\ntimeout: 0s\n",
                "timeout",
                "out of range",
            ),
            (
                "idempotent: true\n",
                "idempotent: true\ntimeout: 6m\n",
                "timeout",
                "6m is out of range: give 1s to 5m",
            ),
            (
                "idempotent: true\n",
                "idempotent: true\ntimeout: soon\n",
                "timeout",
                "not a duration",
            ),
            (
                "{secret: gateway-admin, key: token}",
                "{secret: gateway-admin, key: 'a/b'}",
                "token.key",
                "Secret data key",
            ),
            (
                "{secret: gateway-admin, key: token}",
                "{secret: gateway-admin}",
                "token",
                "missing field `key`",
            ),
            (
                "{secret: gateway-admin, key: token}",
                "{secret: gateway-admin, key: token, ns: x}",
                "token",
                "unknown field",
            ),
            (
                "idempotent: true\n",
                "idempotent: true\nretries: 3\n",
                "",
                "unknown field `retries`",
            ),
        ];
        for (from, to, field, want) in cases {
            assert!(GOOD.contains(from), "{from}");
            let text = GOOD.replacen(from, to, 1);
            let e = parse(&text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with(field) && e.contains("line"), "{text}: {e}");
        }
    }
}
