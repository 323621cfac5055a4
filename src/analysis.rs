//! The analysis: streams log bytes line by line through the file's format parser, counts requests
//! by status, by client, by minute and (for authentication failures) by path, and applies the
//! detection policy to name suspicious clients with their evidence. Memory is bounded by the number
//! of distinct clients, never by the size of the input; analyzers of separate parts of the input
//! merge, which is how the analysis uses every core.

mod budget;
pub mod chart;
mod clients;
pub mod format;
pub mod json;
pub mod parallel;
pub mod parse;
pub mod report;
pub mod summary;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::policy::{DetectionPolicy, FormatsPolicy};
pub use budget::AnalysisLimit;
use format::Format;
use parse::TimeCache;
pub use summary::{Summary, Suspicious, TopIp};

pub use crate::policy::detection::AUTH_FAILURE_CODES;

/// A line longer than this is counted as unparsed and not kept.
pub const MAX_LINE: usize = 64 * 1024;

/// How many unparsed lines are kept as samples.
const MAX_SAMPLES: usize = 5;
/// How much of an unparsed line a sample keeps.
const SAMPLE_CHARS: usize = 200;
/// How many lines of each suspicious client are kept as evidence.
const MAX_EVIDENCE: usize = 3;
/// How many distinct paths each analyzer counts failures for; failures on later new paths are
/// counted together as "other", so hostile unique paths cannot grow memory without bound.
/// Merging adds path counts without a cap, so the merged counts are exact whenever no part
/// reached this limit.
const MAX_PATHS: usize = 100_000;
/// How many of a client's most recent minute records are searched for the minute of a failure
/// before a new record is added (lines from several pods arrive slightly out of order).
const RECENT_MINUTES: usize = 8;
/// The minute arena is compacted (one record per client and minute) when it passes this size
/// and twice its size after the last compaction.
const COMPACT_MINUTES_AT: usize = 1 << 20;
/// How much of a path is kept (query strings are dropped).
const MAX_PATH_LEN: usize = 256;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A client address as one 128-bit number (IPv4 as its IPv4-mapped IPv6 form): hashed in one
/// step and compared in one instruction, which matters in the per-client map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ClientKey(u128);

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => Self(u128::from(v6)),
        }
    }

    fn addr(self) -> IpAddr {
        crate::net::normalise_ip(IpAddr::V6(std::net::Ipv6Addr::from(self.0)))
    }
}

/// One client's counts; kept small (24 bytes), since there is one per distinct address and the
/// map of them is what the analysis spends its time in. Failure counts live in `Failures`.
#[derive(Clone, Debug)]
struct ClientStats {
    requests: u64,
    /// Earliest and latest request time (Unix seconds); `i64::MAX`/`i64::MIN` until one is seen.
    first: i64,
    last: i64,
}

impl Default for ClientStats {
    fn default() -> Self {
        Self {
            requests: 0,
            first: i64::MAX,
            last: i64::MIN,
        }
    }
}

