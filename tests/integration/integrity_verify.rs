//! What `verify` and the local store must refuse even when everything else is consistent: a seal
//! checked with another key, a replaced `keys/<id>.pub`, tar headers custody never writes, links
//! in the store, and terminal escapes in what is printed. The forgeries here are consistent ones
//! (archive, sidecar, seal, signature and journal all fixed up), so that only the check under
//! test can catch them.

use std::io::Read;
use std::path::Path;

use custody::case::{self as journal, Details, Entry};
use custody::digest::Sha256Digest;
use custody::keys::SigningKey;

use crate::util::*;

use crate::tamper::{has, sealed, Tampered as Sealed};

type Problems = Vec<(String, String, String)>;

/// `verify --json TARGET EXTRA…`: the exit code and the problems.
fn verify(sb: &Sandbox, target: &Path, extra: &[&str]) -> (Option<i32>, Problems) {
    let mut args = vec!["--json", "verify", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = sb.run(&args);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}{}", stdout(&out), stderr(&out)));
    let problems = report["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let s = |k: &str| p[k].as_str().unwrap().to_owned();
                    (s("code"), s("subject"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default();
    (out.status.code(), problems)
}

fn collector_key(sb: &Sandbox) -> SigningKey {
    SigningKey::load(&sb.path("home/.config/custody/collector.key")).unwrap()
}

fn overwrite(path: &Path, bytes: &[u8]) {
    make_writable(path);
    std::fs::write(path, bytes).unwrap();
}

/// Rewrites the seal with `edit`, signs it with `key`, and fixes the sealing journal entry (and
/// the chain after it) to name the new seal, re-signing every entry with `key` and publishing it
/// in `keys/`, as an attacker with write access and a key of their own could.
fn reseal(s: &Sealed, key: &SigningKey, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut seal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&s.files.seal).unwrap()).unwrap();
    edit(&mut seal);
    let mut bytes = serde_json::to_vec_pretty(&seal).unwrap();
    bytes.push(b'\n');
    overwrite(&s.files.seal, &bytes);
    overwrite(&s.files.sig, &key.sign(&bytes));
    let seal_sha = Sha256Digest::of(&bytes).to_hex();
    let archive = seal["archive"].clone();
    rewrite_journal(&s.files.case_dir.join("journal"), key, |entry| {
        if let Details::BundleSealed(b) = &mut entry.details {
            b.seal.sha256 = serde_json::from_value(seal_sha.clone().into()).unwrap();
            b.archive.sha256 = serde_json::from_value(archive["sha256"].clone()).unwrap();
            b.archive.size = serde_json::from_value(archive["size"].clone()).unwrap();
        }
    });
}

/// Applies `edit` to every journal entry, re-links the chain over the new bytes and signs each
/// entry with `key`, whose public key it puts in the store's `keys/` (if not there).
fn rewrite_journal(dir: &Path, key: &SigningKey, mut edit: impl FnMut(&mut Entry)) {
    let keys = dir.join("../../../keys");
    let published = keys.join(format!("{}.pub", key.public().id()));
    if !published.exists() {
        std::fs::write(&published, key.public().to_pem().unwrap()).unwrap();
    }
    let paths = crate::util::journal_entry_paths(dir);
    let mut prev: Option<Sha256Digest> = None;
    for path in paths {
        let mut entry: Entry = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut entry);
        if entry.seq > 1 {
            entry.prev_sha256 = prev;
        }
        let bytes = journal::encode(&entry).unwrap();
        prev = Some(Sha256Digest::of(&bytes));
        overwrite(&path, &bytes);
        overwrite(&path.with_extension("json.sig"), &key.sign(&bytes));
    }
}

// ---- item: the seal's key id against the verifying key ----

