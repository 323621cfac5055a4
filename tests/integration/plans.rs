//! Plans and approvals in a real store: a case collected from the sample logs, a plan proposed
//! (by the collector key or a person's SSH key), approvals signed with real `ssh-keygen` keys
//! through `custody approve`, `plan status` and `verify --approvers` — and each kind of tampering
//! with a plan or its approvals caught with its code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use custody::approval::Principal;
use custody::digest::Sha256Digest;
use custody::id::{BundleId, CaseId, PlanId};
use custody::keys::SigningKey;
use custody::plan::document::*;
use custody::plan::{self, PlanError, ProposalSigner};
use custody::policy::containment::StepKind;
use custody::store::{LocalStore, Store, StoreKey};
use time::{Duration, OffsetDateTime};

use crate::approval::{ssh_key, SshKey};
use crate::util::{assert_success, make_writable, tool, Sandbox};

/// A sealed case, a roster of four and a plan document for it.
struct World {
    sb: Sandbox,
    case: CaseId,
    bundle: BundleId,
    archive_sha256: Sha256Digest,
    roster: String,
    keys: BTreeMap<&'static str, SshKey>,
}

impl World {
    fn new() -> World {
        let sb = Sandbox::new();
        let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/api-gateway-incident.log");
        let result = sb.collect(&[&log]);
        let keys_dir = sb.path("ssh");
        std::fs::create_dir_all(&keys_dir).unwrap();
        let mut keys = BTreeMap::new();
        let mut roster = String::from("# the security team\n");
        for (name, who) in [
            ("alice", "alice@example.org"),
            ("bob", "bob@example.org"),
            ("carol", "carol@example.org"),
            (
                "paula",
                "paula@example.org namespaces=\"custody-approval,custody-proposal\"",
            ),
        ] {
            let k = ssh_key(&keys_dir, name);
            roster.push_str(&format!("{who} {}\n", k.openssh));
            keys.insert(name, k);
        }
        std::fs::write(sb.path("approvers.allowed_signers"), &roster).unwrap();
        World {
            case: CaseId::new(result["case_id"].as_str().unwrap()).unwrap(),
            bundle: BundleId::new(result["bundle_id"].as_str().unwrap()).unwrap(),
            archive_sha256: result["archive"]["sha256"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            sb,
            roster,
            keys,
        }
    }

    fn store(&self) -> LocalStore {
        LocalStore::open(&self.sb.store(), false).unwrap()
    }

    fn collector(&self) -> SigningKey {
        SigningKey::load(&self.sb.path("home/.config/custody/collector.key")).unwrap()
    }

    /// A valid plan of the case needing two approvals, proposed by `proposer`.
    fn doc(&self, id: &str, proposer: ProposerClaim) -> PlanDoc {
        let store = self.store();
        let chain = custody::case::check_chain(&store, &self.case).unwrap();
        let head = chain.head().unwrap();
        let now = OffsetDateTime::now_utc();
        PlanDoc {
            format: PLAN_FORMAT.into(),
            case: self.case.clone(),
            plan: PlanId::new(id).unwrap(),
            kind: PlanKind::Containment,
            evidence: PinnedEvidence {
                bundles: vec![PinnedBundle {
                    bundle: self.bundle.clone(),
                    archive_sha256: self.archive_sha256,
                }],
                journal_head: JournalHead {
                    seq: head.seq,
                    sha256: head.sha256,
                },
            },
            cluster: ClusterIdentity {
                kube_system_uid: "0d9c6f2e-uid".into(),
                server: "https://127.0.0.1:6443".into(),
            },
            proposer,
            created_at: custody::timefmt::rfc3339(now),
            not_after: custody::timefmt::rfc3339(now + Duration::hours(2)),
            quorum: QuorumNeed {
                required: 2,
                by_kind: [
                    (StepKind::BlockIps, 2),
                    (StepKind::RotateSecrets, 2),
                    (StepKind::InvalidateSessions, 2),
                ]
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
                veto: "any_reject".into(),
            },
            policy_sha256: Sha256Digest::of(b"containment.yaml"),
            roster_sha256: Sha256Digest::of(self.roster.as_bytes()),
            addresses: Addresses::default(),
            steps: Vec::new(),
            rolls_back: None,
        }
    }

    fn collector_claim(&self) -> ProposerClaim {
        ProposerClaim::Collector {
            key_id: self.collector().public().id().clone(),
        }
    }

    /// Proposes plan `id` by the collector key.
    fn propose(&self, id: &str) -> PlanId {
        let doc = self.doc(id, self.collector_claim());
        let key = self.collector();
        let stored = plan::propose(
            &self.store(),
            &key,
            &doc,
            &self.roster,
            ProposalSigner::Collector(&key),
        )
        .unwrap();
        assert_eq!(
            stored.plan_sha256,
            Sha256Digest::of(&custody::canonical::to_vec(&doc).unwrap())
        );
        stored.plan
    }

    fn approve(&self, plan: &PlanId, who: &str, extra: &[&str]) -> std::process::Output {
        let store = self.sb.store();
        let key = self.keys[who].private.to_str().unwrap().to_owned();
        // The digest the approver read; a plan that does not load gets one that cannot match.
        let digest = plan::load(&self.store(), &self.case, plan, None)
            .map_or_else(|_| "0".repeat(64), |p| p.digest().to_string());
        let mut args = vec![
            "--store",
            store.to_str().unwrap(),
            "--json",
            "approve",
            self.case.as_str(),
            plan.as_str(),
            "--key",
            &key,
            "--sha256",
            &digest,
        ];
        args.extend_from_slice(extra);
        self.sb.run(&args)
    }

    fn status(&self, plan: &PlanId) -> (Option<i32>, serde_json::Value) {
        let store = self.sb.store();
        let roster = self.sb.path("approvers.allowed_signers");
        let out = self.sb.run(&[
            "--store",
            store.to_str().unwrap(),
            "--json",
            "plan",
            "status",
            self.case.as_str(),
            plan.as_str(),
            "--approvers",
            roster.to_str().unwrap(),
        ]);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or_default(),
        )
    }

