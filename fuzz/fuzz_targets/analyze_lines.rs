//! Any bytes, read as a log in every format and chunked at an arbitrary point, never panic the
//! analysis and give the same summary however they are chunked.
#![no_main]

use std::sync::Arc;

use custody::analysis::format::{self, Format};
use custody::analysis::json::JsonPreset;
use custody::analysis::Analyzer;
use custody::policy::{DetectionPolicy, FormatsPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let formats = Arc::new(FormatsPolicy::default());
    let policy = DetectionPolicy::default();
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let all = [
        Format::Combined,
        Format::Json(JsonPreset::Nginx),
        Format::Json(JsonPreset::Envoy),
        Format::Json(JsonPreset::Traefik),
        Format::Json(JsonPreset::Configured),
        format::detect(data, &formats),
    ];
    for f in all {
        let mut whole = Analyzer::new(formats.clone());
        whole.begin_source("fuzz", f.clone());
        whole.feed(data);
        let mut parts = Analyzer::new(formats.clone());
        parts.begin_source("fuzz", f);
        parts.feed(&data[..cut]);
        parts.feed(&data[cut..]);
        assert_eq!(whole.summary(&policy, 5), parts.summary(&policy, 5));
    }
});
