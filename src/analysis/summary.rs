//! The analysis result (the schema of `analyze --json` and `data/analysis/summary.json`), built
//! from an analyzer's counts, with the detection rules applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    AnalysisLimit, Analyzer, ClientKey, ClientStats, Failures, UnparsedSample, AUTH_FAILURE_CODES,
};
use crate::policy::{DetectionPolicy, Rule};
use crate::timefmt;

/// How many paths the summary lists.
const TOP_PATHS: usize = 20;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Lines read, including unparsed and empty ones.
    pub lines: u64,
    pub parsed: u64,
    pub unparsed: u64,
    pub unique_ips: u64,
    /// Requests per status code.
    pub status: BTreeMap<String, u64>,
    /// Responses per authentication-failure code; all four codes are always present.
    pub auth_failures: BTreeMap<String, u64>,
    /// The earliest and latest request time seen (RFC 3339, UTC).
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// The busiest clients, by requests, descending (ties by address).
    pub top_ips: Vec<TopIp>,
    /// Clients that a detection rule flagged, most auth failures first.
    pub suspicious: Vec<Suspicious>,
    /// Paths with the most authentication failures (query strings dropped).
    pub auth_failure_paths: Vec<PathFailures>,
    /// Requests per minute (UTC), for minutes with requests.
    pub timeline: Vec<Minute>,
    /// Each source and the format it was read in.
    pub sources: Vec<SourceFormat>,
    pub unparsed_samples: Vec<UnparsedSample>,
    /// Present when the analysis reached its memory budget: exactly what it did not count one
    /// by one. Absent when every client was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<AnalysisLimit>,
    /// True when the analysis failed and this summary counts nothing (the logs are sealed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub analysis_failed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopIp {
    pub ip: String,
    pub requests: u64,
    pub auth_failures: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Suspicious {
    pub ip: String,
    /// Why, in words.
    pub reason: String,
    /// The rule that matched.
    pub rule: String,
    pub requests: u64,
    pub auth_failures: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub evidence: Evidence,
    /// The sources (bag paths) in which this client's authentication failures were seen; with
    /// more than 63 sources, the later ones are summed up as `…`.
    pub failed_in: Vec<String>,
    /// The pods whose logs those are, when the logs came from Kubernetes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<String>,
}

