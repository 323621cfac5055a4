//! The analyzer's unit tests: counts, formats, merges, the memory budget.

use super::*;

fn formats() -> Arc<FormatsPolicy> {
    Arc::new(FormatsPolicy::default())
}

fn line(ip: &str, status: u16) -> String {
    format!("{ip} - - [17/May/2015:10:05:03 +0000] \"GET /x HTTP/1.1\" {status} 401 \"-\" \"-\"\n")
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
        let mut a = Analyzer::new(formats());
        a.begin_source("t", Format::Combined);
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
        let mut whole = Analyzer::new(formats());
        whole.begin_source("t", Format::Combined);
        whole.feed(&input);
        let mut pieces = Analyzer::new(formats());
        pieces.begin_source("t", Format::Combined);
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
            let mut a = Analyzer::new(formats());
            a.begin_source("t", Format::Combined);
            for c in text.as_bytes().chunks(chunk) {
                a.feed(c);
            }
            let s = a.summary(&DetectionPolicy::default(), 10);
            assert_eq!((s.lines, s.parsed, s.unparsed), (2, 1, 1), "chunk {chunk}");
            assert_eq!(s.auth_failures["401"], 0);
        }
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_in_every_format_never_panic(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
        cut in 0usize..2000,
    ) {
        let cut = cut.min(data.len());
        let policy = DetectionPolicy::default();
        for f in [
            Format::Combined,
            Format::Json(json::JsonPreset::Nginx),
            Format::Json(json::JsonPreset::Envoy),
            Format::Json(json::JsonPreset::Traefik),
            Format::Json(json::JsonPreset::Configured),
            format::detect(&data, &formats()),
        ] {
            let mut whole = Analyzer::new(formats());
            whole.begin_source("t", f.clone());
            whole.feed(&data);
            let mut parts = Analyzer::new(formats());
            parts.begin_source("t", f);
            parts.feed(&data[..cut]);
            parts.feed(&data[cut..]);
            proptest::prop_assert_eq!(whole.summary(&policy, 5), parts.summary(&policy, 5));
        }
    }
}

#[test]
fn failures_per_path_merge_exactly() {
    // Once, a cap applied while merging sent a known path's later failures to "other".
    let failure = |path: &str| {
        format!("10.0.0.1 - - [26/Nov/2026:14:54:10 +0000] \"GET {path} HTTP/1.1\" 401 0\n")
    };
    let mut first = failure("/login");
    let mut second = String::new();
    for i in 0..15_000 {
        second.push_str(&failure(&format!("/probe/{i}")));
    }
    for _ in 0..100 {
        second.push_str(&failure("/login"));
    }
    let policy = DetectionPolicy::default();
    let mut a = Analyzer::new(formats());
    a.begin_source("t", Format::Combined);
    a.feed(first.as_bytes());
    let mut b = Analyzer::new(formats());
    b.begin_source_at("t", first.len() as u64, Format::Combined);
    b.feed(second.as_bytes());
    a.merge(b);
    let merged = a.summary(&policy, 5);
    first.push_str(&second);
    let mut whole = Analyzer::new(formats());
    whole.begin_source("t", Format::Combined);
    whole.feed(first.as_bytes());
    let whole = whole.summary(&policy, 5);
    assert_eq!(merged.auth_failure_paths, whole.auth_failure_paths);
    assert_eq!(whole.auth_failure_paths[0].path, "/login");
    assert_eq!(whole.auth_failure_paths[0].total, 101);
}

