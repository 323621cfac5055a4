//! The analysis: streams log bytes line by line through the parser, counts requests by status and
//! by client, and applies the detection policy to name suspicious clients. Memory is bounded by the
//! number of distinct clients, never by the size of the input.

pub mod parallel;
pub mod parse;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::policy::DetectionPolicy;
use crate::timefmt;

/// The statuses the runbook calls authentication failures: unauthorised, forbidden, page expired
/// (Laravel's CSRF failure) and too many requests.
pub const AUTH_FAILURE_CODES: [u16; 4] = [401, 403, 419, 429];

/// A line longer than this is counted as unparsed and not kept.
pub const MAX_LINE: usize = 64 * 1024;

/// The length of a Common Log Format time, `17/May/2015:10:05:03 +0000`.
const CLF_TIME_LEN: usize = 26;

/// How many unparsed lines are kept as samples.
const MAX_SAMPLES: usize = 5;
/// How much of an unparsed line a sample keeps.
const SAMPLE_CHARS: usize = 200;

/// One client's counts; kept small, since there is one per distinct address.
#[derive(Clone, Debug)]
struct ClientStats {
    requests: u64,
    /// Responses per code of `AUTH_FAILURE_CODES`, in that order.
    auth: [u64; 4],
    /// Earliest and latest request time (Unix seconds); `i64::MAX`/`i64::MIN` until one is seen.
    first: i64,
    last: i64,
}

impl Default for ClientStats {
    fn default() -> Self {
        Self {
            requests: 0,
            auth: [0; 4],
            first: i64::MAX,
            last: i64::MIN,
        }
    }
}

impl ClientStats {
    fn auth_total(&self) -> u64 {
        self.auth.iter().sum()
    }

    fn count_of(&self, code: u16) -> u64 {
        AUTH_FAILURE_CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.auth[i])
    }

    fn add(&mut self, other: &ClientStats) {
        self.requests += other.requests;
        for (a, b) in self.auth.iter_mut().zip(other.auth) {
            *a += b;
        }
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }

    fn first_seen(&self) -> Option<i64> {
        (self.first != i64::MAX).then_some(self.first)
    }

    fn last_seen(&self) -> Option<i64> {
        (self.last != i64::MIN).then_some(self.last)
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Counts over everything fed to it, across any number of sources. Analyzers of separate parts
/// of the input can be merged, which is how the analysis uses more than one core.
#[derive(Default)]
pub struct Analyzer {
    lines: u64,
    parsed: u64,
    unparsed: u64,
    /// Requests per status, indexed by status − 100.
    status: Vec<u64>,
    /// Counts per client address (IPv4-mapped IPv6 addresses are their IPv4 address).
    clients: FastMap<IpAddr, ClientStats>,
    samples: Vec<UnparsedSample>,
    source: String,
    /// Byte offset in the current source of the next byte fed.
    offset: u64,
    /// Byte offset in the current source of the line being read.
    line_start: u64,
    /// The part of a line that ended one chunk, waiting for the rest.
    carry: Vec<u8>,
    /// The current line passed `MAX_LINE`; its remainder is skipped.
    overlong: bool,
    /// The last time field parsed, and its value: consecutive lines mostly share a second.
    last_time: ([u8; CLF_TIME_LEN], Option<i64>),
}

/// An unparsed line kept so an analyst can see what the parser did not understand.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnparsedSample {
    pub source: String,
    /// Byte offset of the line's start in its source.
    pub offset: u64,
    /// The line's start, with bytes that are not UTF-8 replaced.
    pub text: String,
}

impl Analyzer {
    pub fn new() -> Self {
        Self {
            status: vec![0; 500],
            ..Self::default()
        }
    }

    /// Starts a new source; sample offsets count from its first byte.
    pub fn begin_source(&mut self, name: &str) {
        self.begin_source_at(name, 0);
    }