impl ClientStats {
    fn add(&mut self, other: &ClientStats) {
        self.requests += other.requests;
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

/// What is kept of a client's authentication failures: counts per code, a chain of per-minute
/// counts (for window rules) in the analyzer's arena, and where the first few are in the logs
/// (the evidence). No allocation per client: there can be hundreds of thousands.
#[derive(Clone, Debug, Default)]
struct Failures {
    /// Responses per code of `AUTH_FAILURE_CODES`, in that order.
    auth: [u64; 4],
    /// 1 + the index in `Analyzer::minutes` of this client's latest minute record; 0 for none.
    last_minute: u32,
    /// The first failure lines, each (source index << 48 | byte offset).
    lines: [u64; MAX_EVIDENCE],
    lines_len: u8,
    /// The sources this client failed in: bit i for source i below 63; bit 63 for any later one.
    sources: u64,
}

fn source_bit(source: usize) -> u64 {
    1 << source.min(63)
}

/// One client's failures in one minute, linked to the client's previous minute record.
#[derive(Clone, Copy, Debug)]
struct MinuteRecord {
    minute: i64,
    counts: [u32; 4],
    /// 1 + the index of the previous record of the same client; 0 for none.
    prev: u32,
}

/// Adds a failure to one of the client's few most recent minute records if one is for `minute`.
fn bump_recent(arena: &mut [MinuteRecord], mut next: u32, minute: i64, code: usize) -> bool {
    for _ in 0..RECENT_MINUTES {
        let Some(i) = next.checked_sub(1) else {
            return false;
        };
        let Some(r) = arena.get_mut(i as usize) else {
            return false;
        };
        if r.minute == minute {
            r.counts[code] = r.counts[code].saturating_add(1);
            return true;
        }
        next = r.prev;
    }
    false
}

/// Packs a line reference into 64 bits; `None` past 65,535 sources or 256 TiB.
fn pack_line(source: usize, offset: u64) -> Option<u64> {
    (source < 1 << 16 && offset < 1 << 48).then_some((source as u64) << 48 | offset)
}

fn unpack_line(packed: u64) -> (usize, u64) {
    ((packed >> 48) as usize, packed & ((1 << 48) - 1))
}

impl Failures {
    fn total(&self) -> u64 {
        self.auth.iter().sum()
    }

    fn lines(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.lines[..usize::from(self.lines_len)]
            .iter()
            .map(|p| unpack_line(*p))
    }

    fn add_line(&mut self, source: usize, offset: u64) {
        if usize::from(self.lines_len) < MAX_EVIDENCE {
            if let Some(packed) = pack_line(source, offset) {
                self.lines[usize::from(self.lines_len)] = packed;
                self.lines_len += 1;
            }
        }
    }
}

/// Requests in one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct MinuteCounts {
    requests: u64,
    client_errors: u64,
    server_errors: u64,
    auth_failures: u64,
}

impl MinuteCounts {
    fn add(&mut self, o: &MinuteCounts) {
        self.requests += o.requests;
        self.client_errors += o.client_errors;
        self.server_errors += o.server_errors;
        self.auth_failures += o.auth_failures;
    }
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

/// Counts over everything fed to it, across any number of sources.
pub struct Analyzer {
    formats: Arc<FormatsPolicy>,
    lines: u64,
    parsed: u64,
    unparsed: u64,
    /// Requests per status, indexed by status − 100.
    status: Vec<u64>,
    /// Counts per client address (IPv4-mapped IPv6 addresses are their IPv4 address).
    clients: clients::ClientTable,
    /// Only clients with authentication failures.
    failing: FastMap<ClientKey, Failures>,
    /// Every failing client's per-minute records, chained per client from `Failures::last_minute`.
    minutes: Vec<MinuteRecord>,
    /// The arena size at which it is next compacted.
    compact_at: usize,
    timeline: FastMap<i64, MinuteCounts>,
    /// The minute being counted and its counts, added to `timeline` when the minute changes, so
    /// the common case (the same minute as the line before) needs no map lookup.
    current_minute: (i64, MinuteCounts),
    /// Authentication failures per path, per code.
    paths: FastMap<Box<[u8]>, [u64; 4]>,
    /// Failures on paths past `MAX_PATHS`.
    other_paths: [u64; 4],
    samples: Vec<UnparsedSample>,
    /// Every source's name and format, in the order begun; evidence refers to them by index.
    sources: Vec<(String, String)>,
    source: usize,
    format: Format,
    /// Byte offset in the current source of the next byte fed.
    offset: u64,
    /// Byte offset in the current source of the line being read.
    line_start: u64,
    /// The part of a line that ended one chunk, waiting for the rest.
    carry: Vec<u8>,
    /// The current line passed `MAX_LINE`; its remainder is skipped.
    overlong: bool,
    times: TimeCache,
    /// The memory the growing tables may take (`u64::MAX`: no limit).
    budget: u64,
    /// The budget is reached: the tables take no new keys.
    frozen: bool,
    /// What was not counted one by one since.
    limit: AnalysisLimit,
    /// Authentication failures per code of clients not in `failing`, counted while frozen.
    untracked_auth: [u64; 4],
    /// The bytes of the failing paths' keys.
    path_bytes: u64,
}

impl Analyzer {
    /// An analyzer that reads lines with the given formats policy.
    pub fn new(formats: Arc<FormatsPolicy>) -> Self {
        Self {
            formats,
            lines: 0,
            parsed: 0,
            unparsed: 0,
            status: vec![0; 500],
            clients: clients::ClientTable::default(),
            failing: FastMap::default(),
            minutes: Vec::new(),
            compact_at: COMPACT_MINUTES_AT,
            timeline: FastMap::default(),
            current_minute: (i64::MIN, MinuteCounts::default()),
            paths: FastMap::default(),
            other_paths: [0; 4],
            samples: Vec::new(),
            sources: Vec::new(),
            source: 0,
            format: Format::Combined,
            offset: 0,
            line_start: 0,
            carry: Vec::new(),
            overlong: false,
            times: TimeCache::default(),
            budget: u64::MAX,
            frozen: false,
            limit: AnalysisLimit::default(),
            untracked_auth: [0; 4],
            path_bytes: 0,
        }
    }

