//! The rotation's new Secret (`execute::secret_create`) against the fake API server: made from
//! the plan's own object, created once, immutable, under a fresh name each time; a taken name is
//! never used, a 500 leaves it unknown (and is not sent again), and nothing kept of any outcome
//! holds a value — not even when a webhook's refusal quotes them.

use std::collections::BTreeMap;

use serde_json::json;

use custody::containment::cluster::read_view;
use custody::execute::secret_create::{create, fresh_name, Created};
use custody::execute::secret_values::SecretValues;
use custody::plan::document::{ChangeOp, StepDetail};

use super::pod_network::plan_with;
use super::{connect, planned_cluster, runtime};
use crate::k8s::NS;

const POLICY: &str = "targets:
  - name: api-gateway
    namespace: waqiti
    pod_selector:
      matchLabels: {app: api-gateway}
rotate_secrets:
  - target: api-gateway
    secret: gateway-api-keys
    keys:
      API_KEY: {generate: 32, encoding: base64}
      PARTNER_TOKEN: provided
    keys_complete: true
    deployments: [api-gateway]
";

const PROVIDED: &str = "partner-token-Zq8u1-7f3a";

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
fn the_new_secret_is_the_plans_created_once_under_a_fresh_name_and_no_value_is_kept() {
    let kube = planned_cluster();
    let mut deployment = kube
        .stored("apps/v1", "deployments", "api-gateway")
        .unwrap();
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "gateway-api-keys", "key": "API_KEY"}}}
    ]);
    deployment["metadata"]["resourceVersion"] = serde_json::Value::Null;
    kube.object(deployment);
    let rt = runtime();
    let (c, dir) = connect(&rt, &kube);
    let view = rt.block_on(read_view(&c, &[NS.to_owned()], false)).unwrap();
    let plan = plan_with(POLICY, &view, &[]);
    let step = &plan.steps[0];
    let StepDetail::RotateSecrets { keys, .. } = &step.detail else {
        panic!("{step:?}")
    };
    let change = step
        .changes
        .iter()
        .find(|c| c.op == ChangeOp::Create)
        .expect("the new Secret");
    let planned = change.after.clone().unwrap();
    let file = dir.path().join("values.json");
    std::fs::write(&file, format!(r#"{{"PARTNER_TOKEN": "{PROVIDED}"}}"#)).unwrap();
    let values = SecretValues::for_plan(keys, Some(&file)).unwrap();

    let name = fresh_name(&change.object.name).unwrap();
    let prefix = change.object.name.trim_end_matches("{{random}}");
    assert!(name.starts_with(prefix) && prefix.ends_with('-'), "{name}");
    let suffix = &name[prefix.len()..];
    assert!(suffix.len() == 16 && suffix.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(fresh_name(&change.object.name).unwrap(), name);

    let created = rt.block_on(create(&c, &planned, &name, &values));
    let Created::Created { values_sha256, .. } = &created else {
        panic!("{created:?}")
    };
    // As the plan showed it: its labels and annotations, immutable.
    let stored = kube.secret(&name).unwrap();
    assert_eq!(stored["immutable"], true);
    assert_eq!(stored["metadata"]["labels"], planned["metadata"]["labels"]);
    assert_eq!(
        stored["metadata"]["annotations"],
        planned["metadata"]["annotations"]
    );
    let data = kube.secret_data(&name).unwrap();
    assert_eq!(data["PARTNER_TOKEN"], PROVIDED.as_bytes());
    assert_eq!(data["API_KEY"].len(), 44);
    assert_eq!(
        values_sha256["API_KEY"],
        custody::digest::Sha256Digest::of(&data["API_KEY"])
    );

    // The name again: taken, never adopted.
    let again = rt.block_on(create(&c, &planned, &name, &values));
    assert_eq!(again, Created::NameTaken { name: name.clone() });

    // A webhook quoting the values in its refusal: the refusal is kept, its text is not.
    kube.faults(|f| f.echoing_webhook = true);
    let other = fresh_name(&change.object.name).unwrap();
    let echoed = rt.block_on(create(&c, &planned, &other, &values));
    let Created::Refused {
        code: 400, message, ..
    } = &echoed
    else {
        panic!("{echoed:?}")
    };
    assert!(message.contains("not kept"), "{message}");
    kube.faults(|f| f.echoing_webhook = false);

    // A 500: unknown, sent once.
    kube.faults(|f| f.broken.push(format!("/api/v1/namespaces/{NS}/secrets")));
    let calls = kube.calls().len();
    let unknown = rt.block_on(create(&c, &planned, &other, &values));
    assert!(matches!(unknown, Created::Unknown { .. }), "{unknown:?}");
    assert_eq!(kube.calls().len(), calls + 1);

    // Values that are not the plan's keys are never sent.
    let fewer = SecretValues::for_plan(
        &keys
            .iter()
            .filter(|(k, _)| k.as_str() == "API_KEY")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None,
    )
    .unwrap();
    let not_sent = rt.block_on(create(&c, &planned, &other, &fewer));
    assert!(matches!(not_sent, Created::NotSent { .. }), "{not_sent:?}");
    assert_eq!(kube.calls().len(), calls + 1);

    // Nothing kept of any outcome holds a value.
    for outcome in [&created, &again, &echoed, &unknown, &not_sent] {
        let kept = format!("{outcome:?} {}", serde_json::to_string(outcome).unwrap());
        for form in forms(&data) {
            assert!(!kept.contains(&form), "a value in {kept}");
        }
        assert!(!kept.contains(&PROVIDED[..10]), "part of a value in {kept}");
    }
    assert!(!format!("{values:?}").contains(PROVIDED));
}