    /// Starts a new source whose first byte fed is at `offset` (a part of a larger file).
    pub fn begin_source_at(&mut self, name: &str, offset: u64) {
        self.finish_source();
        self.source = name.to_owned();
        self.offset = offset;
        self.line_start = offset;
    }

    /// Feeds the next bytes of the current source; lines may span chunks.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            let (head, rest) = (&chunk[..nl], &chunk[nl + 1..]);
            if self.carry.is_empty() && !self.overlong && head.len() <= MAX_LINE {
                self.line(head, self.line_start);
            } else if self.carry.is_empty() && !self.overlong {
                // Over the limit within one chunk: the same verdict as across chunks.
                self.overlong = true;
                self.line(head, self.line_start);
            } else {
                self.extend_carry(head);
                let line = std::mem::take(&mut self.carry);
                self.line(&line, self.line_start);
                self.carry = line;
                self.carry.clear();
            }
            self.overlong = false;
            self.offset += nl as u64 + 1;
            self.line_start = self.offset;
            chunk = rest;
        }
        self.extend_carry(chunk);
        self.offset += chunk.len() as u64;
    }

    fn extend_carry(&mut self, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        if self.carry.len() + bytes.len() > MAX_LINE {
            self.overlong = true;
            self.carry = Vec::new();
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }

    /// Ends the current source: a last line without a line feed still counts.
    pub fn finish_source(&mut self) {
        if !self.carry.is_empty() || self.overlong {
            let line = std::mem::take(&mut self.carry);
            self.line(&line, self.line_start);
            self.overlong = false;
            self.line_start = self.offset;
        }
    }

    fn line(&mut self, line: &[u8], offset: u64) {
        self.lines += 1;
        if self.overlong {
            self.unparsed(b"(line longer than 64 KiB)", offset);
            return;
        }
        let Some(f) = parse::parse_fields(line) else {
            self.unparsed(line, offset);
            return;
        };
        let Some(ip) = parse::parse_ip(f.ip) else {
            self.unparsed(line, offset);
            return;
        };
        let time = self.time_of(f.clf_time).or(f.prefix_time);
        self.parsed += 1;
        self.status[usize::from(f.status) - 100] += 1;
        let stats = self.clients.entry(ip).or_default();
        stats.requests += 1;
        if let Some(i) = AUTH_FAILURE_CODES.iter().position(|c| *c == f.status) {
            stats.auth[i] += 1;
        }
        if let Some(t) = time {
            stats.first = stats.first.min(t);
            stats.last = stats.last.max(t);
        }
    }

    fn time_of(&mut self, field: &[u8]) -> Option<i64> {
        let Ok(field) = <[u8; CLF_TIME_LEN]>::try_from(field) else {
            return None;
        };
        if self.last_time.0 != field {
            self.last_time = (field, parse::parse_clf_time(&field));
        }
        self.last_time.1
    }

    fn unparsed(&mut self, line: &[u8], offset: u64) {
        self.unparsed += 1;
        if self.samples.len() < MAX_SAMPLES {
            let text: String = String::from_utf8_lossy(line)
                .chars()
                .take(SAMPLE_CHARS)
                .collect();
            self.samples.push(UnparsedSample {
                source: self.source.clone(),
                offset,
                text,
            });
        }
    }

    /// Adds the counts of `other`, which analysed input that comes after this one's.
    pub fn merge(&mut self, mut other: Analyzer) {
        other.finish_source();
        self.lines += other.lines;
        self.parsed += other.parsed;
        self.unparsed += other.unparsed;
        for (a, b) in self.status.iter_mut().zip(&other.status) {
            *a += b;
        }
        for (ip, stats) in &other.clients {
            self.clients.entry(*ip).or_default().add(stats);
        }
        let room = MAX_SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }

    /// The summary over everything fed so far, with the `top` busiest clients.
    pub fn summary(&mut self, policy: &DetectionPolicy, top: usize) -> Summary {
        self.finish_source();
        let by_ip = &self.clients;
        let mut by_requests: Vec<(&IpAddr, &ClientStats)> = by_ip.iter().collect();
        by_requests.sort_unstable_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(b.0)));
        let top_ips = by_requests
            .iter()
            .take(top)
            .map(|(ip, c)| TopIp {
                ip: ip.to_string(),
                requests: c.requests,
                auth_failures: c.auth_total(),
                first_seen: c.first_seen().map(timefmt::unix_rfc3339),
                last_seen: c.last_seen().map(timefmt::unix_rfc3339),
            })
            .collect();
        let mut auth_failures = BTreeMap::new();
        for (i, code) in AUTH_FAILURE_CODES.iter().enumerate() {
            let n: u64 = by_ip.values().map(|c| c.auth[i]).sum();
            auth_failures.insert(code.to_string(), n);
        }
        let first = by_ip.values().filter_map(ClientStats::first_seen).min();
        let last = by_ip.values().filter_map(ClientStats::last_seen).max();
        Summary {
            lines: self.lines,
            parsed: self.parsed,
            unparsed: self.unparsed,
            unique_ips: by_ip.len() as u64,
            status: self
                .status
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, n)| ((i + 100).to_string(), *n))
                .collect(),
            auth_failures,
            first_seen: first.map(timefmt::unix_rfc3339),
            last_seen: last.map(timefmt::unix_rfc3339),
            top_ips,
            suspicious: suspicious(by_ip, policy),
            unparsed_samples: self.samples.clone(),
        }
    }
}

