//! The `actions` bundle an execution seals when it ends (done or failed): a BagIt bag signed
//! like evidence (`seal`), holding what an auditor needs to check what was done and on whose
//! authority, with custody or with standard tools alone:
//!
//! ```text
//! data/plan/plan.json                      the plan's exact bytes (its SHA-256 is the digest)
//! data/plan/plan.json.sig | .sshsig        the proposer's signature
//! data/plan/approvers.allowed_signers      the roster the plan pins
//! data/plan/approvals/<n>.json(.sig)       every approval statement and its SSHSIG
//! data/results.json                        each step's outcome, writes and result
//! data/objects/<step>-<i>.before.json      each object written, as the plan read it
//! data/objects/<step>-<i>.after.json       and as the API server answered the write
//! data/journal/<seq>.json(.sig)            the journal entries of the plan's executions
//! ```
//!
//! No Secret value is in it: the new Secret appears only by name and its values' SHA-256.

use serde_json::json;

use super::run::{Recorder, Report};
use crate::case::entry::{ActionsSealed, Details};
use crate::id::BundleId;
use crate::keys::SigningKey;
use crate::plan::Plan;
use crate::seal::{BagBuilder, BagInfo, BagPath};
use crate::store::Store;
use crate::store::StoreKey;

/// The format of `data/results.json`.
pub const RESULTS_FORMAT: &str = "custody-actions/1";

/// Seals the execution's `actions` bundle into the case and journals it (`actions_sealed`).
pub fn seal<S>(
    store: &dyn Store,
    key: &SigningKey,
    plan: &Plan<S>,
    rec: &mut Recorder<'_>,
    report: &Report,
) -> Result<Sealed, String> {
    let case = plan.case().clone();
    let id = plan.id().clone();
    let now = time::OffsetDateTime::now_utc();
    let created_at = crate::timefmt::rfc3339(now);
    let bundle = BundleId::generate(now);
    let mtime = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let mut bag = BagBuilder::new(store.staging_dir().to_owned(), bundle.clone(), mtime)
        .map_err(|e| e.to_string())?;
    let mut add = |path: String, bytes: Vec<u8>| -> Result<(), String> {
        let path = BagPath::new(path).map_err(|e| e.to_string())?;
        bag.add_bytes(path, bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let get = |key: &StoreKey| store.get(key).map_err(|e| e.to_string());
    add("data/plan/plan.json".into(), plan.bytes().to_vec())?;
    for (key, name) in [
        (
            StoreKey::PlanSignature(case.clone(), id.clone()),
            "plan.json.sig",
        ),
        (
            StoreKey::PlanSshSignature(case.clone(), id.clone()),
            "plan.json.sshsig",
        ),
    ] {
        if store.exists(&key).map_err(|e| e.to_string())? {
            add(format!("data/plan/{name}"), get(&key)?)?;
        }
    }
    add(
        "data/plan/approvers.allowed_signers".into(),
        plan.pinned_roster_text().as_bytes().to_vec(),
    )?;
    let (approvals, _) =
        crate::plan::store::stored_approvals(store, &case, &id).map_err(|e| e.to_string())?;
    for a in approvals {
        let name = crate::store::layout::journal_name(a.number);
        add(format!("data/plan/approvals/{name}"), a.statement)?;
        add(format!("data/plan/approvals/{name}.sig"), a.signature)?;
    }
    let mut objects = Vec::new();
    for step in &report.steps {
        for (i, o) in step.objects.iter().enumerate() {
            let stem = format!("data/objects/{}-{}", step.number, i + 1);
            for (side, value) in [("before", &o.before), ("after", &o.after)] {
                if let Some(v) = value {
                    let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| e.to_string())?;
                    bytes.push(b'\n');
                    add(format!("{stem}.{side}.json"), bytes)?;
                }
            }
            objects.push(json!({"step": step.number, "object": o.object, "files": stem}));
        }
    }
    // The journal entries of the plan's executions, from the first one's start to the head.
    let chain = crate::case::journal::check_chain(store, &case).map_err(|e| e.to_string())?;
    let first = chain.entries.iter().find_map(|(e, _)| match &e.details {
        Details::ExecutionStarted(s) if s.plan == id && s.plan_sha256 == plan.digest() => {
            Some(e.seq)
        }
        _ => None,
    });
    let head = rec.head().map_or(0, |h| h.seq);
    let mut journal = Vec::new();
    for seq in first.unwrap_or(head + 1)..=head {
        let name = crate::store::layout::journal_name(seq);
        add(
            format!("data/journal/{name}"),
            get(&StoreKey::JournalEntry(case.clone(), seq))?,
        )?;
        let sig = StoreKey::JournalSignature(case.clone(), seq);
        if store.exists(&sig).map_err(|e| e.to_string())? {
            add(format!("data/journal/{name}.sig"), get(&sig)?)?;
        }
        journal.push(seq);
    }
    let results = json!({
        "format": RESULTS_FORMAT,
        "case": case,
        "plan": id,
        "plan_sha256": plan.digest(),
        "outcome": report.outcome,
        "sealed_at": created_at,
        "steps": report.steps,
        "objects": objects,
        "journal": journal,
    });
    let mut bytes = serde_json::to_vec_pretty(&results).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    add("data/results.json".into(), bytes)?;
    let info = BagInfo {
        bagging_date: crate::timefmt::date(now),
        external_identifier: case.to_string(),
        custody_labels: vec![
            ("Bundle-Id".into(), bundle.to_string()),
            ("Contents".into(), "actions".into()),
            ("Created-At".into(), created_at.clone()),
            ("Key-Id".into(), key.public().id().to_string()),
            ("Plan".into(), id.to_string()),
            (
                "Tool".into(),
                format!("custody {}", env!("CARGO_PKG_VERSION")),
            ),
        ],
    };
    let sealed = bag.finish(&info).map_err(|e| e.to_string())?;
    let outcome = report.outcome;
    let digest = plan.digest();
    // On S3, what the PUTs returned (versions, locks) is journaled, as for evidence — also
    // when the sealing stopped part-way, so that what was stored is on record, not taken for
    // objects added behind custody's back.
    let recording = crate::store::Recording::new(store);
    let stored = crate::seal::store_sealed(
        &recording,
        key,
        rec.journal(),
        (&bundle, &created_at),
        sealed,
        |b| {
            Details::ActionsSealed(ActionsSealed {
                archive: b.archive,
                bundle_id: b.bundle_id,
                key_id: b.key_id,
                outcome,
                plan: id,
                plan_sha256: digest,
                seal: b.seal,
            })
        },
    );
    let records = recording.records();
    let recorded = if records.is_empty() {
        Ok(())
    } else {
        let objects = crate::case::entry::ObjectsStored {
            objects: records
                .iter()
                .map(crate::case::entry::ObjectReceipt::from)
                .collect(),
        };
        rec.append(Details::ObjectsStored(objects)).map(|_| ())
    };
    match (stored, recorded) {
        (Ok(_), Ok(())) => Ok(Sealed {
            bundle,
            warning: None,
        }),
        (Ok(_), Err(e)) => Ok(Sealed {
            bundle,
            warning: Some(format!(
                "the actions bundle is sealed, but the versions and locks of its stored objects could not be journaled ({e}): verify of the S3 store reports them as unrecorded"
            )),
        }),
        (Err(e), _) => Err(e.to_string()),
    }
}

/// A sealed actions bundle, and what could not be journaled of it.
pub struct Sealed {
    pub bundle: BundleId,
    pub warning: Option<String>,
}