    fn verify(&self) -> (Option<i32>, serde_json::Value) {
        let store = self.sb.store();
        let roster = self.sb.path("approvers.allowed_signers");
        let out = self.sb.run(&[
            "--json",
            "verify",
            store.to_str().unwrap(),
            "--approvers",
            roster.to_str().unwrap(),
        ]);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap(),
        )
    }

    fn plan_dir(&self, plan: &PlanId) -> PathBuf {
        self.sb
            .store()
            .join(format!("cases/{}/plans/{plan}", self.case))
    }
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap().to_owned())
        .collect()
}

/// Overwrites a read-only stored file, as an attacker with write access could.
fn overwrite(path: &Path, bytes: &[u8]) {
    make_writable(path);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_collector_proposal_reaches_quorum_by_two_principals_approving_through_the_cli() {
    let w = World::new();
    let id = w.propose("plan-1");
    let loaded = plan::load(&w.store(), &w.case, &id, None).unwrap();
    assert_eq!(
        loaded.proposer().collector_key(),
        Some(w.collector().public().id())
    );
    assert_eq!(plan::list(&w.store(), &w.case).unwrap().0, vec![id.clone()]);
    let (code, s) = w.status(&id);
    assert_eq!(code, Some(4), "{s}");
    assert_eq!(s["plans"][0]["quorum_reached"], false);

    let out = w.approve(&id, "alice", &["--reason", "seen the diff"]);
    assert_success(&out);
    let recorded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(recorded["number"], 1);
    assert_eq!(recorded["principal"], "alice@example.org");
    // The stored statement verifies with ssh-keygen, against the roster stored with the plan.
    let dir = w.plan_dir(&id);
    let stdin = std::fs::File::open(dir.join("approvals/0000000001.json")).unwrap();
    let verified = Command::new(tool("ssh-keygen"))
        .args(["-Y", "verify", "-f"])
        .arg(dir.join("approvers.allowed_signers"))
        .args(["-I", "alice@example.org", "-n", "custody-approval", "-s"])
        .arg(dir.join("approvals/0000000001.json.sig"))
        .stdin(stdin)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
    // The journal records it.
    let chain = custody::case::check_chain(&w.store(), &w.case).unwrap();
    let journaled = plan::store::journaled_approvals(&chain);
    assert_eq!(journaled.len(), 1);
    assert_eq!(
        journaled[0].2.principal,
        Principal::new("alice@example.org").unwrap()
    );
    assert_eq!(plan::store::journaled_proposals(&chain, &id).count(), 1);

    // alice again does not count twice.
    assert_success(&w.approve(&id, "alice", &[]));
    let (code, s) = w.status(&id);
    assert_eq!(code, Some(4), "{s}");
    assert_eq!(s["plans"][0]["counted"], 1);
    assert_eq!(s["plans"][0]["approvals"][1]["outcome"], "same_principal");
    assert_success(&w.approve(&id, "bob", &[]));
    let (code, s) = w.status(&id);
    assert_eq!(code, Some(0), "{s}");
    assert_eq!(s["plans"][0]["quorum_reached"], true);

    let (code, report) = w.verify();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["plans"][0]["quorum_reached"], true, "{report}");
    assert_eq!(report["plans"][0]["counted"], 2);
}

