//! The same traffic written in every supported format gives the same answer, and that answer is
//! the runbook pipeline's; client addresses behind trusted proxies; detection rules end to end.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::*;

/// One request of the test traffic.
struct Hit {
    ip: String,
    secs: i64,
    status: u16,
    path: &'static str,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn traffic() -> Vec<Hit> {
    let mut hits = Vec::new();
    let base = 1_795_704_888; // 2026-11-26T14:54:48Z
    for i in 0..3000u64 {
        // A skewed mix of IPv4 and (canonical) IPv6 clients, plus an attacker.
        let n = (i * i * 7 + i) % 97;
        let ip = match i % 10 {
            0..=6 => format!("198.51.{}.{}", n % 3, n),
            7 | 8 => format!("2001:db8::{:x}", n + 1),
            _ => "203.0.113.66".to_string(),
        };
        let status = if ip == "203.0.113.66" {
            [401, 403, 419, 429][(i / 10 % 4) as usize]
        } else {
            [200, 200, 200, 304, 404, 401, 500, 200][(i % 8) as usize]
        };
        hits.push(Hit {
            ip,
            secs: base + (i as i64) / 7,
            status,
            path: ["/api/v1/login", "/api/v1/401/orders", "/health"][(i % 3) as usize],
        });
    }
    hits
}

fn clf_time(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn rfc3339(secs: i64) -> String {
    custody::timefmt::unix_rfc3339(secs)
}

fn port_of(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:51000")
    } else {
        format!("{ip}:51000")
    }
}

fn render(format: &str, hits: &[Hit]) -> String {
    hits.iter()
        .map(|h| {
            let combined = format!(
                "{} - - [{}] \"GET {} HTTP/1.1\" {} {} \"-\" \"agent 401\"",
                h.ip,
                clf_time(h.secs),
                h.path,
                h.status,
                if h.status == 304 { "-".to_string() } else { "1403".to_string() }
            );
            let line = match format {
                "combined" => combined,
                "kubectl" => format!("{}.123456789Z {combined}", rfc3339(h.secs).trim_end_matches('Z')),
                "cri" => format!("{} stdout F {combined}", rfc3339(h.secs)),
                "nginx-json" => serde_json::json!({
                    "time_local": clf_time(h.secs), "remote_addr": h.ip,
                    "request": format!("GET {} HTTP/1.1", h.path), "status": h.status.to_string(),
                    "body_bytes_sent": "1403", "http_user_agent": "agent", "http_x_forwarded_for": "-"
                })
                .to_string(),
                "envoy" => serde_json::json!({
                    "start_time": rfc3339(h.secs), "method": "GET", "path": h.path, "protocol": "HTTP/1.1",
                    "response_code": h.status, "downstream_remote_address": port_of(&h.ip),
                    "x_forwarded_for": null, "user_agent": "agent"
                })
                .to_string(),
                // Traefik leaves ClientHost empty at times; the address comes from ClientAddr.
                "traefik" => serde_json::json!({
                    "ClientAddr": port_of(&h.ip), "ClientHost": "", "DownstreamStatus": h.status,
                    "RequestMethod": "GET", "RequestPath": h.path, "StartUTC": rfc3339(h.secs),
                    "level": "info", "msg": "", "time": rfc3339(h.secs)
                })
                .to_string(),
                "pipes" => format!("{}|{}|{}|{}", rfc3339(h.secs), h.ip, h.status, h.path),
                other => panic!("no rendering {other}"),
            };
            line + "\n"
        })
        .collect()
}

/// (top IPs with their counts, auth failures per code, unique IPs, lines, parsed)
type Answer = (
    Vec<(String, u64, u64)>,
    BTreeMap<String, u64>,
    u64,
    u64,
    u64,
);

fn analyze(sb: &Sandbox, file: &Path, extra: &[&str]) -> (Answer, serde_json::Value) {
    analyze_as(sb, file, extra, "auto")
}