#[test]
fn out_of_order_minutes_do_not_grow_memory_with_lines() {
    // One client failing in two alternating minutes: two records, however many lines.
    let mut a = Analyzer::new(formats());
    a.begin_source("t", Format::Combined);
    for i in 0..10_000 {
        let second = if i % 2 == 0 { "14:54:10" } else { "14:55:10" };
        a.feed(
            format!("10.0.0.1 - - [26/Nov/2026:{second} +0000] \"GET / HTTP/1.1\" 401 0\n")
                .as_bytes(),
        );
    }
    assert_eq!(a.minutes.len(), 2);
    // Many minutes far out of order are compacted to one record per minute.
    for i in 0..(COMPACT_MINUTES_AT as i64 + 10) {
        let t = 1_795_704_888 + (i % 97) * 60 * 13 % (97 * 60);
        a.failure(ClientKey(7), 0, Some(t), b"/", 0);
    }
    assert!(a.minutes.len() < 1000, "{}", a.minutes.len());
    let f = a.failing[&ClientKey(7)].clone();
    let total: u64 = a.minutes_of(&f).iter().map(|(_, c)| u64::from(c[0])).sum();
    assert_eq!(total, COMPACT_MINUTES_AT as u64 + 10);
}

#[test]
fn overlong_lines_are_counted_not_kept() {
    let mut a = Analyzer::new(formats());
    a.begin_source("t", Format::Combined);
    a.feed(&vec![b'x'; MAX_LINE * 3]);
    a.feed(b"\n");
    a.feed(line("10.0.0.1", 200).as_bytes());
    let s = a.summary(&DetectionPolicy::default(), 10);
    assert_eq!((s.lines, s.parsed, s.unparsed), (2, 1, 1));
    assert!(a.carry.capacity() <= MAX_LINE * 2);
}

#[test]
fn suspicious_clients_follow_the_policy() {
    let mut a = Analyzer::new(formats());
    a.begin_source("t", Format::Combined);
    for _ in 0..25 {
        a.feed(line("203.0.113.9", 401).as_bytes());
        a.feed(line("198.51.100.2", 200).as_bytes());
    }
    let s = a.summary(&DetectionPolicy::default(), 10);
    assert_eq!(s.suspicious.len(), 1);
    assert_eq!(s.suspicious[0].ip, "203.0.113.9");
    assert_eq!(s.suspicious[0].auth_failures, 25);
}

// Past its budget the analysis keeps the totals exact, and every client it tracked was
// tracked from its first line: its counts equal those of an unlimited analysis.
#[test]
fn past_the_budget_totals_stay_exact_and_tracked_clients_whole() {
    let mut text = String::new();
    for i in 0..60_000u32 {
        // Early clients return later; later clients are new.
        let n = if i % 2 == 0 { i % 500 } else { i };
        let ip = format!("2001:db8::{:x}:{:x}", n >> 16, n & 0xffff);
        text.push_str(&line(&ip, if i % 5 == 0 { 401 } else { 200 }));
    }
    let policy = DetectionPolicy::default();
    let mut whole = Analyzer::new(formats());
    whole.begin_source("x", Format::Combined);
    whole.feed(text.as_bytes());
    let whole = whole.summary(&policy, 100_000);
    let mut limited = Analyzer::new(formats());
    limited.set_memory_budget(4 << 20);
    limited.begin_source("x", Format::Combined);
    limited.feed(text.as_bytes());
    let limited = limited.summary(&policy, 100_000);
    let limit = limited.limit.clone().expect("the budget is reached");
    assert!(whole.limit.is_none());
    assert_eq!(limited.lines, whole.lines);
    assert_eq!(limited.status, whole.status);
    assert_eq!(limited.auth_failures, whole.auth_failures);
    assert_eq!(limited.unique_ips, limit.clients_tracked);
    assert!(limit.clients_tracked < whole.unique_ips);
    assert!(limit.clients_tracked > 1000, "{limit:?}");
    let attributed: u64 = limited.top_ips.iter().map(|t| t.requests).sum();
    assert_eq!(attributed + limit.requests_not_attributed, whole.parsed);
    for t in &limited.top_ips {
        let w = whole.top_ips.iter().find(|w| w.ip == t.ip).unwrap();
        assert_eq!(t.requests, w.requests, "{}", t.ip);
        assert!(t.auth_failures <= w.auth_failures, "{}", t.ip);
    }
    let failures: u64 = limited.top_ips.iter().map(|t| t.auth_failures).sum();
    assert_eq!(
        failures + limit.auth_failures_not_attributed,
        whole.auth_failure_total()
    );
}