#[test]
fn a_person_proposes_with_an_ssh_key_and_their_own_approval_never_counts() {
    let w = World::new();
    let claim = ProposerClaim::Person {
        principal: Principal::new("paula@example.org").unwrap(),
        key_fingerprint: w.keys["paula"].fingerprint,
    };
    let doc = w.doc("plan-p", claim);
    let key = w.collector();
    // Signed by someone other than the named proposer: refused.
    let wrong = plan::propose(
        &w.store(),
        &key,
        &doc,
        &w.roster,
        ProposalSigner::Person(&w.keys["bob"].private),
    );
    assert!(
        matches!(wrong, Err(PlanError::Proposal { .. })),
        "{wrong:?}"
    );
    let stored = plan::propose(
        &w.store(),
        &key,
        &doc,
        &w.roster,
        ProposalSigner::Person(&w.keys["paula"].private),
    )
    .unwrap();
    let loaded = plan::load(&w.store(), &w.case, &stored.plan, None).unwrap();
    assert!(loaded.proposer().person_key().is_some());
    assert!(w.plan_dir(&stored.plan).join("plan.json.sshsig").is_file());
    assert_success(&w.approve(&stored.plan, "paula", &[]));
    assert_success(&w.approve(&stored.plan, "alice", &[]));
    let (code, s) = w.status(&stored.plan);
    assert_eq!(code, Some(4), "{s}");
    assert_eq!(s["plans"][0]["approvals"][0]["outcome"], "proposer");
    assert_eq!(s["plans"][0]["counted"], 1);
}

#[test]
fn a_reject_vetoes_and_is_information_for_verify() {
    let w = World::new();
    let id = w.propose("plan-r");
    assert_success(&w.approve(&id, "alice", &[]));
    assert_success(&w.approve(&id, "bob", &[]));
    assert_success(&w.approve(&id, "carol", &["--reject", "--reason", "blocks the office"]));
    let (code, s) = w.status(&id);
    assert_eq!(code, Some(4), "{s}");
    assert_eq!(s["plans"][0]["rejected"], true);
    assert_eq!(s["plans"][0]["reasons"][0]["code"], "quorum_vetoed");
    let (code, report) = w.verify();
    assert_eq!(code, Some(0), "a veto is not corruption: {report}");
    assert_eq!(report["plans"][0]["quorum_reached"], false);
}