fn analyze_as(
    sb: &Sandbox,
    file: &Path,
    extra: &[&str],
    format: &str,
) -> (Answer, serde_json::Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    args.extend([
        "analyze",
        file.to_str().unwrap(),
        "--top",
        "100",
        "--format",
        format,
    ]);
    let out = sb.run(&args);
    assert_success(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = s["top_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["ip"].as_str().unwrap().to_owned(),
                t["requests"].as_u64().unwrap(),
                t["auth_failures"].as_u64().unwrap(),
            )
        })
        .collect();
    let auth = serde_json::from_value(s["auth_failures"].clone()).unwrap();
    let answer = (
        top,
        auth,
        s["unique_ips"].as_u64().unwrap(),
        s["lines"].as_u64().unwrap(),
        s["parsed"].as_u64().unwrap(),
    );
    (answer, s)
}

#[test]
fn every_format_gives_the_pipelines_answer() {
    let sb = Sandbox::new();
    let hits = traffic();
    let policies = sb.path("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("formats.yaml"),
        "custom:\n  - name: pipes\n    pattern: '^(?P<time>[^|]+)\\|(?P<ip>[^|]+)\\|(?P<status>\\d{3})\\|(?P<path>.*)$'\n",
    )
    .unwrap();
    let combined = sb.path("combined.log");
    std::fs::write(&combined, render("combined", &hits)).unwrap();
    let (reference, _) = analyze(&sb, &combined, &[]);

    // The combined answer is the runbook's: awk for addresses, the status field for failures.
    let pipeline = sh(
        &format!(
            "LC_ALL=C awk '{{print $1}}' {} | sort | uniq -c | sort -rn",
            combined.display()
        ),
        sb.dir.path(),
    );
    let expected: BTreeMap<String, u64> = pipeline
        .lines()
        .map(|l| {
            let mut p = l.split_whitespace();
            let n = p.next().unwrap().parse().unwrap();
            (p.next().unwrap().to_owned(), n)
        })
        .collect();
    let got: BTreeMap<String, u64> = reference
        .0
        .iter()
        .map(|(ip, n, _)| (ip.clone(), *n))
        .collect();
    assert_eq!(got, expected);
    for code in ["401", "403", "419", "429"] {
        let by_field = sh(
            &format!("awk '$9 == {code}' {} | wc -l", combined.display()),
            sb.dir.path(),
        );
        assert_eq!(
            reference.1[code],
            by_field.trim().parse::<u64>().unwrap(),
            "{code}"
        );
    }
    assert_eq!(reference.3, reference.4, "every combined line parses");

    for (format, flag) in [
        ("kubectl", None),
        ("cri", None),
        ("nginx-json", None),
        ("envoy", None),
        ("traefik", None),
        ("pipes", Some("custom:pipes")),
    ] {
        let file = sb.path(&format!("{format}.log"));
        std::fs::write(&file, render(format, &hits)).unwrap();
        let extra = ["--policies", policies.to_str().unwrap()];
        let (answer, summary) = analyze(&sb, &file, &extra);
        assert_eq!(
            answer, reference,
            "{format} (detected as {})",
            summary["sources"][0]["format"]
        );
        // Chosen instead of detected, the answer is the same.
        let chosen = flag.unwrap_or(
            if format.ends_with("json") || format == "envoy" || format == "traefik" {
                "json"
            } else {
                "combined"
            },
        );
        let (answer, _) = analyze_as(&sb, &file, &extra, chosen);
        assert_eq!(answer, reference, "{format} as --format {chosen}");
    }
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_counts() {
    let sb = Sandbox::new();
    let policies = sb.path("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("formats.yaml"),
        "client_ip:\n  trusted_proxies: [10.0.0.0/8]\n",
    )
    .unwrap();
    let mut text = String::new();
    for i in 0..30 {
        // Through the load balancer (10.0.0.2), forwarded for the real client; the client also
        // claims to be 192.0.2.1 in its own header, which is left of the proxy's entry.
        text.push_str(&format!(
            "10.0.0.2 - - [26/Nov/2026:14:54:{:02} +0000] \"POST /login HTTP/1.1\" 401 0 \"-\" \"x\" \"192.0.2.1, 203.0.113.7, 10.0.0.3\"\n",
            i
        ));
    }
    // A client that reaches the gateway directly cannot choose its address with the header.
    text.push_str("198.51.100.4 - - [26/Nov/2026:14:55:00 +0000] \"GET / HTTP/1.1\" 200 0 \"-\" \"x\" \"203.0.113.99\"\n");
    let log = sb.path("lb.log");
    std::fs::write(&log, text).unwrap();
    let (answer, summary) = analyze(&sb, &log, &["--policies", policies.to_str().unwrap()]);
    let ips: Vec<&str> = answer.0.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(ips, ["203.0.113.7", "198.51.100.4"]);
    assert_eq!(summary["suspicious"][0]["ip"], "203.0.113.7");
    // Without trusted proxies (the built-in policies) the header is ignored.
    let defaults = sb.path("no-policies");
    std::fs::create_dir(&defaults).unwrap();
    let (answer, _) = analyze(&sb, &log, &["--policies", defaults.to_str().unwrap()]);
    assert_eq!(answer.0[0].0, "10.0.0.2");
}

#[test]
fn window_ratio_and_allowlist_rules() {
    let sb = Sandbox::new();
    let policies = sb.path("policies");
    std::fs::create_dir(&policies).unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/detection.yaml"),
    )
    .unwrap();
    std::fs::write(
        policies.join("detection.yaml"),
        shipped.replace("allowlist: []", "allowlist: [192.0.2.0/24]"),
    )
    .unwrap();
    let base = 1_795_704_888;
    let mut hits = Vec::new();
    let mut push = |ip: &str, secs: i64, status: u16| {
        hits.push(Hit {
            ip: ip.into(),
            secs,
            status,
            path: "/login",
        })
    };
    for i in 0..25 {
        push("203.0.113.1", base + i * 4, 401); // 25 failures in 100 s: a burst
        push("203.0.113.2", base + i * 120, 401); // 25 failures over 50 minutes…
        push("203.0.113.2", base + i * 120 + 1, 200); // …half of 50 requests: mostly failures
        push("203.0.113.3", base + i * 120, 403); // 25 spread failures among many successes
        for k in 0..4 {
            push("203.0.113.3", base + i * 120 + k, 200);
        }
        push("192.0.2.9", base + i, 429); // a burst, but allowlisted (a health checker)
    }
    for i in 0..120 {
        push("203.0.113.4", base + 3600 + i / 3, 429); // 120 429s within 40 s
    }
    let log = sb.path("rules.log");
    std::fs::write(&log, render("combined", &hits)).unwrap();
    let (_, s) = analyze(&sb, &log, &["--policies", policies.to_str().unwrap()]);
    let found: BTreeMap<String, String> = s["suspicious"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["ip"].as_str().unwrap().to_owned(),
                f["rule"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = [
        ("203.0.113.1", "auth-failure-burst"),
        ("203.0.113.2", "mostly-failures"),
        ("203.0.113.4", "auth-failure-burst"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(found, want);
    let burst = s["suspicious"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ip"] == "203.0.113.1")
        .unwrap();
    assert_eq!(burst["evidence"]["count"], 25);
    assert_eq!(burst["evidence"]["window"], "5m");
    // The evidence offsets point at the client's failure lines in the log.
    let text = std::fs::read(&log).unwrap();
    for line in burst["evidence"]["lines"].as_array().unwrap() {
        let offset = line["offset"].as_u64().unwrap() as usize;
        assert!(
            text[offset..].starts_with(b"203.0.113.1 "),
            "offset {offset}"
        );
        assert!(offset == 0 || text[offset - 1] == b'\n');
    }
}
