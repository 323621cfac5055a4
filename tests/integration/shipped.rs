//! Every policy and configuration that ships parses with today's reader: the files under
//! `policies/`, the examples in `docs/POLICIES.md` and `docs/DAEMON.md`, the daemon's
//! configuration in `deploy/daemon.yaml`, and every manifest under `deploy/`. And a bad
//! configuration is refused naming its file, line and field.

use std::path::{Path, PathBuf};

use custody::daemon::config::ServeConfig;
use custody::policy::{
    self, CollectionPolicy, ContainmentPolicy, DetectionPolicy, FormatsPolicy, StoragePolicy,
    KNOWN_FILES,
};

use crate::util::{stderr, Sandbox};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap()
}

/// The ```yaml blocks of a Markdown file, each with the `## ` heading above it.
fn yaml_blocks(markdown: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let (mut heading, mut block) = (String::new(), None::<String>);
    for line in markdown.lines() {
        match &mut block {
            Some(b) if line.starts_with("```") => {
                blocks.push((heading.clone(), std::mem::take(b)));
                block = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None if line == "```yaml" => block = Some(String::new()),
            None if line.starts_with("## ") => heading = line.to_owned(),
            None => {}
        }
    }
    blocks
}

fn parse_policy(file: &str, text: &str) -> Result<(), policy::PolicyError> {
    match file {
        "detection.yaml" => DetectionPolicy::parse(file, text).map(drop),
        "formats.yaml" => FormatsPolicy::parse(file, text).map(drop),
        "storage.yaml" => StoragePolicy::parse(file, text).map(drop),
        "collection.yaml" => CollectionPolicy::parse(file, text).map(drop),
        "containment.yaml" => ContainmentPolicy::parse(file, text).map(drop),
        other => panic!("{other} is not a policy file"),
    }
}

#[test]
fn shipped_policy_files_parse() {
    for file in KNOWN_FILES {
        parse_policy(file, &read(&format!("policies/{file}"))).unwrap();
    }
    assert_eq!(
        policy::lint(&repo("policies")).unwrap().len(),
        KNOWN_FILES.len() + 1,
        "the YAML files and approvers.allowed_signers"
    );
}

#[test]
fn the_test_policies_lint_clean() {
    // tests/data/policies holds complete policies other tests use; they must stay valid.
    let files = policy::lint(&repo("tests/data/policies")).unwrap();
    assert!(!files.is_empty());
    let p = policy::load(Some(&repo("tests/data/policies"))).unwrap();
    assert_eq!(p.containment.targets[0].name.as_str(), "api-gateway");
}

#[test]
fn the_policy_examples_in_the_docs_parse() {
    let blocks = yaml_blocks(&read("docs/POLICIES.md"));
    let mut seen = Vec::new();
    for (heading, text) in &blocks {
        let file = KNOWN_FILES
            .iter()
            .find(|f| heading.contains(&format!("`{f}`")))
            .unwrap_or_else(|| panic!("{heading}: a yaml block under no policy file"));
        parse_policy(file, text).unwrap_or_else(|e| panic!("docs/POLICIES.md {heading}: {e}"));
        seen.push(*file);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), KNOWN_FILES.len(), "{seen:?}");
}

#[test]
fn the_daemon_configurations_parse() {
    let documented = yaml_blocks(&read("docs/DAEMON.md"));
    let (_, example) = documented
        .iter()
        .find(|(h, _)| h == "## Configuration")
        .expect("docs/DAEMON.md has a configuration example");
    custody::yaml::from_str::<ServeConfig>(example).unwrap();

    let manifests: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&read("deploy/daemon.yaml")).unwrap();
    let map = manifests
        .iter()
        .find(|m| m["kind"] == "ConfigMap")
        .expect("deploy/daemon.yaml has a ConfigMap");
    let config = map["data"]["custody.yaml"].as_str().unwrap();
    let config: ServeConfig = custody::yaml::from_str(config).unwrap();
    assert_eq!(config.listen, "0.0.0.0:8080");

    for entry in std::fs::read_dir(repo("deploy")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!docs.is_empty(), "{}", path.display());
    }
}

#[test]
fn a_bad_daemon_configuration_names_its_file_line_and_field() {
    let sb = Sandbox::new();
    let config = sb.path("custody.yaml");
    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\nstore: evidence\nsigning_key: k\nauth:\n  webhook_token_file: a\n  analyst_token_file: b\n  extra_token_file: c\n",
    )
    .unwrap();
    let out = sb.run(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&config.display().to_string())
            && err.contains("auth.extra_token_file")
            && err.contains("line 7"),
        "{err}"
    );
}
