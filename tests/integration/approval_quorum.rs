//! The quorum matrix: every rule of CONTAINMENT.md's "Approvals", each tried with real keys made
//! per test by `ssh-keygen` and statements signed by `ssh-keygen -Y sign`, against
//! `approval::evaluate` — which must return every reason a plan is refused.

use std::path::Path;

use custody::approval::quorum::{NotCounted, Outcome, PlanFacts, Proposer, Reason, Refusal};
use custody::approval::roster::{NotAllowed, Roster};
use custody::approval::statement::{sign_proposal, Statement};
use custody::approval::{
    evaluate, sshsig, ApprovalRecorded, Decision, QuorumInput, StoredApproval,
};
use custody::approval::{APPROVAL_NAMESPACE, PROPOSAL_NAMESPACE};
use custody::digest::Sha256Digest;
use custody::id::{CaseId, PlanId};
use time::{Duration, OffsetDateTime};

use crate::approval::{principal, ssh_key, ssh_time, SshKey};

const PLAN_JSON: &[u8] = b"{\"case\":\"case-1\",\"format\":\"custody-plan/1\",\"plan\":\"plan-1\"}";

/// A roster, the plan's facts and approvals signed for it; each test changes one thing.
struct World {
    dir: tempfile::TempDir,
    now: OffsetDateTime,
    case: CaseId,
    plan: PlanId,
    roster: Roster,
    current: Roster,
    proposer: Proposer,
    required: u32,
    /// The plan's own largest step need (`by_kind`), and the policy in force's.
    steps_required: Option<u32>,
    policy_required: u32,
    created_at: OffsetDateTime,
    not_after: OffsetDateTime,
    max_lifetime: Duration,
    journaled_at: Option<OffsetDateTime>,
    stored: Vec<StoredApproval>,
    journaled: Vec<ApprovalRecorded>,
    api_server_date: Option<OffsetDateTime>,
}

impl World {
    /// A roster of `lines` (`principal [options]` and the key's name), proposed by the collector.
    fn new(lines: &[(&str, &str)]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("# the security team\n");
        for (who, key) in lines {
            let k = key_in(dir.path(), key);
            text.push_str(&format!("{who} {} {key}\n", k.openssh));
        }
        let roster = Roster::parse("approvers.allowed_signers", &text).unwrap();
        let collector = custody::keys::SigningKey::generate();
        let sig = collector.sign(PLAN_JSON);
        let proposer = Proposer::collector(collector.public(), PLAN_JSON, &sig).unwrap();
        let now = OffsetDateTime::now_utc();
        World {
            dir,
            now,
            case: CaseId::new("case-1").unwrap(),
            plan: PlanId::new("plan-1").unwrap(),
            current: roster.clone(),
            roster,
            proposer,
            required: 2,
            steps_required: Some(2),
            policy_required: 2,
            created_at: now - Duration::minutes(5),
            not_after: now + Duration::hours(2),
            max_lifetime: Duration::hours(2) + Duration::minutes(5),
            journaled_at: Some(now - Duration::minutes(4)),
            stored: Vec::new(),
            journaled: Vec::new(),
            api_server_date: Some(now),
        }
    }

    fn team() -> World {
        World::new(&[
            ("alice@example.org", "alice"),
            ("alice@example.org", "alice-fido"),
            ("bob@example.org", "bob"),
            ("carol@example.org", "carol"),
            (
                "paula@example.org namespaces=\"custody-approval,custody-proposal\"",
                "paula",
            ),
            ("paula@example.org", "paula-2"),
        ])
    }

    /// The team, with paula's proposal (signed with her key, namespace custody-proposal).
    fn proposed_by_paula() -> World {
        let mut w = World::team();
        let sig = sign_proposal(&w.key("paula").private, PLAN_JSON).unwrap();
        w.proposer = Proposer::person(
            &w.roster,
            PLAN_JSON,
            &sig,
            &principal("paula@example.org"),
            w.now,
        )
        .unwrap();
        w
    }

    fn key(&self, name: &str) -> SshKey {
        key_in(self.dir.path(), name)
    }

