//! The analysis's memory budget. The tables that grow with the input (clients, failing clients,
//! their per-minute records, the timeline, failing paths) are measured every few thousand lines,
//! counting the growth the next lines could cause; once they would pass the budget, they stop
//! taking new keys. Everything after that is still counted in the totals, and what could not be
//! counted one by one is counted exactly, so the summary can say precisely what it is missing.
//! The logs are preserved whole whatever the analysis does.

use std::collections::HashMap;
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

/// Lines between two measurements.
pub(super) const CHECK_EVERY: u64 = 4096;

/// The bytes a hash map's table takes once `incoming` more keys could have arrived: its buckets
/// (each an entry and a control byte, at most 7/8 full), doubled if they might grow.
pub(super) fn map_bytes<K, V, S: BuildHasher>(map: &HashMap<K, V, S>, incoming: usize) -> u64 {
    let entry = std::mem::size_of::<(K, V)>() as u64 + 1;
    let capacity = map.capacity().max(1) as u64;
    let grows = (map.len() + incoming) as u64 > capacity;
    let buckets = capacity * 8 / 7 + 1;
    entry * buckets * if grows { 3 } else { 1 }
}

/// The bytes a vector's buffer takes once `incoming` more elements could have been pushed.
pub(super) fn vec_bytes<T>(v: &Vec<T>, incoming: usize) -> u64 {
    let size = std::mem::size_of::<T>() as u64;
    let capacity = v.capacity() as u64;
    let grows = (v.len() + incoming) as u64 > capacity;
    // A growing vector holds the old and the doubled buffer at once, for a moment.
    size * if grows { capacity * 3 } else { capacity }
}

/// What the analysis did not count one by one after reaching its memory budget. The totals
/// (lines, statuses, authentication failures per code) stay exact.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AnalysisLimit {
    /// The budget (`analysis.memory_budget_bytes` in collection.yaml).
    pub memory_budget_bytes: u64,
    /// Lines read when it was reached (in the part of the input that reached it first).
    pub reached_at_line: u64,
    /// Clients counted one by one.
    pub clients_tracked: u64,
    /// Requests from clients first seen after the budget was reached: in the totals, not in any
    /// client's count, so such clients are missing from `top_ips`, `suspicious` and
    /// `unique_ips` (a lower bound).
    pub requests_not_attributed: u64,
    /// Authentication failures of clients that had none before the budget was reached: in the
    /// totals, not in any client's count or rule.
    pub auth_failures_not_attributed: u64,
    /// Authentication failures of tracked clients in minutes not tracked for them: window rules
    /// saw fewer than there were.
    pub auth_failures_without_minute: u64,
    /// Requests in minutes the timeline had no room for.
    pub requests_not_in_timeline: u64,
    /// Authentication failures on paths first seen after the budget was reached, counted under
    /// "(other paths)".
    pub auth_failures_on_untracked_paths: u64,
}

impl AnalysisLimit {
    /// The limit in words, for the terminal, the journal and `collection.json`.
    pub fn describe(&self) -> String {
        format!(
            "the analysis reached its memory budget of {} MiB at line {} with {} clients tracked: {} requests and {} authentication failures from clients seen later are in the totals but not counted per client (such clients are missing from the busiest and suspicious clients, and unique_ips is a lower bound), {} failures of tracked clients were not counted per minute, and {} requests are missing from the timeline",
            self.memory_budget_bytes >> 20,
            self.reached_at_line,
            self.clients_tracked,
            self.requests_not_attributed,
            self.auth_failures_not_attributed,
            self.auth_failures_without_minute,
            self.requests_not_in_timeline,
        )
    }

    /// Adds the counts of a later part of the input.
    pub(super) fn add(&mut self, other: &AnalysisLimit) {
        if self.memory_budget_bytes == 0 {
            self.memory_budget_bytes = other.memory_budget_bytes;
            self.reached_at_line = other.reached_at_line;
        }
        self.requests_not_attributed += other.requests_not_attributed;
        self.auth_failures_not_attributed += other.auth_failures_not_attributed;
        self.auth_failures_without_minute += other.auth_failures_without_minute;
        self.requests_not_in_timeline += other.requests_not_in_timeline;
        self.auth_failures_on_untracked_paths += other.auth_failures_on_untracked_paths;
    }
}