/// What the rule counted, and where to look in the preserved logs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Evidence {
    /// The responses the rule counted (in the window, for window rules).
    pub count: u64,
    /// The window rule's length (`5m`), if any.
    pub window: Option<String>,
    /// The first and last minute of the busiest window (RFC 3339), for window rules.
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    /// For ratio rules: the share of requests that failed.
    pub ratio: Option<f64>,
    /// The first of this client's failure lines: source and byte offset of the line's start.
    pub lines: Vec<LineRef>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LineRef {
    pub source: String,
    pub offset: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathFailures {
    /// The path, or `(other paths)` for failures past the number of paths tracked.
    pub path: String,
    pub total: u64,
    /// Failures per code.
    pub by_code: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Minute {
    pub minute: String,
    pub requests: u64,
    /// 4xx responses.
    pub client_errors: u64,
    /// 5xx responses.
    pub server_errors: u64,
    pub auth_failures: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceFormat {
    pub source: String,
    pub format: String,
}

impl Summary {
    pub fn auth_failure_total(&self) -> u64 {
        self.auth_failures.values().sum()
    }
}

fn time(t: Option<i64>) -> Option<String> {
    t.map(timefmt::unix_rfc3339)
}

pub(super) fn build(a: &Analyzer, policy: &DetectionPolicy, top: usize) -> Summary {
    let mut auth_failures = BTreeMap::new();
    for (i, code) in AUTH_FAILURE_CODES.iter().enumerate() {
        let n: u64 = a.failing.values().map(|f| f.auth[i]).sum::<u64>() + a.untracked_auth[i];
        auth_failures.insert(code.to_string(), n);
    }
    Summary {
        lines: a.lines,
        parsed: a.parsed,
        unparsed: a.unparsed,
        unique_ips: a.clients.len() as u64,
        status: a
            .status
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| ((i + 100).to_string(), *n))
            .collect(),
        auth_failures,
        first_seen: time(a.clients.iter().filter_map(|(_, c)| c.first_seen()).min()),
        last_seen: time(a.clients.iter().filter_map(|(_, c)| c.last_seen()).max()),
        top_ips: top_ips(a, top),
        suspicious: suspicious(a, policy),
        auth_failure_paths: paths(a),
        timeline: timeline(a),
        sources: a
            .sources
            .iter()
            .map(|(source, format)| SourceFormat {
                source: source.clone(),
                format: format.clone(),
            })
            .collect(),
        unparsed_samples: a.samples.clone(),
        limit: a.frozen.then(|| AnalysisLimit {
            clients_tracked: a.clients.len() as u64,
            requests_not_attributed: a.clients.untracked(),
            ..a.limit.clone()
        }),
        analysis_failed: false,
    }
}

/// The `top` busiest clients.
fn top_ips(a: &Analyzer, top: usize) -> Vec<TopIp> {
    let auth_total = |ip: &ClientKey| a.failing.get(ip).map_or(0, Failures::total);
    let mut by_requests: Vec<(&ClientKey, &ClientStats)> = a.clients.iter().collect();
    // Only the top entries need full order.
    if top < by_requests.len() && top > 0 {
        by_requests.select_nth_unstable_by(top - 1, |x, y| {
            y.1.requests
                .cmp(&x.1.requests)
                .then_with(|| x.0.addr().cmp(&y.0.addr()))
        });
        by_requests.truncate(top);
    }
    // Busiest first; ties in address order (IPv4 before IPv6, as addresses sort).
    by_requests.sort_unstable_by(|x, y| {
        y.1.requests
            .cmp(&x.1.requests)
            .then_with(|| x.0.addr().cmp(&y.0.addr()))
    });
    by_requests
        .iter()
        .take(top)
        .map(|(ip, c)| TopIp {
            ip: ip.addr().to_string(),
            requests: c.requests,
            auth_failures: auth_total(ip),
            first_seen: time(c.first_seen()),
            last_seen: time(c.last_seen()),
        })
        .collect()
}

/// Requests per minute, in time order.
fn timeline(a: &Analyzer) -> Vec<Minute> {
    let mut timeline: Vec<(&i64, _)> = a.timeline.iter().collect();
    timeline.sort_unstable_by_key(|(m, _)| **m);
    timeline
        .into_iter()
        .map(|(m, c)| Minute {
            minute: timefmt::unix_rfc3339(m * 60),
            requests: c.requests,
            client_errors: c.client_errors,
            server_errors: c.server_errors,
            auth_failures: c.auth_failures,
        })
        .collect()
}

fn by_code(counts: &[u64; 4]) -> BTreeMap<String, u64> {
    AUTH_FAILURE_CODES
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| (c.to_string(), *n))
        .collect()
}

fn paths(a: &Analyzer) -> Vec<PathFailures> {
    let mut all: Vec<PathFailures> = a
        .paths
        .iter()
        .map(|(p, counts)| PathFailures {
            path: String::from_utf8_lossy(p).into_owned(),
            total: counts.iter().sum(),
            by_code: by_code(counts),
        })
        .collect();
    all.sort_by(|x, y| y.total.cmp(&x.total).then_with(|| x.path.cmp(&y.path)));
    all.truncate(TOP_PATHS);
    let other: u64 = a.other_paths.iter().sum();
    if other > 0 {
        all.push(PathFailures {
            path: "(other paths)".into(),
            total: other,
            by_code: by_code(&a.other_paths),
        });
    }
    all
}

/// The mask of `AUTH_FAILURE_CODES` positions a rule counts.
fn code_mask(rule: &Rule) -> [bool; 4] {
    let mut mask = [false; 4];
    for (i, c) in AUTH_FAILURE_CODES.iter().enumerate() {
        mask[i] = rule.codes().contains(c);
    }
    mask
}

fn masked<T: Copy + Into<u64>>(counts: &[T; 4], mask: &[bool; 4]) -> u64 {
    counts
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(n, _)| (*n).into())
        .sum()
}

/// What a rule found for one client.
struct Hit {
    count: u64,
    window: Option<(i64, i64)>,
    ratio: Option<f64>,
    reason: String,
}

fn evaluate(
    rule: &Rule,
    stats: &ClientStats,
    failures: &Failures,
    minutes: &[(i64, [u32; 4])],
) -> Option<Hit> {
    let mask = code_mask(rule);
    let codes: Vec<String> = rule.codes().iter().map(u16::to_string).collect();
    let codes = codes.join("/");
    match rule {
        Rule::Count {
            min_count, name, ..
        } => {
            let count = masked(&failures.auth, &mask);
            (count >= *min_count).then(|| Hit {
                count,
                window: None,
                ratio: None,
                reason: format!("{count} responses {codes} (rule {name}: at least {min_count})"),
            })
        }
        Rule::Window {
            min_count,
            name,
            window,
            ..
        } => {
            let width = i64::from(rule.window_minutes()?);
            let (count, start, end) = busiest_window(minutes, &mask, width);
            (count >= *min_count).then(|| Hit {
                count,
                window: Some((start, end)),
                ratio: None,
                reason: format!(
                    "{count} responses {codes} within {window} (rule {name}: at least {min_count})"
                ),
            })
        }
        Rule::Ratio {
            min_ratio,
            min_requests,
            name,
            ..
        } => {
            let count = masked(&failures.auth, &mask);
            let ratio = count as f64 / stats.requests.max(1) as f64;
            (stats.requests >= *min_requests && ratio >= *min_ratio).then(|| Hit {
                count,
                window: None,
                ratio: Some(ratio),
                reason: format!(
                    "{count} of {} requests ({:.0}%) answered {codes} (rule {name}: at least {:.0}% of at least {min_requests})",
                    stats.requests,
                    ratio * 100.0,
                    min_ratio * 100.0
                ),
            })
        }
    }
}