    fn statement(&self, who: &str, key: &str, decision: Decision) -> Statement {
        Statement::new(
            self.case.clone(),
            self.plan.clone(),
            Sha256Digest::of(PLAN_JSON),
            decision,
            principal(who),
            self.key(key).fingerprint,
            String::new(),
            self.now,
        )
    }

    /// Stores and journals `bytes` signed by `key` in `namespace` as the next approval.
    fn record_bytes(&mut self, statement: &Statement, bytes: Vec<u8>, key: &str, namespace: &str) {
        let number = self.stored.len() as u64 + 1;
        let signature = sshsig::sign(&self.key(key).private, namespace, &bytes).unwrap();
        self.journaled.push(ApprovalRecorded {
            approval: number,
            decision: statement.decision,
            key_fingerprint: self.key(key).fingerprint,
            plan: self.plan.clone(),
            principal: statement.principal.clone(),
            statement_sha256: Sha256Digest::of(&bytes),
        });
        self.stored.push(StoredApproval {
            number,
            statement: bytes,
            signature,
        });
    }

    fn record(&mut self, statement: Statement, key: &str) {
        let bytes = statement.to_canonical().unwrap();
        self.record_bytes(&statement, bytes, key, APPROVAL_NAMESPACE);
    }

    fn approve(&mut self, who: &str, key: &str) {
        let s = self.statement(who, key, Decision::Approve);
        self.record(s, key);
    }

    fn evaluate(&self) -> Result<custody::approval::Approved, Refusal> {
        let facts = PlanFacts {
            case: &self.case,
            plan: &self.plan,
            plan_sha256: Sha256Digest::of(PLAN_JSON),
            roster_sha256: self.roster.sha256(),
            required: self.required,
            steps_required: self.steps_required,
            policy_required: self.policy_required,
            proposer: &self.proposer,
            created_at: self.created_at,
            not_after: self.not_after,
            max_lifetime: self.max_lifetime,
            journaled_at: self.journaled_at,
        };
        evaluate(&QuorumInput {
            plan: facts,
            pinned_roster: &self.roster,
            current_roster: &self.current,
            stored: &self.stored,
            journaled: &self.journaled,
            now: self.now,
            api_server_date: self.api_server_date,
        })
    }

    fn refused(&self) -> Refusal {
        match self.evaluate() {
            Ok(a) => panic!("approved: {:?}", a.tally()),
            Err(r) => r,
        }
    }
}

/// The key named `name` in `dir`, made on first use.
fn key_in(dir: &Path, name: &str) -> SshKey {
    if dir.join(name).exists() {
        let public = dir.join(format!("{name}.pub"));
        let text = std::fs::read_to_string(&public).unwrap();
        let openssh = text
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let key = ssh_key::PublicKey::from_openssh(&openssh).unwrap();
        return SshKey {
            private: dir.join(name),
            public,
            openssh,
            fingerprint: custody::approval::KeyFingerprint::of(&key),
        };
    }
    ssh_key(dir, name)
}

fn codes(r: &Refusal) -> Vec<&'static str> {
    r.reasons.iter().map(Reason::code).collect()
}

fn outcome(r: &Refusal, number: u64) -> &Outcome {
    &r.tally.approvals[number as usize - 1].outcome
}

#[test]
fn enough_distinct_principals_approve_the_plan() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    let approved = w.evaluate().unwrap();
    assert_eq!(
        (approved.tally().counted, approved.tally().required),
        (2, 2)
    );
    assert_eq!(approved.plan_sha256(), Sha256Digest::of(PLAN_JSON));
    assert_eq!(approved.plan().as_str(), "plan-1");
}

#[test]
fn one_principal_with_two_keys_counts_once() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("alice@example.org", "alice-fido");
    let r = w.refused();
    assert_eq!(codes(&r), ["quorum_not_reached"]);
    assert_eq!(outcome(&r, 1), &Outcome::Counted);
    assert_eq!(
        outcome(&r, 2),
        &Outcome::NotCounted(NotCounted::SamePrincipal { first: 1 })
    );
    w.approve("carol@example.org", "carol");
    assert_eq!(w.evaluate().unwrap().tally().counted, 2);
}

