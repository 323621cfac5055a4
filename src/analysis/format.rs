//! Log formats: which one a file is written in (detected from its first lines, or chosen), the
//! `kubectl logs --timestamps` and CRI prefixes any of them may carry, and turning one line of any
//! format into a `Request`.

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;

use regex::bytes::Regex;

use super::json::{self, JsonPreset};
use super::parse::{self, TimeCache};
use crate::policy::FormatsPolicy;

/// One request, whatever format it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The address the request came from (the peer of the server that logged it).
    pub remote: IpAddr,
    /// The X-Forwarded-For header, when the format records it.
    pub xff: Option<Cow<'a, [u8]>>,
    /// Unix seconds.
    pub time: Option<i64>,
    pub status: u16,
    pub path: Cow<'a, [u8]>,
}

/// A line format.
#[derive(Clone, Debug)]
pub enum Format {
    /// NCSA common or combined (nginx, Apache), optionally with a trailing X-Forwarded-For field.
    Combined,
    /// JSON lines, with the field names of a preset.
    Json(JsonPreset),
    /// A custom regular expression from the formats policy.
    Custom(String, Regex),
}

impl Format {
    /// The name shown in summaries: `combined`, `json:envoy`, `custom:NAME`.
    pub fn name(&self) -> String {
        match self {
            Format::Combined => "combined".into(),
            Format::Json(p) => format!("json:{}", p.name()),
            Format::Custom(n, _) => format!("custom:{n}"),
        }
    }

    /// Parses one line (without its line feed); `None` when it is not a request in this format.
    pub fn parse<'a>(
        &self,
        line: &'a [u8],
        times: &mut TimeCache,
        policy: &FormatsPolicy,
    ) -> Option<Request<'a>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Format::Custom(_, re) = self {
            // A custom format may itself start with an RFC 3339 time: the whole line first.
            if let Some(request) = parse_custom(re, line) {
                return Some(request);
            }
        }
        let (prefix_time, line) = strip_prefix(line);
        let mut request = match self {
            Format::Combined => {
                let f = parse::parse_fields(line, times)?;
                Request {
                    remote: parse::parse_ip(f.ip)?,
                    xff: if policy.trusted_proxies().is_empty() {
                        None
                    } else {
                        parse::trailing_xff(f.tail).map(Cow::Borrowed)
                    },
                    time: f.time,
                    status: f.status,
                    // Only failures are counted by path; other requests skip the split.
                    path: Cow::Borrowed(if is_auth_failure(f.status) {
                        parse::split_request(f.request).1
                    } else {
                        &[]
                    }),
                }
            }
            Format::Json(preset) => json::parse(line, *preset, policy)?,
            Format::Custom(_, re) => parse_custom(re, line)?,
        };
        request.time = request.time.or(prefix_time);
        Some(request)
    }
}

fn is_auth_failure(status: u16) -> bool {
    super::AUTH_FAILURE_CODES.contains(&status)
}

/// What `--format` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatChoice {
    Auto,
    Combined,
    /// JSON lines: the preset is detected, falling back to the policy's field names.
    Json,
    /// JSON lines read with the policy's `json_fields`, whatever fields they have.
    JsonFields,
    Preset(JsonPreset),
    Custom(String),
}

impl FromStr for FormatChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => FormatChoice::Auto,
            "combined" | "common" => FormatChoice::Combined,
            "json" => FormatChoice::Json,
            "json-fields" => FormatChoice::JsonFields,
            "nginx-json" => FormatChoice::Preset(JsonPreset::Nginx),
            "envoy" => FormatChoice::Preset(JsonPreset::Envoy),
            "traefik" => FormatChoice::Preset(JsonPreset::Traefik),
            _ => match s.strip_prefix("custom:") {
                Some(name) if !name.is_empty() => FormatChoice::Custom(name.to_owned()),
                _ => {
                    return Err(format!(
                        "unknown format {s:?}: use auto, combined, json, json-fields, nginx-json, envoy, traefik or custom:NAME"
                    ))
                }
            },
        })
    }
}