    /// Limits the memory of the growing tables to about `bytes` (see `budget`).
    pub fn set_memory_budget(&mut self, bytes: u64) {
        self.budget = bytes;
    }

    /// Measures the growing tables, and freezes them if the next lines could take them past
    /// the budget.
    fn check_budget(&mut self) {
        if self.frozen || self.budget == u64::MAX {
            return;
        }
        let n = budget::CHECK_EVERY as usize;
        let bytes = self.clients.bytes(n)
            + budget::map_bytes(&self.failing, n)
            + budget::vec_bytes(&self.minutes, n)
            + budget::map_bytes(&self.timeline, n)
            + budget::map_bytes(&self.paths, n)
            + self.path_bytes;
        if bytes > self.budget {
            self.frozen = true;
            self.clients.freeze();
            self.limit.memory_budget_bytes = self.budget;
            self.limit.reached_at_line = self.lines;
        }
    }

    /// Starts a new source in `format`; sample offsets count from its first byte.
    pub fn begin_source(&mut self, name: &str, format: Format) {
        self.begin_source_at(name, 0, format);
    }

    /// Starts a new source whose first byte fed is at `offset` (a part of a larger file).
    pub fn begin_source_at(&mut self, name: &str, offset: u64, format: Format) {
        self.finish_source();
        self.source = self.source_index(name, &format.name());
        self.format = format;
        self.offset = offset;
        self.line_start = offset;
    }

    fn source_index(&mut self, name: &str, format: &str) -> usize {
        match self.sources.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.sources.push((name.to_owned(), format.to_owned()));
                self.sources.len() - 1
            }
        }
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
        self.flush_minute();
        self.clients.flush();
    }

    fn line(&mut self, line: &[u8], offset: u64) {
        if self.lines.is_multiple_of(budget::CHECK_EVERY) {
            self.check_budget();
        }
        self.lines += 1;
        if self.overlong {
            self.unparsed(b"(line longer than 64 KiB)", offset);
            return;
        }
        let Some(request) = self.format.parse(line, &mut self.times, &self.formats) else {
            self.unparsed(line, offset);
            return;
        };
        let ip = ClientKey::of(format::client_ip(&request, &self.formats));
        self.parsed += 1;
        self.status[usize::from(request.status) - 100] += 1;
        self.clients.record(ip, request.time);
        let auth = AUTH_FAILURE_CODES.iter().position(|c| *c == request.status);
        if let Some(code) = auth {
            self.failure(ip, code, request.time, &request.path, offset);
        }
        if let Some(t) = request.time {
            let key = t.div_euclid(60);
            if key != self.current_minute.0 {
                self.flush_minute();
                self.current_minute.0 = key;
            }
            let minute = &mut self.current_minute.1;
            minute.requests += 1;
            minute.client_errors += u64::from((400..500).contains(&request.status));
            minute.server_errors += u64::from(request.status >= 500);
            minute.auth_failures += u64::from(auth.is_some());
        }
    }