#[test]
fn a_seal_verified_with_another_key_is_reported_as_a_key_mismatch() {
    // The seal names the collector's key; the auditor was handed another: say so, not only
    // "signature invalid", which reads as tampering.
    let s = sealed();
    let other = s.sb.path("other");
    assert_success(&s.sb.run(&["keygen", "--out", other.to_str().unwrap()]));
    let other_id = custody::keys::PublicKey::load(&s.sb.path("other.pub"))
        .unwrap()
        .id()
        .to_string();
    let ours = collector_key(&s.sb).public().id().to_string();
    let public = s.sb.path("other.pub");
    let (code, p) = verify(
        &s.sb,
        &s.files.case_dir,
        &["--public-key", public.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{p:?}");
    assert!(
        p.iter().any(|(c, _, m)| c == "key_mismatch"
            && m.contains(&format!("the seal names key {ours}"))
            && m.contains(&other_id)),
        "{p:?}"
    );
    assert!(has(&p, "signature_invalid", ""), "{p:?}");
}

#[test]
fn a_store_key_replaced_by_a_key_that_re_signed_the_seal_is_a_key_mismatch() {
    // A consistent forgery: the seal edited and re-signed by key B, B's PEM put at
    // keys/<A>.pub, the journal fixed up. Only the key file's own id gives it away.
    let s = sealed();
    let ours = collector_key(&s.sb).public().id().to_string();
    let attacker = SigningKey::generate();
    reseal(&s, &attacker, |seal| {
        seal["created_at"] = "2020-01-01T00:00:00Z".into();
    });
    let key_file = s.sb.store().join(format!("keys/{ours}.pub"));
    overwrite(&key_file, attacker.public().to_pem().unwrap().as_bytes());

    for target in [s.files.case_dir.clone(), s.sb.store()] {
        let (code, p) = verify(&s.sb, &target, &[]);
        assert_eq!(code, Some(1), "{p:?}");
        let mismatches: Vec<_> = p.iter().filter(|(c, _, _)| c == "key_mismatch").collect();
        assert_eq!(mismatches.len(), 1, "{p:?}");
        let (_, subject, message) = mismatches[0];
        assert_eq!(subject, &format!("keys/{ours}.pub"));
        assert!(
            message.contains(&format!("holds key {}", attacker.public().id())),
            "{message}"
        );
        // Nothing else is wrong: without this check the forgery passed.
        assert!(
            p.iter().all(|(c, _, _)| c == "key_mismatch"),
            "only the key gives it away: {p:?}"
        );
    }
}

#[test]
fn every_store_key_file_must_hold_the_key_it_is_named_after() {
    // keys/*.pub no seal names is still checked: a planted key under a false id is tampering.
    let s = sealed();
    let attacker = SigningKey::generate();
    let planted = s.sb.store().join("keys/0123456789abcdef.pub");
    std::fs::write(&planted, attacker.public().to_pem().unwrap()).unwrap();
    std::fs::write(s.sb.store().join("keys/fedcba9876543210.pub"), b"not a key").unwrap();
    let (code, p) = verify(&s.sb, &s.sb.store(), &[]);
    assert_eq!(code, Some(1));
    assert!(
        has(&p, "key_mismatch", "keys/0123456789abcdef.pub"),
        "{p:?}"
    );
    assert!(has(&p, "key_invalid", "keys/fedcba9876543210.pub"), "{p:?}");
}

// ---- item: tar headers custody never writes ----

/// Rebuilds the archive with `mutate` applied to each entry's header (given the path inside the
/// bag) and `extra` entries first, then fixes the sidecar, re-signs the seal with the collector's
/// own key and fixes the journal: an archive the collector could have sealed.
fn rebuild(
    s: &Sealed,
    mut mutate: impl FnMut(&str, &mut tar::Header),
    extra: &[(tar::Header, Vec<u8>)],
) {
    let tar_bytes = zstd::decode_all(std::fs::File::open(&s.files.archive).unwrap()).unwrap();
    let prefix = format!("{}/", s.files.bundle_id);
    let mut out = Vec::new();
    let mut push = |h: &tar::Header, data: &[u8]| {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    };
    for (h, data) in extra {
        push(h, data);
    }
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let mut header = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        mutate(path.strip_prefix(&prefix).unwrap(), &mut header);
        header.set_cksum();
        push(&header, &data);
    }
    out.extend_from_slice(&[0u8; 1024]);
    let compressed = zstd::encode_all(&out[..], 3).unwrap();
    let digest = Sha256Digest::of(&compressed);
    overwrite(&s.files.archive, &compressed);
    overwrite(
        &s.files.sidecar,
        format!("{digest}  {}.tar.zst\n", s.files.bundle_id).as_bytes(),
    );
    reseal(s, &collector_key(&s.sb), |seal| {
        seal["archive"]["sha256"] = digest.to_hex().into();
        seal["archive"]["size"] = compressed.len().into();
        seal["archive"]["unpacked_size"] = out.len().into();
    });
}

/// Sets a header's name field byte for byte (the tar crate would normalise a trailing '/').
fn set_name(h: &mut tar::Header, name: &str) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
}

