//! The bag inside an archive, checked as BagIt 1.0 says: the tag files present and well formed,
//! Payload-Oxum, every payload file against both manifests, every tag file against the tag
//! manifest, nothing missing and nothing extra.

use std::collections::BTreeMap;

use super::bundle::{Checker, Contents};
use crate::digest::Sha256Digest;
use crate::id::{BundleId, CaseId};

/// Parses a BagIt manifest: `<hex>  <path>` lines, paths percent-decoded for CR, LF and `%`.
fn parse_manifest(
    text: &[u8],
    name: &str,
    hex_len: usize,
    c: &mut Checker,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (i, line) in String::from_utf8_lossy(text).lines().enumerate() {
        let parsed = line.split_once(char::is_whitespace).and_then(|(h, p)| {
            let p = p.trim_start();
            let valid =
                h.len() == hex_len && h.bytes().all(|b| b.is_ascii_hexdigit()) && !p.is_empty();
            valid.then(|| {
                let path = p
                    .replace("%0A", "\n")
                    .replace("%0D", "\r")
                    .replace("%25", "%");
                (h.to_ascii_lowercase(), path)
            })
        });
        match parsed {
            Some((h, p)) => {
                if out.insert(p.clone(), h).is_some() {
                    c.add("manifest_invalid", name, format!("{p} is listed twice"));
                }
            }
            None => c.add(
                "manifest_invalid",
                name,
                format!("line {} is not \"<digest>  <path>\"", i + 1),
            ),
        }
    }
    out
}

fn labels(text: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

pub(super) const REQUIRED_TAGS: [&str; 5] = [
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "manifest-sha512.txt",
    "tagmanifest-sha256.txt",
];

pub(super) fn payload_oxum(contents: &Contents) -> String {
    let bytes: u64 = contents.payload.values().map(|p| p.0).sum();
    format!("{bytes}.{}", contents.payload.len())
}

pub(super) fn check_bag(bundle: &BundleId, case: &CaseId, contents: &Contents, c: &mut Checker) {
    let at = |name: &str| format!("{bundle}/{name}");
    for name in REQUIRED_TAGS {
        if !contents.tags.contains_key(name) {
            c.add(
                "missing_file",
                at(name),
                "required tag file is missing from the bag",
            );
        }
    }
    if let Some(bagit) = contents.tags.get("bagit.txt") {
        let l = labels(bagit);
        if l.get("BagIt-Version").map(String::as_str) != Some("1.0")
            || l.get("Tag-File-Character-Encoding").map(String::as_str) != Some("UTF-8")
        {
            c.add(
                "tag_file_invalid",
                at("bagit.txt"),
                "must declare BagIt-Version: 1.0 and Tag-File-Character-Encoding: UTF-8",
            );
        }
    }
    if let Some(info) = contents.tags.get("bag-info.txt") {
        check_bag_info(
            &labels(info),
            case,
            &payload_oxum(contents),
            &at("bag-info.txt"),
            c,
        );
    }
    for (name, hex_len, sha512) in [
        ("manifest-sha256.txt", 64, false),
        ("manifest-sha512.txt", 128, true),
    ] {
        let Some(text) = contents.tags.get(name) else {
            continue;
        };
        let manifest = parse_manifest(text, &at(name), hex_len, c);
        for (path, digest) in &manifest {
            match contents.payload.get(path) {
                None => c.add(
                    "missing_file",
                    at(path),
                    format!("listed in {name} but not in the bag"),
                ),
                Some((_, s256, s512)) => {
                    let got = if sha512 { s512 } else { s256 };
                    if got != digest {
                        c.add(
                            "payload_hash_mismatch",
                            at(path),
                            format!("{name} says {digest}, the file's digest is {got}"),
                        );
                    }
                }
            }
        }
        for path in contents.payload.keys() {
            if !manifest.contains_key(path) {
                c.add(
                    "extra_file",
                    at(path),
                    format!("in the bag but not listed in {name}"),
                );
            }
        }
    }
    if let Some(text) = contents.tags.get("tagmanifest-sha256.txt") {
        check_tag_manifest(text, contents, &at, c);
    }
}

fn check_bag_info(
    l: &BTreeMap<String, String>,
    case: &CaseId,
    oxum: &str,
    subject: &str,
    c: &mut Checker,
) {
    match l.get("Payload-Oxum") {
        Some(v) if v == oxum => {}
        Some(v) => c.add(
            "payload_oxum_mismatch",
            subject,
            format!("Payload-Oxum is {v}, the payload is {oxum}"),
        ),
        None => c.add("tag_file_invalid", subject, "no Payload-Oxum"),
    }
    if l.get("External-Identifier").map(String::as_str) != Some(case.as_str()) {
        c.add(
            "tag_file_invalid",
            subject,
            format!("External-Identifier is not the case id {case}"),
        );
    }
    if !l.contains_key("Bagging-Date") {
        c.add("tag_file_invalid", subject, "no Bagging-Date");
    }
}

fn check_tag_manifest(
    text: &[u8],
    contents: &Contents,
    at: &dyn Fn(&str) -> String,
    c: &mut Checker,
) {
    let manifest = parse_manifest(text, &at("tagmanifest-sha256.txt"), 64, c);
    for (name, digest) in &manifest {
        match contents.tags.get(name) {
            None => c.add(
                "missing_file",
                at(name),
                "listed in tagmanifest-sha256.txt but not in the bag",
            ),
            Some(bytes) => {
                let got = Sha256Digest::of(bytes).to_hex();
                if got != *digest {
                    c.add(
                        "tag_hash_mismatch",
                        at(name),
                        format!("tagmanifest-sha256.txt says {digest}, the file's digest is {got}"),
                    );
                }
            }
        }
    }
    for name in contents.tags.keys() {
        if name != "tagmanifest-sha256.txt" && !manifest.contains_key(name) {
            c.add(
                "extra_file",
                at(name),
                "tag file not listed in tagmanifest-sha256.txt",
            );
        }
    }
}