    fn flush_minute(&mut self) {
        let (key, counts) = std::mem::replace(
            &mut self.current_minute,
            (i64::MIN, MinuteCounts::default()),
        );
        if key == i64::MIN {
            return;
        }
        match self.timeline.get_mut(&key) {
            Some(minute) => minute.add(&counts),
            None if self.frozen => self.limit.requests_not_in_timeline += counts.requests,
            None => {
                self.timeline.insert(key, counts);
            }
        }
    }

    fn failure(&mut self, ip: ClientKey, code: usize, time: Option<i64>, path: &[u8], offset: u64) {
        self.failure_path(code, path);
        let f = if self.frozen {
            match self.failing.get_mut(&ip) {
                Some(f) => f,
                None => {
                    self.untracked_auth[code] += 1;
                    self.limit.auth_failures_not_attributed += 1;
                    return;
                }
            }
        } else {
            self.failing.entry(ip).or_default()
        };
        f.auth[code] += 1;
        if let Some(t) = time {
            let minute = t.div_euclid(60);
            let counted = bump_recent(&mut self.minutes, f.last_minute, minute, code);
            if !counted && self.frozen {
                self.limit.auth_failures_without_minute += 1;
            } else if !counted {
                let mut counts = [0u32; 4];
                counts[code] = 1;
                self.minutes.push(MinuteRecord {
                    minute,
                    counts,
                    prev: f.last_minute,
                });
                f.last_minute = u32::try_from(self.minutes.len()).unwrap_or(u32::MAX);
            }
        }
        f.add_line(self.source, offset);
        f.sources |= source_bit(self.source);
        if self.minutes.len() >= self.compact_at {
            self.compact_minutes();
        }
    }

    /// Counts a failure on its path (`MAX_PATHS` at most, and no new ones once frozen).
    fn failure_path(&mut self, code: usize, path: &[u8]) {
        let path = normalise_path(path);
        if let Some(counts) = self.paths.get_mut(path) {
            counts[code] += 1;
        } else if self.paths.len() < MAX_PATHS && !self.frozen {
            let mut counts = [0u64; 4];
            counts[code] = 1;
            self.path_bytes += path.len() as u64 + 16;
            self.paths.insert(path.into(), counts);
        } else {
            if self.frozen {
                self.limit.auth_failures_on_untracked_paths += 1;
            }
            self.other_paths[code] += 1;
        }
    }

    fn unparsed(&mut self, line: &[u8], offset: u64) {
        self.unparsed += 1;
        if self.samples.len() < MAX_SAMPLES {
            let text: String = String::from_utf8_lossy(line)
                .chars()
                .take(SAMPLE_CHARS)
                .collect();
            let source = self
                .sources
                .get(self.source)
                .map(|s| s.0.clone())
                .unwrap_or_default();
            self.samples.push(UnparsedSample {
                source,
                offset,
                text,
            });
        }
    }