#[test]
fn one_key_on_two_principals_is_refused_by_lint() {
    let dir = tempfile::tempdir().unwrap();
    let k = ssh_key(dir.path(), "shared");
    let text = format!("alice@example.org {0}\nbob@example.org {0}\n", k.openssh);
    let err = Roster::parse("approvers.allowed_signers", &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("approvers.allowed_signers:2: the key "),
        "{err}"
    );
    assert!(err.contains("already on line 1"), "{err}");
}

#[test]
fn the_proposers_principal_and_key_never_count() {
    let mut w = World::proposed_by_paula();
    assert_eq!(
        w.proposer.person_key().map(|(p, k)| (p.as_str(), *k)),
        Some(("paula@example.org", w.key("paula").fingerprint))
    );
    w.approve("paula@example.org", "paula");
    w.approve("paula@example.org", "paula-2");
    w.approve("bob@example.org", "bob");
    let r = w.refused();
    assert_eq!(codes(&r), ["quorum_not_reached"]);
    assert_eq!(outcome(&r, 1), &Outcome::NotCounted(NotCounted::Proposer));
    assert_eq!(outcome(&r, 2), &Outcome::NotCounted(NotCounted::Proposer));
    assert_eq!(outcome(&r, 3), &Outcome::Counted);
}

#[test]
fn a_proposer_named_without_a_valid_signature_does_not_exist() {
    let w = World::team();
    let paula = principal("paula@example.org");
    let by = |key: &str, ns: &str, msg: &[u8]| sshsig::sign(&w.key(key).private, ns, msg).unwrap();
    // Unknown key, another's key, the wrong namespace, other bytes, a key without the
    // custody-proposal namespace, no signature at all.
    for sig in [
        by("mallory", PROPOSAL_NAMESPACE, PLAN_JSON),
        by("bob", PROPOSAL_NAMESPACE, PLAN_JSON),
        by("paula", APPROVAL_NAMESPACE, PLAN_JSON),
        by("paula", PROPOSAL_NAMESPACE, b"{\"plan\":\"other\"}"),
        Vec::new(),
    ] {
        assert!(Proposer::person(&w.roster, PLAN_JSON, &sig, &paula, w.now).is_err());
    }
    // A line without namespaces= lets its key propose too; one limited to approving does not.
    let bob_sig = by("bob", PROPOSAL_NAMESPACE, PLAN_JSON);
    assert!(Proposer::person(
        &w.roster,
        PLAN_JSON,
        &bob_sig,
        &principal("bob@example.org"),
        w.now
    )
    .is_ok());
    let limited = format!(
        "bob@example.org namespaces=\"custody-approval\" {}\n",
        w.key("bob").openssh
    );
    let limited = Roster::parse("r", &limited).unwrap();
    let err = Proposer::person(
        &limited,
        PLAN_JSON,
        &bob_sig,
        &principal("bob@example.org"),
        w.now,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("may not sign in namespace \"custody-proposal\""),
        "{err}"
    );
    let collector = custody::keys::SigningKey::generate();
    let other = custody::keys::SigningKey::generate();
    assert!(Proposer::collector(collector.public(), PLAN_JSON, &other.sign(PLAN_JSON)).is_err());
    assert!(Proposer::collector(collector.public(), PLAN_JSON, b"").is_err());
}

#[test]
fn a_proposer_of_other_bytes_refuses_the_plan() {
    let mut w = World::team();
    let collector = custody::keys::SigningKey::generate();
    let other = b"{\"plan\":\"plan-2\"}";
    w.proposer = Proposer::collector(collector.public(), other, &collector.sign(other)).unwrap();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    assert_eq!(codes(&w.refused()), ["proposer_other_plan"]);
}