/// The largest count within any `width` consecutive minutes: (count, first minute, last minute).
fn busiest_window(minutes: &[(i64, [u32; 4])], mask: &[bool; 4], width: i64) -> (u64, i64, i64) {
    let mut per_minute: Vec<(i64, u64)> =
        minutes.iter().map(|(m, c)| (*m, masked(c, mask))).collect();
    per_minute.sort_unstable_by_key(|(m, _)| *m);
    let mut best = (0, 0, 0);
    let mut sum = 0u64;
    let mut left = 0;
    for right in 0..per_minute.len() {
        sum += per_minute[right].1;
        while per_minute[right].0 - per_minute[left].0 >= width {
            sum -= per_minute[left].1;
            left += 1;
        }
        if sum > best.0 {
            best = (sum, per_minute[left].0, per_minute[right].0);
        }
    }
    best
}

fn suspicious(a: &Analyzer, policy: &DetectionPolicy) -> Vec<Suspicious> {
    let mut found = Vec::new();
    // Every rule counts authentication failures, so only clients with some can match.
    for (ip, failures) in &a.failing {
        let Some(stats) = a.clients.get(ip) else {
            continue;
        };
        let addr = ip.addr();
        if policy.is_allowed(&addr) {
            continue;
        }
        let minutes = a.minutes_of(failures);
        let Some((rule, hit)) = policy
            .rules
            .iter()
            .find_map(|r| evaluate(r, stats, failures, &minutes).map(|h| (r, h)))
        else {
            continue;
        };
        found.push(Suspicious {
            ip: addr.to_string(),
            reason: hit.reason,
            rule: rule.name().to_owned(),
            requests: stats.requests,
            auth_failures: failures.total(),
            first_seen: time(stats.first_seen()),
            last_seen: time(stats.last_seen()),
            evidence: Evidence {
                count: hit.count,
                window: match rule {
                    Rule::Window { window, .. } => Some(window.to_string()),
                    _ => None,
                },
                window_start: hit.window.map(|(s, _)| timefmt::unix_rfc3339(s * 60)),
                window_end: hit.window.map(|(_, e)| timefmt::unix_rfc3339(e * 60 + 59)),
                ratio: hit.ratio,
                lines: failures
                    .lines()
                    .map(|(s, offset)| LineRef {
                        source: a.sources.get(s).map(|x| x.0.clone()).unwrap_or_default(),
                        offset,
                    })
                    .collect(),
            },
            failed_in: (0..64)
                .filter(|i| failures.sources & (1u64 << i) != 0)
                .map(|i| match a.sources.get(i) {
                    Some(source) if i < 63 => source.0.clone(),
                    _ => "…".to_owned(),
                })
                .collect(),
            pods: Vec::new(),
        });
    }
    found.sort_by(|x, y| {
        y.auth_failures
            .cmp(&x.auth_failures)
            .then_with(|| x.ip.cmp(&y.ip))
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_window_slides_by_minute() {
        let mask = [true, false, false, false];
        let m = |minute: i64, n: u32| (minute, [n, 0, 0, 0]);
        // 10 at minute 0, 15 at minute 4, 10 at minute 5: within 5 minutes at most 25 (0-4 or 4-5).
        let minutes = [m(5, 10), m(0, 10), m(4, 15)];
        assert_eq!(busiest_window(&minutes, &mask, 5), (25, 0, 4));
        assert_eq!(busiest_window(&minutes, &mask, 1), (15, 4, 4));
        assert_eq!(busiest_window(&minutes, &mask, 6), (35, 0, 5));
        // The same minute arriving twice (merged analyzers) adds up.
        assert_eq!(busiest_window(&[m(3, 2), m(3, 2)], &mask, 1), (4, 3, 3));
        assert_eq!(busiest_window(&[], &mask, 5), (0, 0, 0));
    }
}