fn suspicious(clients: &FastMap<IpAddr, ClientStats>, policy: &DetectionPolicy) -> Vec<Suspicious> {
    let mut found = Vec::new();
    for (ip, client) in clients {
        if policy.is_allowed(ip) {
            continue;
        }
        for rule in &policy.rules {
            let count: u64 = rule.codes.iter().map(|c| client.count_of(*c)).sum();
            if count >= rule.min_count {
                let codes: Vec<String> = rule.codes.iter().map(u16::to_string).collect();
                found.push(Suspicious {
                    ip: ip.to_string(),
                    rule: rule.name.clone(),
                    reason: format!(
                        "{count} responses with status {} (rule {}: at least {})",
                        codes.join("/"),
                        rule.name,
                        rule.min_count
                    ),
                    requests: client.requests,
                    auth_failures: client.auth_total(),
                    first_seen: client.first_seen().map(timefmt::unix_rfc3339),
                    last_seen: client.last_seen().map(timefmt::unix_rfc3339),
                });
                break;
            }
        }
    }
    found.sort_by(|a, b| {
        b.auth_failures
            .cmp(&a.auth_failures)
            .then_with(|| a.ip.cmp(&b.ip))
    });
    found
}

/// The analysis result: the schema of `analyze --json` and of `data/analysis/summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
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
    pub unparsed_samples: Vec<UnparsedSample>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopIp {
    pub ip: String,
    pub requests: u64,
    pub auth_failures: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Suspicious {
    pub ip: String,
    pub reason: String,
    pub rule: String,
    pub requests: u64,
    pub auth_failures: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

impl Summary {
    pub fn auth_failure_total(&self) -> u64 {
        self.auth_failures.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ip: &str, status: u16) -> String {
        format!(
            "{ip} - - [17/May/2015:10:05:03 +0000] \"GET /x HTTP/1.1\" {status} 401 \"-\" \"-\"\n"
        )
    }

    #[test]
    fn counts_across_chunk_boundaries_and_a_final_line_without_newline() {
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&line(
                &format!("10.0.0.{}", i % 3),
                if i % 5 == 0 { 401 } else { 200 },
            ));
        }
        text.push_str("garbage\n");
        text.push_str(line("10.0.0.9", 403).trim_end());
        for chunk_size in [1, 7, 64, 4096] {
            let mut a = Analyzer::new();
            a.begin_source("t");
            for chunk in text.as_bytes().chunks(chunk_size) {
                a.feed(chunk);
            }
            let s = a.summary(&DetectionPolicy::default(), 10);
            assert_eq!(s.lines, 52, "chunk {chunk_size}");
            assert_eq!(s.parsed, 51);
            assert_eq!(s.unparsed, 1);
            assert_eq!(s.unique_ips, 4);
            assert_eq!(s.auth_failures["401"], 10);
            assert_eq!(s.auth_failures["403"], 1);
            assert_eq!(s.auth_failures["419"], 0);
            assert_eq!(s.status["200"], 40);
            assert_eq!(s.top_ips[0].ip, "10.0.0.0");
            assert_eq!(
                s.unparsed_samples[0].offset,
                text.find("garbage").unwrap() as u64
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_in_any_chunking_give_the_same_summary(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4000),
            lines in proptest::collection::vec(0usize..4, 0..40),
            chunk in 1usize..300,
        ) {
            // Valid lines mixed with arbitrary bytes, fed whole and in pieces.
            let mut input = Vec::new();
            for (i, kind) in lines.iter().enumerate() {
                match kind {
                    0 => input.extend_from_slice(line("10.0.0.1", 401).as_bytes()),
                    1 => input.extend_from_slice(line(&format!("2001:db8::{i:x}"), 200).as_bytes()),
                    _ => input.extend_from_slice(&data[..data.len().min(i * 97)]),
                }
            }
            let mut whole = Analyzer::new();
            whole.begin_source("t");
            whole.feed(&input);
            let mut pieces = Analyzer::new();
            pieces.begin_source("t");
            for c in input.chunks(chunk) {
                pieces.feed(c);
            }
            let policy = DetectionPolicy::default();
            proptest::prop_assert_eq!(whole.summary(&policy, 5), pieces.summary(&policy, 5));
        }
    }

    #[test]
    fn an_overlong_line_is_unparsed_wherever_it_falls() {
        // A valid 401 line padded past MAX_LINE by a long path.
        let long = format!(
            "10.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET /{} HTTP/1.1\" 401 1 \"-\" \"-\"\n",
            "a".repeat(MAX_LINE)
        );
        let short = line("10.0.0.2", 200);
        for text in [format!("{long}{short}"), format!("{short}{long}")] {
            for chunk in [7, 4096, text.len()] {
                let mut a = Analyzer::new();
                a.begin_source("t");
                for c in text.as_bytes().chunks(chunk) {
                    a.feed(c);
                }
                let s = a.summary(&DetectionPolicy::default(), 10);
                assert_eq!((s.lines, s.parsed, s.unparsed), (2, 1, 1), "chunk {chunk}");
                assert_eq!(s.auth_failures["401"], 0);
            }
        }
    }

    #[test]
    fn overlong_lines_are_counted_not_kept() {
        let mut a = Analyzer::new();
        a.begin_source("t");
        a.feed(&vec![b'x'; MAX_LINE * 3]);
        a.feed(b"\n");
        a.feed(line("10.0.0.1", 200).as_bytes());
        let s = a.summary(&DetectionPolicy::default(), 10);
        assert_eq!((s.lines, s.parsed, s.unparsed), (2, 1, 1));
        assert!(a.carry.capacity() <= MAX_LINE * 2);
    }

    #[test]
    fn suspicious_clients_follow_the_policy() {
        let mut a = Analyzer::new();
        a.begin_source("t");
        for _ in 0..25 {
            a.feed(line("203.0.113.9", 401).as_bytes());
            a.feed(line("198.51.100.2", 200).as_bytes());
        }
        let s = a.summary(&DetectionPolicy::default(), 10);
        assert_eq!(s.suspicious.len(), 1);
        assert_eq!(s.suspicious[0].ip, "203.0.113.9");
        assert_eq!(s.suspicious[0].auth_failures, 25);
    }
}