#[test]
fn a_tar_entry_mode_other_than_0644_is_reported_though_all_else_is_consistent() {
    // An executable payload file, re-sealed by the collector's own key, passed verify: tar -x
    // makes it executable, which custody never wrote.
    let s = sealed();
    rebuild(
        &s,
        |path, h| {
            if path == "data/logs/01-gateway.log" {
                h.set_mode(0o4755);
            }
        },
        &[],
    );
    let (code, p) = verify(&s.sb, &s.files.case_dir, &[]);
    assert_eq!(code, Some(1), "{p:?}");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(has(&p, "tar_entry", "data/logs/01-gateway.log"), "{p:?}");
    assert!(has(&p, "tar_entry", "mode 4755"), "{p:?}");
}

#[test]
fn tar_entries_custody_never_writes_are_each_reported_by_name() {
    // Owners, names, types and a file named like a directory: each is read differently by
    // tar -x or bagit.py than by custody, so none may pass.
    let s = sealed();
    let bundle = s.files.bundle_id.clone();
    let mut dir = tar::Header::new_ustar();
    dir.set_path(format!("{bundle}/data/")).unwrap();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mtime(0);
    dir.set_mode(0o755);
    dir.set_username("root").unwrap();
    dir.set_groupname("root").unwrap();
    dir.set_cksum();
    rebuild(
        &s,
        |path, h| match path {
            "bagit.txt" => h.set_uid(1000),
            "bag-info.txt" => h.set_gid(27),
            "manifest-sha256.txt" => h.set_username("attacker").unwrap(),
            "manifest-sha512.txt" => h.set_groupname("wheel").unwrap(),
            "tagmanifest-sha256.txt" => h.set_entry_type(tar::EntryType::Continuous),
            "data/collection.json" => h.as_mut_bytes()[156] = 0,
            "data/logs/01-gateway.log" => {
                set_name(h, &format!("{bundle}/data/logs/01-gateway.log/"))
            }
            _ => {}
        },
        &[(dir, Vec::new())],
    );
    let (code, p) = verify(&s.sb, &s.files.case_dir, &[]);
    assert_eq!(code, Some(1), "{p:?}");
    let named = |entry: &str, what: &str| {
        p.iter().any(|(c, _, m)| {
            c == "tar_entry" && m.contains(&format!("{bundle}/{entry}\"")) && m.contains(what)
        })
    };
    assert!(named("bagit.txt", "uid 1000"), "{p:?}");
    assert!(named("bag-info.txt", "gid 27"), "{p:?}");
    assert!(
        named("manifest-sha256.txt", "user name \"attacker\""),
        "{p:?}"
    );
    assert!(
        named("manifest-sha512.txt", "group name \"wheel\""),
        "{p:?}"
    );
    assert!(named("tagmanifest-sha256.txt", "type '7'"), "{p:?}");
    assert!(named("data/collection.json", "type '\\0'"), "{p:?}");
    assert!(named("data/", "a directory"), "{p:?}");
    assert!(
        named("data/logs/01-gateway.log/", "name ends in '/'"),
        "{p:?}"
    );
}

