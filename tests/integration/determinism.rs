//! The same inputs sealed at the same time give byte-identical archives, whatever the store.

use custody::collect::{self, Request, Trigger};
use custody::id::{BundleId, CaseId};
use custody::keys::SigningKey;
use custody::policy::Policies;
use custody::source::FileSource;
use custody::store::LocalStore;

use crate::util::*;

#[test]
fn sealing_twice_gives_identical_archives() {
    let sb = Sandbox::new();
    let key = SigningKey::generate();
    let log = data("apache-combined-2000.log");
    let at = time::macros::datetime!(2026-11-26 14:54:48 UTC);
    let mut archives = Vec::new();
    for store_name in ["one", "two"] {
        let store = LocalStore::open(&sb.path(store_name), true).unwrap();
        let request = Request {
            case_id: CaseId::new("20261126-145448-0000cafe").unwrap(),
            bundle_id: BundleId::new("20261126-145448-0000beef").unwrap(),
            at,
            trigger: Trigger {
                kind: "cli".into(),
                requested_by: "analyst".into(),
            },
            top: 20,
            format: custody::analysis::format::FormatChoice::Auto,
            progress: false,
            trigger_payload: None,
            staging: None,
        };
        let mut source = FileSource::new(vec![log.clone()], 1 << 30);
        let outcome =
            collect::collect(&store, &key, &Policies::default(), &mut source, &request).unwrap();
        let path = outcome
            .bundle
            .archive
            .uri
            .strip_prefix("file://")
            .unwrap()
            .to_owned();
        archives.push((std::fs::read(path).unwrap(), outcome.bundle.archive_sha256));
    }
    assert_eq!(archives[0].1, archives[1].1);
    assert!(archives[0].0 == archives[1].0, "archives differ");
}