/// The format for a file: as chosen, or detected from `sample` (its first bytes).
pub fn resolve(
    choice: &FormatChoice,
    sample: &[u8],
    policy: &FormatsPolicy,
) -> Result<Format, String> {
    let custom = |name: &str| {
        policy
            .custom_formats()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(n, re)| Format::Custom(n.clone(), re.clone()))
            .ok_or_else(|| format!("no custom format {name:?} in the formats policy"))
    };
    Ok(match choice {
        FormatChoice::Auto => detect(sample, policy),
        FormatChoice::Combined => Format::Combined,
        FormatChoice::Json => Format::Json(json::detect_preset(
            first_lines(sample)
                .next()
                .map_or(&b""[..], |l| strip_prefix(l).1),
        )),
        FormatChoice::JsonFields => Format::Json(JsonPreset::Configured),
        FormatChoice::Preset(p) => Format::Json(*p),
        FormatChoice::Custom(name) => custom(name)?,
    })
}

/// Up to 20 non-empty lines of `sample` as written; a cut-off last line is left out.
fn first_lines(sample: &[u8]) -> impl Iterator<Item = &[u8]> {
    let complete = match memchr::memrchr(b'\n', sample) {
        Some(i) => &sample[..i],
        None => sample,
    };
    complete
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !strip_prefix(l).1.is_empty())
        .take(20)
}

/// Detects the format from a file's first lines: JSON when they are JSON objects; otherwise the
/// first of combined and the custom formats that parses the most of them.
pub fn detect(sample: &[u8], policy: &FormatsPolicy) -> Format {
    let lines: Vec<&[u8]> = first_lines(sample).collect();
    let bodies: Vec<&[u8]> = lines.iter().map(|l| strip_prefix(l).1).collect();
    if bodies.iter().filter(|l| l.first() == Some(&b'{')).count() * 2 > bodies.len() {
        let first_json = bodies
            .iter()
            .find(|l| l.first() == Some(&b'{'))
            .copied()
            .unwrap_or(b"");
        return Format::Json(json::detect_preset(first_json));
    }
    let mut times = TimeCache::default();
    let mut best = (Format::Combined, 0usize);
    let candidates = std::iter::once(Format::Combined).chain(
        policy
            .custom_formats()
            .iter()
            .map(|(n, re)| Format::Custom(n.clone(), re.clone())),
    );
    for format in candidates {
        let parsed = lines
            .iter()
            .filter(|l| format.parse(l, &mut times, policy).is_some())
            .count();
        if parsed > best.1 {
            best = (format, parsed);
        }
    }
    best.0
}

/// Removes a CRI (`<RFC 3339> stdout F `) or `kubectl logs --timestamps` (`<RFC 3339> `) prefix.
pub fn strip_prefix(line: &[u8]) -> (Option<i64>, &[u8]) {
    let looks_like = line.len() > 20
        && line[4] == b'-'
        && line[..4].iter().all(u8::is_ascii_digit)
        && line[7] == b'-'
        && line[10] == b'T';
    if !looks_like {
        return (None, line);
    }
    let Some(space) = memchr::memchr(b' ', line) else {
        return (None, line);
    };
    let Some(time) = parse::parse_rfc3339(&line[..space]) else {
        return (None, line);
    };
    let rest = &line[space + 1..];
    // CRI: stream name, then F (full line) or P (partial line).
    let rest = match rest.get(..9) {
        Some(b"stdout F " | b"stderr F " | b"stdout P " | b"stderr P ") => &rest[9..],
        _ => rest,
    };
    (Some(time), rest)
}

fn parse_custom<'a>(re: &Regex, line: &'a [u8]) -> Option<Request<'a>> {
    let caps = re.captures(line)?;
    let status = std::str::from_utf8(caps.name("status")?.as_bytes())
        .ok()?
        .parse()
        .ok()?;
    if !(100..=599).contains(&status) {
        return None;
    }
    Some(Request {
        remote: json::parse_host_port(caps.name("ip")?.as_bytes())?,
        xff: caps.name("xff").map(|m| Cow::Borrowed(m.as_bytes())),
        time: caps
            .name("time")
            .and_then(|m| json::parse_any_time(m.as_bytes())),
        status,
        path: Cow::Borrowed(caps.name("path").map_or(&b""[..], |m| m.as_bytes())),
    })
}