#[test]
fn the_library_refuses_what_the_cli_must_not_record() {
    let w = World::new();
    let id = w.propose("plan-x");
    let store = w.store();
    let loaded = plan::load(&store, &w.case, &id, None).unwrap();
    let s = custody::approval::Statement::new(
        w.case.clone(),
        id.clone(),
        Sha256Digest::of(b"another plan"),
        custody::approval::Decision::Approve,
        Principal::new("alice@example.org").unwrap(),
        w.keys["alice"].fingerprint,
        String::new(),
        OffsetDateTime::now_utc(),
    );
    let (bytes, sig) = s.sign(&w.keys["alice"].private).unwrap();
    let err = loaded
        .record(
            &store,
            &w.collector(),
            &bytes,
            &sig,
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
    assert_eq!(err.http_status(), 422, "{err}");
    let spaced = String::from_utf8(bytes.clone())
        .unwrap()
        .replacen(',', ", ", 1);
    let err = loaded
        .record(
            &store,
            &w.collector(),
            spaced.as_bytes(),
            &sig,
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
    assert_eq!(err.http_status(), 400, "{err}");
    // A statement signed by a key speaking for another principal.
    let mut s2 = s.clone();
    s2.plan_sha256 = loaded.digest();
    s2.principal = Principal::new("bob@example.org").unwrap();
    let (bytes, sig) = s2.sign(&w.keys["alice"].private).unwrap();
    let err = loaded
        .record(
            &store,
            &w.collector(),
            &bytes,
            &sig,
            OffsetDateTime::now_utc(),
        )
        .unwrap_err();
    assert!(matches!(err, plan::ApprovalError::NotAllowed(_)), "{err}");
    // Past not_after.
    s2.principal = Principal::new("alice@example.org").unwrap();
    let (bytes, sig) = s2.sign(&w.keys["alice"].private).unwrap();
    let late = OffsetDateTime::now_utc() + Duration::hours(3);
    let err = loaded
        .record(&store, &w.collector(), &bytes, &sig, late)
        .unwrap_err();
    assert!(matches!(err, plan::ApprovalError::Expired(_)), "{err}");
    // Sent twice, recorded once.
    let now = OffsetDateTime::now_utc();
    let first = loaded
        .record(&store, &w.collector(), &bytes, &sig, now)
        .unwrap();
    let again = loaded
        .record(&store, &w.collector(), &bytes, &sig, now)
        .unwrap();
    assert_eq!(first, again);
    assert!(store
        .get(&StoreKey::Approval(w.case.clone(), id.clone(), 2))
        .is_err());
    // A plan pinning evidence that was not sealed is refused.
    let mut doc = w.doc("plan-e", w.collector_claim());
    doc.evidence.bundles[0].archive_sha256 = Sha256Digest::of(b"other");
    let key = w.collector();
    let err = plan::propose(
        &store,
        &key,
        &doc,
        &w.roster,
        ProposalSigner::Collector(&key),
    )
    .unwrap_err();
    assert_eq!(err.code(), "plan_proposal_refused", "{err}");
    // The plan id is taken.
    let doc = w.doc("plan-x", w.collector_claim());
    let err = plan::propose(
        &store,
        &key,
        &doc,
        &w.roster,
        ProposalSigner::Collector(&key),
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::Exists(_)), "{err}");
}

#[test]
fn load_and_verify_catch_each_kind_of_tampering() {
    let w = World::new();
    let a = w.propose("plan-a");
    let b = w.propose("plan-b");
    let c = w.propose("plan-c");
    let d = w.propose("plan-d");
    assert_success(&w.approve(&d, "alice", &[]));
    assert_success(&w.approve(&d, "bob", &[]));
    let (code, report) = w.verify();
    assert_eq!(code, Some(0), "{report}");

    // a: plan.json not canonical any more (sidecar now wrong as well).
    let path = w.plan_dir(&a).join("plan.json");
    let text = std::fs::read_to_string(&path).unwrap();
    overwrite(&path, text.replacen(',', ", ", 1).as_bytes());
    let err = plan::load(&w.store(), &w.case, &a, None).unwrap_err();
    assert_eq!(err.code(), "plan_not_canonical", "{err}");
    // b: the plan changed canonically and its sidecar updated: the signature no longer holds.
    let path = w.plan_dir(&b).join("plan.json");
    let changed = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"required\":2", "\"required\":1");
    overwrite(&path, changed.as_bytes());
    let sidecar = plan::store::sidecar_text(&Sha256Digest::of(changed.as_bytes()));
    overwrite(&w.plan_dir(&b).join("plan.json.sha256"), sidecar.as_bytes());
    let err = plan::load(&w.store(), &w.case, &b, None).unwrap_err();
    assert_eq!(err.code(), "plan_signature_invalid", "{err}");
    // c: the sidecar, then the roster.
    let sidecar = w.plan_dir(&c).join("plan.json.sha256");
    let good = std::fs::read(&sidecar).unwrap();
    overwrite(
        &sidecar,
        format!("{}  plan.json\n", "0".repeat(64)).as_bytes(),
    );
    assert_eq!(
        plan::load(&w.store(), &w.case, &c, None)
            .unwrap_err()
            .code(),
        "plan_digest_mismatch"
    );
    let (_, report) = w.verify();
    assert!(
        codes(&report).contains(&"plan_digest_mismatch".to_string()),
        "{report}"
    );
    overwrite(&sidecar, &good);
    let roster = w.plan_dir(&c).join("approvers.allowed_signers");
    let mut text = std::fs::read_to_string(&roster).unwrap();
    text.push_str(&format!(
        "mallory@example.org {}\n",
        w.keys["carol"].openssh
    ));
    overwrite(&roster, text.as_bytes());
    assert_eq!(
        plan::load(&w.store(), &w.case, &c, None)
            .unwrap_err()
            .code(),
        "plan_roster_mismatch"
    );
    // d: an approval's signature replaced by another's; a copy not journaled; one removed.
    let approvals = w.plan_dir(&d).join("approvals");
    let sig2 = std::fs::read(approvals.join("0000000002.json.sig")).unwrap();
    std::fs::copy(
        approvals.join("0000000002.json"),
        approvals.join("0000000009.json"),
    )
    .unwrap();
    std::fs::write(approvals.join("0000000009.json.sig"), &sig2).unwrap();
    overwrite(&approvals.join("0000000001.json.sig"), &sig2);
    let (code, report) = w.verify();
    assert_eq!(code, Some(1), "{report}");
    let found = codes(&report);
    for code in [
        "plan_not_canonical",
        "plan_signature_invalid",
        "plan_roster_mismatch",
        "approval_signature_invalid",
        "approval_not_journaled",
    ] {
        assert!(found.contains(&code.to_string()), "{code}: {found:?}");
    }
    std::fs::remove_file(approvals.join("0000000002.json")).unwrap();
    let (_, report) = w.verify();
    assert!(
        codes(&report).contains(&"approval_missing".to_string()),
        "{report}"
    );
}