// ---- item: links in the store ----

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn collect_into_a_store_whose_keys_dir_is_a_symlink_fails_and_writes_nothing_outside() {
    // `collect` followed keys/ and wrote the collector's key outside the store.
    let sb = Sandbox::new();
    let outside = sb.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(sb.store()).unwrap();
    std::os::unix::fs::symlink(&outside, sb.store().join("keys")).unwrap();
    let log = sb.path("gateway.log");
    std::fs::write(&log, line("203.0.113.66", 401, "/api/v1/login")).unwrap();
    let store = sb.store();
    let out = sb.run(&[
        "--store",
        store.to_str().unwrap(),
        "collect",
        "--logs",
        log.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("keys is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert!(files_under(&outside).is_empty(), "written through the link");
    assert!(!store.join("cases").exists(), "nothing started");
}

#[test]
fn a_symlinked_journal_or_bundles_dir_or_file_in_the_store_is_reported() {
    // verify read a linked journal/ as the case's own; custody writes no links, so any is
    // reported, wherever it points.
    for linked in ["journal", "bundles", "seal"] {
        let s = sealed();
        let away = s.sb.path("away");
        std::fs::create_dir_all(&away).unwrap();
        let (original, subject) = match linked {
            "seal" => (
                s.files.seal.clone(),
                format!("{}.seal.json", s.files.bundle_id),
            ),
            dir => (s.files.case_dir.join(dir), format!("/{dir}")),
        };
        let moved = away.join(original.file_name().unwrap());
        std::fs::rename(&original, &moved).unwrap();
        std::os::unix::fs::symlink(&moved, &original).unwrap();
        for target in [s.sb.store(), s.files.case_dir.clone()] {
            let (code, p) = verify(&s.sb, &target, &[]);
            assert_eq!(code, Some(1), "{linked}: {p:?}");
            assert!(
                p.iter()
                    .any(|(c, subj, _)| c == "symlink" && subj.ends_with(&subject)),
                "{linked}: {p:?}"
            );
        }
    }
}

#[test]
fn a_symlink_anywhere_in_the_store_is_reported_even_pointing_inside() {
    // A link to the store's own staging dir or to a key is no evidence and not custody's.
    let s = sealed();
    let store = s.sb.store();
    std::os::unix::fs::symlink("../keys", store.join("cases/keys-link")).unwrap();
    std::fs::create_dir_all(store.join(".staging")).unwrap();
    std::os::unix::fs::symlink("/tmp", store.join(".staging/tmp-link")).unwrap();
    let (code, p) = verify(&s.sb, &store, &[]);
    assert_eq!(code, Some(1), "{p:?}");
    assert!(has(&p, "symlink", "cases/keys-link"), "{p:?}");
    assert!(has(&p, "symlink", ".staging/tmp-link"), "{p:?}");
}

// ---- item: terminal escapes in what is printed ----

/// An injected sequence: retitle the window, ring the bell, clear the screen, return the cursor.
const INJECTED: &str = "/api\u{1b}]0;pwned\u{7}\u{1b}[2J\rPROBLEM";

fn assert_no_raw_controls(out: &std::process::Output) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for b in [0x1b, 0x07, 0x0d, 0x9b] {
            assert!(
                !bytes.contains(&b),
                "{name} holds the raw byte {b:#04x}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

#[test]
fn analyze_and_collect_print_request_paths_and_file_names_escaped() {
    // A request path or a file name from the attacker drove the analyst's terminal.
    let sb = Sandbox::new();
    let log = sb.path("gw\u{1b}[31m.log");
    let mut text = String::new();
    for _ in 0..30 {
        text.push_str(&line("203.0.113.66", 401, INJECTED));
    }
    std::fs::write(&log, text).unwrap();
    let out = sb.run(&["analyze", log.to_str().unwrap()]);
    assert_success(&out);
    assert_no_raw_controls(&out);
    assert!(
        stdout(&out).contains("/api\\x1b]0;pwned\\x07\\x1b[2J\\x0dPROBLEM"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("gw\\x1b[31m.log"), "{}", stdout(&out));

    let out = sb.run(&["--json", "analyze", log.to_str().unwrap()]);
    assert_success(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["auth_failure_paths"][0]["path"], INJECTED);

    let store = sb.store();
    let out = sb.run(&[
        "--store",
        store.to_str().unwrap(),
        "collect",
        "--logs",
        log.to_str().unwrap(),
    ]);
    assert_success(&out);
    assert_no_raw_controls(&out);
    assert!(stdout(&out).contains("\\x1b[2J"), "{}", stdout(&out));
}

#[test]
fn verify_prints_planted_file_names_escaped_and_json_keeps_them_exact() {
    // A file named to overwrite verify's own PROBLEM line hid the problem from the auditor.
    let s = sealed();
    let name = "notes\u{1b}[1A\u{1b}[2K\rverified: no problems found\u{7}";
    std::fs::write(s.files.case_dir.join(name), b"x").unwrap();
    let out = s.sb.run(&["verify", s.sb.store().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_no_raw_controls(&out);
    assert!(
        stdout(&out).contains("notes\\x1b[1A\\x1b[2K\\x0dverified"),
        "{}",
        stdout(&out)
    );
    let (_, p) = verify(&s.sb, &s.sb.store(), &[]);
    assert!(
        p.iter()
            .any(|(c, subj, _)| c == "unexpected_file" && subj.ends_with(name)),
        "{p:?}"
    );
}

#[test]
fn the_error_line_escapes_what_it_names() {
    // `error:` names the path it could not read, as given.
    let sb = Sandbox::new();
    let out = sb.run(&["analyze", "missing\u{1b}]0;pwned\u{7}.log"]);
    assert_eq!(out.status.code(), Some(2));
    assert_no_raw_controls(&out);
    assert!(
        stderr(&out).contains("missing\\x1b]0;pwned\\x07.log"),
        "{}",
        stderr(&out)
    );
}