#[test]
fn an_unknown_key_does_not_count() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("mallory@example.org", "mallory");
    let r = w.refused();
    assert_eq!(codes(&r), ["quorum_not_reached"]);
    assert!(matches!(
        outcome(&r, 2),
        Outcome::NotCounted(NotCounted::PinnedRoster(NotAllowed::UnknownKey(_)))
    ));
    // Nor does a key of the roster signing as someone else.
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    let s = w.statement("carol@example.org", "bob", Decision::Approve);
    w.record(s, "bob");
    assert!(matches!(
        outcome(&w.refused(), 2),
        Outcome::NotCounted(NotCounted::PinnedRoster(NotAllowed::OtherPrincipal { .. }))
    ));
}

#[test]
fn a_key_removed_from_the_roster_after_the_proposal_no_longer_counts() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    let text = format!(
        "alice@example.org {}\ncarol@example.org {}\n",
        w.key("alice").openssh,
        w.key("carol").openssh
    );
    w.current = Roster::parse("policies/approvers.allowed_signers", &text).unwrap();
    let r = w.refused();
    assert_eq!(codes(&r), ["quorum_not_reached"]);
    assert!(matches!(
        outcome(&r, 2),
        Outcome::NotCounted(NotCounted::CurrentRoster(NotAllowed::UnknownKey(_)))
    ));
    // And a key added since the proposal does not count either: the pinned roster lacks it.
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("dan@example.org", "dan");
    let text = format!(
        "{}dan@example.org {}\n",
        roster_text(&w),
        w.key("dan").openssh
    );
    w.current = Roster::parse("now", &text).unwrap();
    assert!(matches!(
        outcome(&w.refused(), 2),
        Outcome::NotCounted(NotCounted::PinnedRoster(NotAllowed::UnknownKey(_)))
    ));
}

fn roster_text(w: &World) -> String {
    w.roster
        .signers()
        .iter()
        .map(|s| format!("{} {}\n", s.principal, s.key.to_openssh().unwrap()))
        .collect()
}

#[test]
fn the_wrong_namespace_does_not_count_or_refuses() {
    // A key the roster allows only for another namespace is not counted.
    let mut w = World::new(&[
        ("alice@example.org", "alice"),
        ("bob@example.org namespaces=\"git\"", "bob"),
    ]);
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    let r = w.refused();
    assert!(matches!(
        outcome(&r, 2),
        Outcome::NotCounted(NotCounted::PinnedRoster(NotAllowed::Namespace { .. }))
    ));
    // A statement signed in another namespace is not an approval: the plan is refused.
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    let s = w.statement("bob@example.org", "bob", Decision::Approve);
    let bytes = s.to_canonical().unwrap();
    w.record_bytes(&s, bytes, "bob", "file");
    let r = w.refused();
    assert_eq!(codes(&r), ["approval_bad_signature", "quorum_not_reached"]);
}

#[test]
fn a_key_outside_its_validity_window_does_not_count() {
    let past = ssh_time(OffsetDateTime::now_utc() - Duration::hours(1));
    let future = ssh_time(OffsetDateTime::now_utc() + Duration::hours(1));
    let mut w = World::new(&[
        ("alice@example.org", "alice"),
        (&format!("bob@example.org valid-before=\"{past}\""), "bob"),
        (
            &format!("carol@example.org valid-after=\"{future}\""),
            "carol",
        ),
    ]);
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    w.approve("carol@example.org", "carol");
    let r = w.refused();
    assert_eq!(codes(&r), ["quorum_not_reached"]);
    assert!(matches!(
        outcome(&r, 2),
        Outcome::NotCounted(NotCounted::PinnedRoster(NotAllowed::Expired { .. }))
    ));
    assert!(matches!(
        outcome(&r, 3),
        Outcome::NotCounted(NotCounted::PinnedRoster(NotAllowed::NotYetValid { .. }))
    ));
}