#[test]
fn verify_reports_a_plan_whose_evidence_is_not_the_sealed_evidence() {
    let w = World::new();
    // Written behind custody's back: pinned evidence that was never sealed, no journal entry.
    let mut doc = w.doc("plan-f", w.collector_claim());
    doc.evidence.bundles[0].archive_sha256 = Sha256Digest::of(b"forged");
    let bytes = custody::canonical::to_vec(&doc).unwrap();
    let store = LocalStore::open(&w.sb.store(), false).unwrap();
    let (case, id) = (w.case.clone(), doc.plan.clone());
    let key = w.collector();
    store
        .put_new(
            &StoreKey::PlanRoster(case.clone(), id.clone()),
            w.roster.as_bytes(),
        )
        .unwrap();
    let sidecar = plan::store::sidecar_text(&Sha256Digest::of(&bytes));
    store
        .put_new(
            &StoreKey::PlanSidecar(case.clone(), id.clone()),
            sidecar.as_bytes(),
        )
        .unwrap();
    store
        .put_new(
            &StoreKey::PlanSignature(case.clone(), id.clone()),
            &key.sign(&bytes),
        )
        .unwrap();
    store.put_new(&StoreKey::Plan(case, id), &bytes).unwrap();
    let (code, report) = w.verify();
    assert_eq!(code, Some(1), "{report}");
    let found = codes(&report);
    assert!(
        found.contains(&"plan_evidence_mismatch".to_string()),
        "{found:?}"
    );
    assert!(
        found.contains(&"plan_not_journaled".to_string()),
        "{found:?}"
    );
}

#[test]
fn a_daemons_proposal_is_checked_with_a_trusted_key_when_one_is_given() {
    let w = World::new();
    let id = w.propose("plan-t");
    let store = w.sb.store();
    let good = w.sb.path("collector.pub");
    std::fs::write(&good, w.collector().public().to_pem().unwrap()).unwrap();
    let other = w.sb.path("other.pub");
    std::fs::write(&other, SigningKey::generate().public().to_pem().unwrap()).unwrap();
    let show = |key: &Path| {
        w.sb.run(&[
            "--store",
            store.to_str().unwrap(),
            "plan",
            "show",
            w.case.as_str(),
            id.as_str(),
            "--public-key",
            key.to_str().unwrap(),
        ])
    };
    assert_success(&show(&good));
    let out = show(&other);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DOES NOT VERIFY"),
        "{out:?}"
    );
}