    /// Adds the counts of `other`, which analysed input that comes after this one's.
    pub fn merge(&mut self, mut other: Analyzer) {
        other.finish_source();
        let remap: Vec<usize> = other
            .sources
            .iter()
            .map(|(name, format)| self.source_index(name, format))
            .collect();
        self.lines += other.lines;
        self.parsed += other.parsed;
        self.unparsed += other.unparsed;
        for (a, b) in self.status.iter_mut().zip(&other.status) {
            *a += b;
        }
        self.clients.merge(other.clients);
        if other.frozen {
            self.frozen = true;
            self.limit.add(&other.limit);
        }
        for (a, b) in self.untracked_auth.iter_mut().zip(other.untracked_auth) {
            *a += b;
        }
        for (ip, f) in other.failing {
            let mine = self.failing.entry(ip).or_default();
            for (a, b) in mine.auth.iter_mut().zip(f.auth) {
                *a += b;
            }
            for (source, offset) in f.lines() {
                mine.add_line(remap[source], offset);
            }
            for (i, to) in remap.iter().enumerate().take(63) {
                if f.sources & (1 << i) != 0 {
                    mine.sources |= source_bit(*to);
                }
            }
            if f.sources & (1 << 63) != 0 {
                mine.sources |= 1 << 63;
            }
            // Move the client's minute chain into this arena, in front of its own.
            let mut next = f.last_minute;
            while let Some(i) = next.checked_sub(1) {
                let Some(&record) = other.minutes.get(i as usize) else {
                    break;
                };
                next = record.prev;
                self.minutes.push(MinuteRecord {
                    prev: mine.last_minute,
                    ..record
                });
                mine.last_minute = u32::try_from(self.minutes.len()).unwrap_or(u32::MAX);
            }
        }
        if self.minutes.len() >= self.compact_at {
            self.compact_minutes();
        }
        for (minute, counts) in &other.timeline {
            self.timeline.entry(*minute).or_default().add(counts);
        }
        for (path, counts) in other.paths {
            if let Some(mine) = self.paths.get_mut(&path) {
                for (a, b) in mine.iter_mut().zip(counts) {
                    *a += b;
                }
            } else {
                self.path_bytes += path.len() as u64 + 16;
                self.paths.insert(path, counts);
            }
        }
        for (a, b) in self.other_paths.iter_mut().zip(other.other_paths) {
            *a += b;
        }
        let room = MAX_SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }

    /// Rebuilds the minute arena with one record per client and minute, so out-of-order input
    /// cannot make it grow with the number of lines.
    fn compact_minutes(&mut self) {
        let mut arena = Vec::with_capacity(self.minutes.len() / 2);
        for f in self.failing.values_mut() {
            let mut chain = Vec::new();
            let mut next = f.last_minute;
            while let Some(i) = next.checked_sub(1) {
                let Some(r) = self.minutes.get(i as usize) else {
                    break;
                };
                chain.push((r.minute, r.counts));
                next = r.prev;
            }
            chain.sort_unstable_by_key(|(m, _)| *m);
            f.last_minute = 0;
            let mut i = 0;
            while i < chain.len() {
                let (minute, mut counts) = chain[i];
                i += 1;
                while i < chain.len() && chain[i].0 == minute {
                    for (a, b) in counts.iter_mut().zip(chain[i].1) {
                        *a = a.saturating_add(b);
                    }
                    i += 1;
                }
                arena.push(MinuteRecord {
                    minute,
                    counts,
                    prev: f.last_minute,
                });
                f.last_minute = u32::try_from(arena.len()).unwrap_or(u32::MAX);
            }
        }
        self.minutes = arena;
        self.compact_at = COMPACT_MINUTES_AT.max(self.minutes.len() * 2);
    }

    /// A failing client's per-minute counts, in no particular order.
    fn minutes_of(&self, f: &Failures) -> Vec<(i64, [u32; 4])> {
        let mut out = Vec::new();
        let mut next = f.last_minute;
        while let Some(i) = next.checked_sub(1) {
            let Some(r) = self.minutes.get(i as usize) else {
                break;
            };
            out.push((r.minute, r.counts));
            next = r.prev;
        }
        out
    }

    /// The summary over everything fed so far, with the `top` busiest clients.
    pub fn summary(&mut self, policy: &DetectionPolicy, top: usize) -> Summary {
        self.finish_source();
        summary::build(self, policy, top)
    }
}

/// A path without its query string, at most `MAX_PATH_LEN` bytes.
fn normalise_path(path: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'?', path)
        .unwrap_or(path.len())
        .min(MAX_PATH_LEN);
    &path[..end]
}

#[cfg(test)]
mod tests;