#[test]
fn a_statement_for_another_plan_refuses_the_plan() {
    for field in ["case", "plan", "plan_sha256"] {
        let mut w = World::team();
        w.approve("alice@example.org", "alice");
        let mut s = w.statement("bob@example.org", "bob", Decision::Approve);
        match field {
            "case" => s.case = CaseId::new("case-2").unwrap(),
            "plan" => s.plan = PlanId::new("plan-2").unwrap(),
            _ => s.plan_sha256 = Sha256Digest::of(b"another plan"),
        }
        w.record(s, "bob");
        let r = w.refused();
        assert_eq!(
            codes(&r),
            ["approval_other_plan", "quorum_not_reached"],
            "{field}"
        );
        assert!(r
            .to_string()
            .contains(&format!("statement's {field} is another plan's")));
    }
}

#[test]
fn a_tampered_statement_refuses_the_plan() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    let s = w.statement("bob@example.org", "bob", Decision::Reject);
    w.record(s, "bob");
    // Rewritten to an approval in the store, the journal untouched.
    let text = String::from_utf8(w.stored[1].statement.clone()).unwrap();
    w.stored[1].statement = text.replace("\"reject\"", "\"approve\"").into_bytes();
    let r = w.refused();
    assert_eq!(
        codes(&r),
        [
            "approval_journal_mismatch",
            "approval_bad_signature",
            "quorum_not_reached"
        ]
    );
    // Rewritten in the journal too: the signature still refuses it.
    w.journaled[1].statement_sha256 = Sha256Digest::of(&w.stored[1].statement);
    w.journaled[1].decision = Decision::Approve;
    assert_eq!(
        codes(&w.refused()),
        ["approval_bad_signature", "quorum_not_reached"]
    );
}

#[test]
fn a_statement_naming_another_key_than_its_signer_refuses_the_plan() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    let mut s = w.statement("bob@example.org", "bob", Decision::Approve);
    s.key_fingerprint = w.key("carol").fingerprint;
    w.record(s, "bob");
    assert_eq!(
        codes(&w.refused()),
        ["approval_key_mismatch", "quorum_not_reached"]
    );
}

#[test]
fn store_and_journal_must_name_the_same_approvals() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    w.approve("carol@example.org", "carol");
    let mut in_store_only = clone_world(&w);
    in_store_only.journaled.remove(2);
    let r = in_store_only.refused();
    assert_eq!(codes(&r), ["approval_not_journaled"]);
    let mut in_journal_only = clone_world(&w);
    in_journal_only.stored.remove(2);
    assert_eq!(codes(&in_journal_only.refused()), ["approval_not_stored"]);
    // The journal's records of other plans are not this plan's.
    let mut other = clone_world(&w);
    other.journaled[2].plan = PlanId::new("plan-2").unwrap();
    assert_eq!(codes(&other.refused()), ["approval_not_journaled"]);
    // The same record journaled twice (a retry racing itself) is one record and counts once.
    let mut twice = clone_world(&w);
    let again = twice.journaled[0].clone();
    twice.journaled.push(again);
    assert_eq!(twice.evaluate().expect("one record").tally().counted, 3);
    // Two different records under one number refuse the plan.
    let mut differ = clone_world(&w);
    let mut other = differ.journaled[0].clone();
    other.statement_sha256 = Sha256Digest::of(b"another statement");
    differ.journaled.push(other);
    assert!(codes(&differ.refused()).contains(&"approval_duplicate_number"));
    assert!(w.evaluate().is_ok());
}

fn clone_world(w: &World) -> World {
    World {
        dir: tempfile::tempdir().unwrap(),
        now: w.now,
        case: w.case.clone(),
        plan: w.plan.clone(),
        roster: w.roster.clone(),
        current: w.current.clone(),
        proposer: w.proposer.clone(),
        required: w.required,
        steps_required: w.steps_required,
        policy_required: w.policy_required,
        created_at: w.created_at,
        not_after: w.not_after,
        max_lifetime: w.max_lifetime,
        journaled_at: w.journaled_at,
        stored: w.stored.clone(),
        journaled: w.journaled.clone(),
        api_server_date: w.api_server_date,
    }
}

