//! The per-client table, built for speed on hundreds of thousands of addresses.
//!
//! Updating one big hash map per line costs a cache miss per line once the map outgrows the
//! caches. Instead each request is appended to one of 256 small buffers, chosen by the address's
//! hash; a full buffer is folded into its own partition map, which is small enough to stay in
//! cache while it is updated. The counts are exact; only the order of the work changes.

use std::collections::HashMap;

use super::{ClientKey, ClientStats};

const PARTITIONS: usize = 256;
/// Requests buffered per partition before they are folded into its map.
const BATCH: usize = 128;
/// Stands for "no time" in the buffers.
const NO_TIME: i64 = i64::MIN;

type Map = HashMap<ClientKey, ClientStats, foldhash::fast::RandomState>;

pub(super) struct ClientTable {
    maps: Vec<Map>,
    pending: Vec<Vec<(ClientKey, i64)>>,
    /// No new clients are added (the memory budget is reached).
    frozen: bool,
    /// Requests from clients not in the table, counted while frozen.
    untracked: u64,
}

impl Default for ClientTable {
    fn default() -> Self {
        Self {
            maps: (0..PARTITIONS).map(|_| Map::default()).collect(),
            pending: (0..PARTITIONS).map(|_| Vec::new()).collect(),
            frozen: false,
            untracked: 0,
        }
    }
}

fn partition(key: ClientKey) -> usize {
    let mixed = (key.0 as u64 ^ (key.0 >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 56) as usize
}

impl ClientTable {
    /// Counts one request from `key` at `time`.
    pub(super) fn record(&mut self, key: ClientKey, time: Option<i64>) {
        let p = partition(key);
        let buffer = &mut self.pending[p];
        if buffer.capacity() == 0 {
            buffer.reserve_exact(BATCH);
        }
        buffer.push((key, time.unwrap_or(NO_TIME)));
        if buffer.len() == BATCH {
            self.fold(p);
        }
    }

    fn fold(&mut self, p: usize) {
        let map = &mut self.maps[p];
        for (key, time) in self.pending[p].drain(..) {
            let stats = if self.frozen {
                match map.get_mut(&key) {
                    Some(stats) => stats,
                    None => {
                        self.untracked += 1;
                        continue;
                    }
                }
            } else {
                map.entry(key).or_default()
            };
            stats.requests += 1;
            if time != NO_TIME {
                stats.first = stats.first.min(time);
                stats.last = stats.last.max(time);
            }
        }
    }

    /// Folds every buffered request into the maps.
    pub(super) fn flush(&mut self) {
        for p in 0..PARTITIONS {
            self.fold(p);
        }
    }

    /// Stops adding new clients: the requests already buffered are folded first, so a client
    /// seen before this is counted whole.
    pub(super) fn freeze(&mut self) {
        self.flush();
        self.frozen = true;
    }

    /// Requests from clients the frozen table did not take.
    pub(super) fn untracked(&self) -> u64 {
        self.untracked
    }

    /// The bytes the table takes once `incoming` more clients could have arrived.
    pub(super) fn bytes(&self, incoming: usize) -> u64 {
        // New clients spread over the partitions; a few times the mean allows for the unlucky.
        let each = (incoming / PARTITIONS * 4).max(8);
        let pending = (PARTITIONS * BATCH * std::mem::size_of::<(ClientKey, i64)>()) as u64;
        pending
            + self
                .maps
                .iter()
                .map(|m| super::budget::map_bytes(m, each))
                .sum::<u64>()
    }

    /// Adds `other`'s counts (both flushed first).
    pub(super) fn merge(&mut self, mut other: ClientTable) {
        self.flush();
        other.flush();
        self.untracked += other.untracked;
        for (mine, theirs) in self.maps.iter_mut().zip(other.maps) {
            for (key, stats) in theirs {
                mine.entry(key).or_default().add(&stats);
            }
        }
    }

    /// Every client; call `flush` first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&ClientKey, &ClientStats)> {
        self.maps.iter().flat_map(|m| m.iter())
    }

    pub(super) fn get(&self, key: &ClientKey) -> Option<&ClientStats> {
        self.maps[partition(*key)].get(key)
    }

    pub(super) fn len(&self) -> usize {
        self.maps.iter().map(Map::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_across_batches_and_merges() {
        let mut a = ClientTable::default();
        let mut b = ClientTable::default();
        for i in 0..10_000u128 {
            let key = ClientKey(i % 777);
            let table = if i % 3 == 0 { &mut b } else { &mut a };
            table.record(key, (i % 5 != 0).then_some(i as i64));
        }
        a.merge(b);
        assert_eq!(a.len(), 777);
        let total: u64 = a.iter().map(|(_, s)| s.requests).sum();
        assert_eq!(total, 10_000);
        let k0 = a.get(&ClientKey(0)).unwrap();
        // Key 0 is seen at i = 0, 777, …; i = 0 has no time (i % 5 == 0), so the first time is 777.
        assert_eq!(k0.first_seen(), Some(777));
        assert_eq!(k0.requests, 13);
    }
}
