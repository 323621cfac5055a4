//! The rotation's new Secret (`execute::secret_create`) against the fake API server: created
//! once, immutable, labelled as custody's, under a fresh name each time; a taken name is never
//! used, a 500 leaves it unknown (and is not sent again), and nothing kept of any outcome holds a
//! value, as written or in base64.

use std::collections::BTreeMap;

use custody::execute::secret_create::{create, fresh_name, Created};
use custody::execute::secret_values::SecretValues;
use custody::id::{CaseId, PlanId};
use custody::plan::document::KeyPlan;

use super::{connect, planned_cluster, runtime};
use crate::k8s::NS;

const PROVIDED: &str = "partner-token-Zq8u1";

fn values(dir: &std::path::Path) -> SecretValues {
    let keys = BTreeMap::from([
        (
            "API_KEY".to_owned(),
            KeyPlan::Generate {
                bytes: 32,
                encoding: "base64".into(),
            },
        ),
        ("PARTNER_TOKEN".to_owned(), KeyPlan::Provided),
    ]);
    let file = dir.join("values.json");
    std::fs::write(&file, format!(r#"{{"PARTNER_TOKEN": "{PROVIDED}"}}"#)).unwrap();
    SecretValues::for_plan(&keys, Some(&file)).unwrap()
}

/// Every form a value could be kept in: as written, and in base64.
fn forms(data: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    data.values()
        .flat_map(|v| {
            [
                String::from_utf8(v.clone()).unwrap(),
                aws_smithy_types::base64::encode(v),
            ]
        })
        .collect()
}

#[test]
fn the_new_secret_is_created_once_immutable_under_a_fresh_name_and_no_value_is_kept() {
    let kube = planned_cluster();
    let rt = runtime();
    let (c, dir) = connect(&rt, &kube);
    let case = CaseId::new("20261202-040000-00000001").unwrap();
    let plan = PlanId::new("20261202-041000-00000002").unwrap();
    let values = values(dir.path());

    let name = fresh_name("gateway-api-keys", &plan).unwrap();
    let prefix = "gateway-api-keys-20261202-041000-00000002-";
    assert!(name.starts_with(prefix), "{name}");
    let suffix = &name[prefix.len()..];
    assert!(suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(fresh_name("gateway-api-keys", &plan).unwrap(), name);

    let created = rt.block_on(create(&c, (NS, &name), (&case, &plan), &values));
    let Created::Created { values_sha256, .. } = &created else {
        panic!("{created:?}")
    };
    let stored = kube.secret(&name).unwrap();
    assert_eq!(stored["immutable"], true);
    assert_eq!(
        stored["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "custody"
    );
    assert_eq!(
        stored["metadata"]["labels"]["custody.io/plan"],
        plan.as_str()
    );
    let data = kube.secret_data(&name).unwrap();
    assert_eq!(data["PARTNER_TOKEN"], PROVIDED.as_bytes());
    assert_eq!(data["API_KEY"].len(), 44);
    assert_eq!(
        values_sha256["API_KEY"],
        custody::digest::Sha256Digest::of(&data["API_KEY"])
    );

    // The name again: taken, never adopted.
    let again = rt.block_on(create(&c, (NS, &name), (&case, &plan), &values));
    assert_eq!(again, Created::NameTaken { name: name.clone() });

    // A refused name: refused, its message kept without any value.
    let refused = rt.block_on(create(&c, (NS, "Not_A_Name"), (&case, &plan), &values));
    assert!(
        matches!(refused, Created::Refused { code: 422, .. }),
        "{refused:?}"
    );

    // A 500: unknown, sent once.
    kube.faults(|f| f.broken.push(format!("/api/v1/namespaces/{NS}/secrets")));
    let calls = kube.calls().len();
    let other = fresh_name("gateway-api-keys", &plan).unwrap();
    let unknown = rt.block_on(create(&c, (NS, &other), (&case, &plan), &values));
    assert!(matches!(unknown, Created::Unknown { .. }), "{unknown:?}");
    assert_eq!(kube.calls().len(), calls + 1);

    // Nothing kept of any outcome holds a value.
    for outcome in [&created, &again, &refused, &unknown] {
        let kept = format!("{outcome:?} {}", serde_json::to_string(outcome).unwrap());
        for form in forms(&data) {
            assert!(!kept.contains(&form), "a value in {kept}");
        }
    }
    assert!(!format!("{values:?}").contains(PROVIDED));
}