#[test]
fn a_non_canonical_statement_refuses_the_plan() {
    let variants: [fn(&str) -> String; 3] = [
        |t| t.replacen(',', ", ", 1),
        |t| t.replacen('{', "{\"decision\":\"approve\",", 1),
        |t| t.replacen('{', "{\"note\":\"x\",", 1),
    ];
    for variant in variants {
        let mut w = World::team();
        w.approve("alice@example.org", "alice");
        let s = w.statement("bob@example.org", "bob", Decision::Approve);
        let canonical = String::from_utf8(s.to_canonical().unwrap()).unwrap();
        // Signed and journaled as they are: only their form is wrong.
        w.record_bytes(
            &s,
            variant(&canonical).into_bytes(),
            "bob",
            APPROVAL_NAMESPACE,
        );
        let r = w.refused();
        assert_eq!(
            codes(&r),
            ["approval_bad_statement", "quorum_not_reached"],
            "{r}"
        );
    }
}

#[test]
fn a_plan_past_not_after_is_refused() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    w.not_after = w.now - Duration::seconds(1);
    assert_eq!(codes(&w.refused()), ["plan_expired"]);
    w.not_after = w.now;
    assert!(w.evaluate().is_ok());
}

#[test]
fn a_clock_more_than_60_s_off_the_api_servers_is_refused() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    for (skew, ok) in [(61, false), (-61, false), (60, true), (-60, true)] {
        w.api_server_date = Some(w.now + Duration::seconds(skew));
        assert_eq!(w.evaluate().is_ok(), ok, "{skew}");
    }
    w.api_server_date = Some(w.now + Duration::minutes(5));
    assert_eq!(codes(&w.refused()), ["clock_skew"]);
    // Not executing: no API server's clock to compare.
    w.api_server_date = None;
    assert!(w.evaluate().is_ok());
}

#[test]
fn any_reject_vetoes() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    let s = w.statement("carol@example.org", "carol", Decision::Reject);
    w.record(s, "carol");
    let r = w.refused();
    assert_eq!(codes(&r), ["quorum_vetoed"]);
    assert_eq!(outcome(&r, 3), &Outcome::Veto);
    // A reject by a key the roster does not know is no veto.
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    let s = w.statement("mallory@example.org", "mallory", Decision::Reject);
    w.record(s, "mallory");
    assert!(w.evaluate().is_ok());
    // A veto stays when the rejecting key is later removed from the roster in force (or its
    // validity ends): otherwise a reject could be lifted by editing the roster.
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    let s = w.statement("carol@example.org", "carol", Decision::Reject);
    w.record(s, "carol");
    let text = format!(
        "alice@example.org {}\nbob@example.org {}\n",
        w.key("alice").openssh,
        w.key("bob").openssh
    );
    w.current = Roster::parse("policies/approvers.allowed_signers", &text).unwrap();
    let r = w.refused();
    assert_eq!(codes(&r), ["quorum_vetoed"]);
}

#[test]
fn a_person_proposal_with_a_roster_of_its_own_is_refused() {
    // The pinned roster names paula as proposer, but the roster in force does not list her.
    let mut w = World::proposed_by_paula();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    assert!(w.evaluate().is_ok());
    let text = format!(
        "alice@example.org {}\nbob@example.org {}\n",
        w.key("alice").openssh,
        w.key("bob").openssh
    );
    w.current = Roster::parse("policies/approvers.allowed_signers", &text).unwrap();
    assert_eq!(codes(&w.refused()), ["proposer_not_in_roster"]);
}

#[test]
fn every_reason_is_reported_not_the_first() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    let s = w.statement("carol@example.org", "carol", Decision::Reject);
    w.record(s, "carol");
    w.journaled.remove(0);
    w.not_after = w.now - Duration::minutes(1);
    w.api_server_date = Some(w.now - Duration::minutes(2));
    w.required = 3;
    w.steps_required = Some(3);
    let r = w.refused();
    assert_eq!(
        codes(&r),
        [
            "plan_expired",
            "clock_skew",
            "approval_not_journaled",
            "quorum_vetoed",
            "quorum_not_reached"
        ]
    );
    let text = r.to_string();
    assert!(
        text.contains("quorum_not_reached: 0 of the 3 approvals needed count"),
        "{text}"
    );
}

