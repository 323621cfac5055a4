//! What a local store holds besides its cases' evidence, checked: no symbolic link anywhere
//! (custody writes none and follows none), and every `keys/<id>.pub` holding key `<id>`.

use std::path::Path;

use super::Report;
use crate::id::{CaseId, KeyId};
use crate::store::{Store, StoreKey};

pub(super) use crate::store::layout::key_file_id;

/// Every `keys/<id>.pub` must hold key `<id>`, whether or not a seal names it: a replaced key
/// is evidence of tampering even before anyone trusts it.
pub(super) fn check_key_files(store: &dyn Store, root: &Path, report: &mut Report) {
    let Ok(entries) = std::fs::read_dir(root.join("keys")) else {
        return;
    };
    let mut ids: Vec<KeyId> = entries
        .flatten()
        .filter_map(|e| key_file_id(&e.file_name().to_string_lossy()))
        .collect();
    ids.sort();
    for id in ids {
        match super::bundle::load_store_key(store, &id) {
            Ok(_) => {}
            Err(super::bundle::KeyFileProblem::Missing(e)) => report.problem(
                "key_invalid",
                StoreKey::PublicKey(id.clone()).path(),
                format!("not a public key: {e}"),
            ),
            Err(super::bundle::KeyFileProblem::Mismatch(_, message)) => report.problem(
                "key_mismatch",
                StoreKey::PublicKey(id.clone()).path(),
                message,
            ),
        }
    }
}

/// Reports every symbolic link under `root/rel` (the whole store when `rel` is empty), without
/// following any: custody writes none, and one in a store, wherever it points, makes what is read
/// there something other than what was stored.
pub(super) fn symlinks(root: &Path, rel: &str, report: &mut Report) {
    let dir = if rel.is_empty() {
        root.to_owned()
    } else {
        root.join(rel)
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        symlink_at(root, &rel, report);
    }
}

/// Reports `root/rel` if it is a symbolic link, or looks inside it if it is a directory.
fn symlink_at(root: &Path, rel: &str, report: &mut Report) {
    let path = root.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = std::fs::read_link(&path)
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            report.problem(
                "symlink",
                rel,
                format!("a symbolic link (to {target:?}): custody writes none and follows none, so what it points to is not the stored evidence"),
            );
        }
        Ok(m) if m.is_dir() => symlinks(root, rel, report),
        _ => {}
    }
}

/// The links a case's verification depends on: `cases/`, the case directory and what is in it,
/// and `keys/`.
pub(super) fn case_symlinks(root: &Path, case: &CaseId, report: &mut Report) {
    if std::fs::symlink_metadata(root.join("cases")).is_ok_and(|m| m.file_type().is_symlink()) {
        symlink_at(root, "cases", report);
        return;
    }
    symlink_at(root, &format!("cases/{case}"), report);
    symlink_at(root, "keys", report);
}
