//! JSON-lines access logs: presets for nginx (`log_format … escape=json`), Envoy and Traefik, and
//! the field names of the formats policy for anything else.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::format::Request;
use super::parse;
use crate::policy::FormatsPolicy;

/// Which field names a JSON access log uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonPreset {
    /// nginx with a JSON `log_format`: `remote_addr`, `status`, `time_iso8601`/`time_local`,
    /// `request_method`, `request_uri` (or `request`), `http_x_forwarded_for`.
    Nginx,
    /// Envoy's JSON access log: `downstream_remote_address` (address:port), `response_code`,
    /// `start_time`, `method`, `path`, `x_forwarded_for`.
    Envoy,
    /// Traefik's JSON access log: `ClientHost` (or `ClientAddr`, address:port), `DownstreamStatus`,
    /// `StartUTC`, `RequestMethod`, `RequestPath`, `request_X-Forwarded-For`.
    Traefik,
    /// The formats policy's `json_fields`.
    Configured,
}

impl JsonPreset {
    pub fn name(&self) -> &'static str {
        match self {
            JsonPreset::Nginx => "nginx",
            JsonPreset::Envoy => "envoy",
            JsonPreset::Traefik => "traefik",
            JsonPreset::Configured => "configured",
        }
    }
}

/// The preset whose fields a JSON line has.
pub fn detect_preset(line: &[u8]) -> JsonPreset {
    let Ok(obj) = serde_json::from_slice::<Map<String, Value>>(line) else {
        return JsonPreset::Configured;
    };
    if obj.contains_key("DownstreamStatus") {
        JsonPreset::Traefik
    } else if obj.contains_key("response_code") || obj.contains_key("downstream_remote_address") {
        JsonPreset::Envoy
    } else if obj.contains_key("remote_addr") && obj.contains_key("status") {
        JsonPreset::Nginx
    } else {
        JsonPreset::Configured
    }
}

/// A field as text: strings as they are, numbers printed.
fn text<'v>(obj: &'v Map<String, Value>, names: &[&str]) -> Option<Cow<'v, str>> {
    names.iter().find_map(|n| match obj.get(*n)? {
        Value::String(s) if !s.is_empty() && s != "-" => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    })
}

struct Fields<'p> {
    ip: Vec<&'p str>,
    status: Vec<&'p str>,
    time: Vec<&'p str>,
    method: Vec<&'p str>,
    path: Vec<&'p str>,
    request: Vec<&'p str>,
    xff: Vec<&'p str>,
}

fn fields(preset: JsonPreset, policy: &FormatsPolicy) -> Fields<'_> {
    let v = |names: &[&'static str]| names.to_vec();
    match preset {
        JsonPreset::Nginx => Fields {
            ip: v(&["remote_addr"]),
            status: v(&["status"]),
            time: v(&["time_iso8601", "time_local", "time", "msec"]),
            method: v(&["request_method"]),
            path: v(&["request_uri", "uri"]),
            request: v(&["request"]),
            xff: v(&["http_x_forwarded_for"]),
        },
        JsonPreset::Envoy => Fields {
            ip: v(&[
                "downstream_remote_address",
                "downstream_direct_remote_address",
            ]),
            status: v(&["response_code"]),
            time: v(&["start_time"]),
            method: v(&["method"]),
            path: v(&["path", "x-envoy-original-path"]),
            request: Vec::new(),
            xff: v(&["x_forwarded_for", "x-forwarded-for"]),
        },
        JsonPreset::Traefik => Fields {
            ip: v(&["ClientHost", "ClientAddr"]),
            status: v(&["DownstreamStatus"]),
            time: v(&["StartUTC", "StartLocal", "time"]),
            method: v(&["RequestMethod"]),
            path: v(&["RequestPath"]),
            request: Vec::new(),
            xff: v(&["request_X-Forwarded-For"]),
        },
        JsonPreset::Configured => {
            let f = &policy.json_fields;
            fn v(names: &[String]) -> Vec<&str> {
                names.iter().map(String::as_str).collect()
            }
            Fields {
                ip: v(&f.ip),
                status: v(&f.status),
                time: v(&f.time),
                method: v(&f.method),
                path: v(&f.path),
                request: Vec::new(),
                xff: v(&f.xff),
            }
        }
    }
}

/// Parses one JSON line with `preset`'s field names.
pub fn parse(line: &[u8], preset: JsonPreset, policy: &FormatsPolicy) -> Option<Request<'static>> {
    if line.first() != Some(&b'{') {
        return None;
    }
    let obj: Map<String, Value> = serde_json::from_slice(line).ok()?;
    let f = fields(preset, policy);
    let remote = parse_host_port(text(&obj, &f.ip)?.as_bytes())?;
    let status: u16 = text(&obj, &f.status)?.parse().ok()?;
    if !(100..=599).contains(&status) {
        return None;
    }
    let path = match text(&obj, &f.path) {
        Some(p) => p.into_owned(),
        None => text(&obj, &f.request)
            .and_then(|r| r.split(' ').nth(1).map(str::to_owned))
            .unwrap_or_default(),
    };
    let _method = text(&obj, &f.method);
    Some(Request {
        remote,
        xff: text(&obj, &f.xff).map(|x| Cow::Owned(x.into_owned().into_bytes())),
        time: text(&obj, &f.time).and_then(|t| parse_any_time(t.as_bytes())),
        status,
        path: Cow::Owned(path.into_bytes()),
    })
}