#[test]
fn a_roster_other_than_the_pinned_one_refuses_the_plan() {
    // A forged plan directory with its own roster: the plan's pin names another.
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    let forged = format!(
        "{}mallory@example.org {}\n",
        roster_text(&w),
        w.key("mallory").openssh
    );
    w.roster = Roster::parse("forged", &forged).unwrap();
    w.current = w.roster.clone();
    let facts_pin = Sha256Digest::of(b"the roster the plan was proposed with");
    let facts = PlanFacts {
        case: &w.case,
        plan: &w.plan,
        plan_sha256: Sha256Digest::of(PLAN_JSON),
        roster_sha256: facts_pin,
        required: 2,
        steps_required: Some(2),
        policy_required: 2,
        proposer: &w.proposer,
        created_at: w.created_at,
        not_after: w.not_after,
        max_lifetime: w.max_lifetime,
        journaled_at: w.journaled_at,
    };
    let r = evaluate(&QuorumInput {
        plan: facts,
        pinned_roster: &w.roster,
        current_roster: &w.current,
        stored: &w.stored,
        journaled: &w.journaled,
        now: w.now,
        api_server_date: None,
    })
    .unwrap_err();
    assert_eq!(codes(&r), ["roster_pin_mismatch"]);
}

#[test]
fn a_plan_needing_no_approval_is_refused() {
    let mut w = World::team();
    w.required = 0;
    w.steps_required = Some(0);
    w.policy_required = 0;
    assert_eq!(codes(&w.refused()), ["quorum_none"]);
}

#[test]
fn a_plan_needs_at_least_the_quorum_of_the_policy_in_force() {
    // The plan says 1 (its own by_kind agrees), the policy in force says 3.
    let mut w = World::team();
    w.required = 1;
    w.steps_required = Some(1);
    w.policy_required = 3;
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    let r = w.refused();
    assert_eq!(codes(&r), ["quorum_not_reached"]);
    assert_eq!(r.tally.required, 3);
    w.approve("carol@example.org", "carol");
    assert!(w.evaluate().is_ok());
}

#[test]
fn a_plan_whose_quorum_is_not_its_steps_largest_need_is_refused() {
    let mut w = World::team();
    w.required = 1;
    w.steps_required = Some(2);
    w.policy_required = 0;
    w.approve("alice@example.org", "alice");
    assert!(codes(&w.refused()).contains(&"plan_quorum_inconsistent"));
    // A step kind with no need in by_kind at all.
    w.steps_required = None;
    assert!(codes(&w.refused()).contains(&"plan_quorum_inconsistent"));
}

#[test]
fn a_plan_living_longer_than_the_policy_allows_is_refused() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    assert!(w.evaluate().is_ok());
    w.not_after = w.created_at + Duration::days(30);
    assert_eq!(codes(&w.refused()), ["plan_lifetime_too_long"]);
}

#[test]
fn a_plan_made_long_before_its_proposal_was_journaled_is_refused() {
    let mut w = World::team();
    w.approve("alice@example.org", "alice");
    w.approve("bob@example.org", "bob");
    // Back-dated by a day (into a key window that has closed, say).
    w.journaled_at = Some(w.created_at + Duration::days(1));
    assert_eq!(codes(&w.refused()), ["plan_created_at_mismatch"]);
    // Made after the journal says it was proposed.
    w.journaled_at = Some(w.created_at - Duration::minutes(5));
    assert_eq!(codes(&w.refused()), ["plan_created_at_mismatch"]);
    // A person's draft signed within minutes is fine.
    w.max_lifetime = Duration::hours(3);
    w.created_at = w.now - Duration::minutes(10);
    w.journaled_at = Some(w.created_at + Duration::minutes(9));
    assert!(w.evaluate().is_ok());
    // Dated ahead of custody's clock (to stay open longer), journal and plan alike.
    w.created_at = w.now + Duration::hours(1);
    w.journaled_at = Some(w.created_at);
    w.not_after = w.created_at + Duration::hours(2);
    assert_eq!(codes(&w.refused()), ["plan_created_at_mismatch"]);
}