/// paula, who may propose and write to the store, writes her own plan.
fn paulas_plan(w: &World, id: &str, required: u32) -> custody::plan::document::PlanDoc {
    let claim = ProposerClaim::Person {
        principal: Principal::new("paula@example.org").unwrap(),
        key_fingerprint: w.keys["paula"].fingerprint,
    };
    let mut doc = w.doc(id, claim);
    doc.quorum.required = required;
    for n in doc.quorum.by_kind.values_mut() {
        *n = required;
    }
    doc
}

#[test]
fn a_plan_that_asks_for_fewer_approvals_than_the_policy_needs_the_policys() {
    let w = World::new();
    // Consistent in itself (every kind needs 1), but containment.yaml in force needs 2.
    let doc = paulas_plan(&w, "plan-q", 1);
    let signer = ProposalSigner::Person(&w.keys["paula"].private);
    let stored = plan::propose(&w.store(), &w.collector(), &doc, &w.roster, signer).unwrap();
    assert_success(&w.approve(&stored.plan, "alice", &[]));
    let (code, s) = w.status(&stored.plan);
    assert_eq!(code, Some(4), "{s}");
    assert_eq!(s["plans"][0]["required"], 2, "{s}");
    assert_eq!(s["plans"][0]["quorum_reached"], false, "{s}");
    assert_success(&w.approve(&stored.plan, "bob", &[]));
    let (code, s) = w.status(&stored.plan);
    assert_eq!(code, Some(0), "{s}");
}

#[test]
fn a_plan_journaled_by_a_key_the_store_does_not_publish_is_not_a_plan() {
    let w = World::new();
    let doc = paulas_plan(&w, "plan-j", 2);
    let stranger = SigningKey::generate();
    let signer = ProposalSigner::Person(&w.keys["paula"].private);
    let stored = plan::propose(&w.store(), &stranger, &doc, &w.roster, signer).unwrap();
    // Checked with the collector's key from a trusted source, the stranger's entry refuses the
    // plan (the store publishes every writer's key: without a trusted key it proves less).
    let trusted = w.collector().public().clone();
    let err = plan::load(&w.store(), &w.case, &stored.plan, Some(&trusted)).unwrap_err();
    assert_eq!(err.code(), "plan_journal_unsound", "{err}");
    let pem = w.sb.path("collector.pub");
    std::fs::write(&pem, trusted.to_pem().unwrap()).unwrap();
    let out = w.approve(
        &stored.plan,
        "alice",
        &["--public-key", pem.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("journal does not check"),
        "{out:?}"
    );
    // With the entry's signature removed, refused whatever key checks.
    let sig = w.sb.store().join(format!(
        "cases/{}/journal/{:010}.json.sig",
        w.case, stored.journal_seq
    ));
    make_writable(sig.parent().unwrap());
    std::fs::remove_file(&sig).unwrap();
    let err = plan::load(&w.store(), &w.case, &stored.plan, None).unwrap_err();
    assert_eq!(err.code(), "plan_journal_unsound", "{err}");
    let (code, report) = w.verify();
    assert_eq!(code, Some(1));
    assert!(
        codes(&report).contains(&"journal_entry_unsigned".to_owned()),
        "{report}"
    );
}

#[test]
fn a_plan_deleted_from_the_store_is_reported_by_verify() {
    let w = World::new();
    let id = w.propose("plan-d");
    assert_success(&w.approve(&id, "alice", &[]));
    let dir = w.sb.store().join(format!("cases/{}/plans/{id}", w.case));
    let parent = dir.parent().unwrap().to_owned();
    let chmod = Command::new("chmod")
        .args(["-R", "u+rwX"])
        .arg(&parent)
        .status()
        .unwrap();
    assert!(chmod.success());
    std::fs::remove_dir_all(&dir).unwrap();
    let (code, report) = w.verify();
    assert_eq!(code, Some(1), "{report}");
    assert!(
        codes(&report).contains(&"plan_missing".to_owned()),
        "{report}"
    );
}