/// An address, `address:port`, or `[IPv6]:port`.
pub fn parse_host_port(s: &[u8]) -> Option<IpAddr> {
    let s = s.trim_ascii();
    if let Some(ip) = parse::parse_ip(s) {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix(b"[") {
        let end = memchr::memchr(b']', rest)?;
        return parse::parse_ip(&rest[..end]);
    }
    let colon = memchr::memrchr(b':', s)?;
    let port = &s[colon + 1..];
    if port.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match parse::parse_ip(&s[..colon])? {
        ip @ IpAddr::V4(_) => Some(ip),
        // `2001:db8::1:443` is an address, not an address and a port; it parsed above.
        IpAddr::V6(_) => None,
    }
}

/// RFC 3339, Common Log Format, or Unix seconds (with optional fraction; milliseconds when the
/// number is too large to be seconds).
pub fn parse_any_time(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    if let Some(t) = parse::parse_rfc3339(s) {
        return Some(t);
    }
    if let Some(t) = parse::parse_clf_time(s) {
        return Some(t);
    }
    let whole = s.split(|b| *b == b'.').next()?;
    if whole.is_empty() || whole.len() > 16 || !whole.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: i64 = std::str::from_utf8(whole).ok()?.parse().ok()?;
    let secs = if n > 100_000_000_000 { n / 1000 } else { n };
    // Up to the end of year 9999, like every other time custody reads.
    (secs <= 253_402_300_799).then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_real_shapes() {
        let p = FormatsPolicy::default();
        let traefik = br#"{"ClientAddr":"[2001:db8::5]:51234","ClientHost":"","DownstreamStatus":401,"RequestMethod":"POST","RequestPath":"/api/v1/auth/login","StartUTC":"2026-11-26T14:54:48.123456789Z","level":"info","msg":"","time":"2026-11-26T14:54:48Z"}"#;
        let r = parse(traefik, JsonPreset::Traefik, &p).unwrap();
        assert_eq!(r.remote.to_string(), "2001:db8::5");
        assert_eq!((r.status, r.time), (401, Some(1_795_704_888)));
        assert_eq!(&r.path[..], b"/api/v1/auth/login");
        let envoy = br#"{"start_time":"2026-11-26T14:54:48.000Z","method":"GET","path":"/health","protocol":"HTTP/1.1","response_code":429,"downstream_remote_address":"198.51.100.7:40112","x_forwarded_for":null}"#;
        let r = parse(envoy, JsonPreset::Envoy, &p).unwrap();
        assert_eq!(
            (r.remote.to_string().as_str(), r.status),
            ("198.51.100.7", 429)
        );
        let nginx = br#"{"time_local":"26/Nov/2026:14:54:48 +0000","remote_addr":"::ffff:192.0.2.1","request":"GET /x?y=1 HTTP/1.1","status":"419","http_x_forwarded_for":"-"}"#;
        let r = parse(nginx, JsonPreset::Nginx, &p).unwrap();
        assert_eq!(
            (r.remote.to_string().as_str(), r.status, r.time),
            ("192.0.2.1", 419, Some(1_795_704_888))
        );
        assert_eq!(&r.path[..], b"/x?y=1");
        assert!(r.xff.is_none());
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"status\":401}",
            b"{\"remote_addr\":\"x\",\"status\":401}",
            b"{\"remote_addr\":\"1.2.3.4\",\"status\":999}",
        ] {
            assert!(parse(bad, JsonPreset::Nginx, &p).is_none());
        }
    }

    #[test]
    fn host_port_and_times() {
        assert_eq!(
            parse_host_port(b"1.2.3.4:80").unwrap().to_string(),
            "1.2.3.4"
        );
        assert_eq!(parse_host_port(b"[::1]:80").unwrap().to_string(), "::1");
        assert_eq!(
            parse_host_port(b"2001:db8::1").unwrap().to_string(),
            "2001:db8::1"
        );
        assert!(parse_host_port(b"host:80").is_none());
        assert!(parse_host_port(b"1.2.3.4:").is_none());
        assert_eq!(parse_any_time(b"1795704888.123"), Some(1_795_704_888));
        assert_eq!(parse_any_time(b"1795704888123"), Some(1_795_704_888));
        assert_eq!(parse_any_time(b"soon"), None);
    }
}