/// The client of a request: the remote address, or, when the request came through one of our
/// trusted proxies, the right-most X-Forwarded-For hop that is not one of them.
pub fn client_ip(request: &Request<'_>, policy: &FormatsPolicy) -> IpAddr {
    let Some(xff) = &request.xff else {
        return request.remote;
    };
    if !policy.is_trusted_proxy(&request.remote) {
        return request.remote;
    }
    let mut hops = xff
        .split(|b| *b == b',')
        .map(|h| h.trim_ascii())
        .filter(|h| !h.is_empty() && *h != b"-")
        .rev();
    let mut last_valid = request.remote;
    for hop in hops.by_ref() {
        let Some(ip) = json::parse_host_port(hop) else {
            // A hop that is not an address cannot be trusted past; the last good hop stands.
            return last_valid;
        };
        if !policy.is_trusted_proxy(&ip) {
            return ip;
        }
        last_valid = ip;
    }
    last_valid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> FormatsPolicy {
        FormatsPolicy::parse("formats.yaml", text).unwrap()
    }

    #[test]
    fn cri_and_kubectl_prefixes() {
        let line = b"2026-11-26T14:54:48.5Z stdout F 1.2.3.4 - - [26/Nov/2026:14:54:48 +0000] \"GET / HTTP/1.1\" 401 0";
        let (t, rest) = strip_prefix(line);
        assert_eq!(t, Some(1_795_704_888));
        assert!(rest.starts_with(b"1.2.3.4 "));
        let (_, rest) = strip_prefix(b"2026-11-26T14:54:48Z 1.2.3.4 x");
        assert_eq!(rest, b"1.2.3.4 x");
        assert_eq!(strip_prefix(b"2001:db8::1 - - x").1, b"2001:db8::1 - - x");
    }

    #[test]
    fn forwarded_for_is_used_only_behind_trusted_proxies() {
        let p = policy("client_ip: {trusted_proxies: [10.0.0.0/8, 192.168.0.0/16]}");
        let req = |remote: &str, xff: Option<&'static str>| Request {
            remote: remote.parse().unwrap(),
            xff: xff.map(|x| Cow::Borrowed(x.as_bytes())),
            time: None,
            status: 200,
            path: Cow::Borrowed(b""),
        };
        // From a trusted proxy: the right-most untrusted hop.
        let r = req("10.0.0.5", Some("198.51.100.1, 203.0.113.9, 192.168.1.1"));
        assert_eq!(client_ip(&r, &p).to_string(), "203.0.113.9");
        // Not from a proxy: the header is the client's own claim and is ignored.
        let r = req("203.0.113.50", Some("1.1.1.1"));
        assert_eq!(client_ip(&r, &p).to_string(), "203.0.113.50");
        // Every hop trusted: the left-most.
        let r = req("10.0.0.5", Some("10.1.1.1, 10.2.2.2"));
        assert_eq!(client_ip(&r, &p).to_string(), "10.1.1.1");
        // A garbage hop stops the walk.
        let r = req("10.0.0.5", Some("198.51.100.1, garbage"));
        assert_eq!(client_ip(&r, &p).to_string(), "10.0.0.5");
        // IPv6 with port, and mapped IPv4.
        let r = req("10.0.0.5", Some("[2001:db8::7]:443"));
        assert_eq!(client_ip(&r, &p).to_string(), "2001:db8::7");
        let r = req("10.0.0.5", Some("::ffff:198.51.100.3"));
        assert_eq!(client_ip(&r, &p).to_string(), "198.51.100.3");
        // No trusted proxies: never used.
        let none = policy("{}");
        let r = req("10.0.0.5", Some("198.51.100.1"));
        assert_eq!(client_ip(&r, &none).to_string(), "10.0.0.5");
    }

    #[test]
    fn detects_each_format() {
        let p = policy("custom: [{name: pipes, pattern: '^(?P<ip>[^|]+)\\|(?P<status>\\d{3})\\|(?P<path>[^|]*)$'}]");
        let combined =
            b"1.2.3.4 - - [26/Nov/2026:14:54:48 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n";
        assert_eq!(detect(combined, &p).name(), "combined");
        assert_eq!(
            detect(
                b"{\"DownstreamStatus\":401,\"ClientAddr\":\"1.2.3.4:5\"}\n",
                &p
            )
            .name(),
            "json:traefik"
        );
        assert_eq!(
            detect(b"{\"response_code\":401}\n", &p).name(),
            "json:envoy"
        );
        assert_eq!(
            detect(b"{\"remote_addr\":\"1.2.3.4\",\"status\":\"401\"}\n", &p).name(),
            "json:nginx"
        );
        assert_eq!(
            detect(b"{\"client_ip\":\"1.2.3.4\",\"status\":401}\n", &p).name(),
            "json:configured"
        );
        assert_eq!(
            detect(b"1.2.3.4|401|/login\n5.6.7.8|200|/\n", &p).name(),
            "custom:pipes"
        );
        let cri = b"2026-11-26T14:54:48Z stdout F {\"response_code\":401}\n";
        assert_eq!(detect(cri, &p).name(), "json:envoy");
    }
}
