//! Helpers: the binary in a temporary home (so the per-user key never touches the real one), the
//! standard tools (missing tools fail the test loudly, never skip it), and bundle paths.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A sandbox: a home directory, a store path and a work directory.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn store(&self) -> PathBuf {
        self.path("evidence")
    }

    /// `custody ARGS` with HOME in the sandbox, no inherited custody settings, stdin empty.
    pub fn custody(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.path("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("CUSTODY_STORE")
            .env_remove("CUSTODY_POLICIES")
            .env_remove("CUSTODY_SIGNING_KEY")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.custody(args).output().expect("run custody")
    }

    /// `collect --json` into the sandbox store; panics unless it succeeds.
    pub fn collect(&self, logs: &[&Path]) -> serde_json::Value {
        let store = self.store();
        let mut args = vec![
            "--store",
            store.to_str().unwrap(),
            "--json",
            "collect",
            "--logs",
        ];
        let logs: Vec<&str> = logs.iter().map(|p| p.to_str().unwrap()).collect();
        args.extend(logs);
        let out = self.run(&args);
        assert_success(&out);
        serde_json::from_slice(&out.stdout).expect("collect --json prints JSON")
    }
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The exit code for sealed (or verified intact) but incomplete evidence.
pub const INCOMPLETE: i32 = 3;

pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The files of the bundle that a `collect --json` result names.
pub struct BundleFiles {
    pub case_dir: PathBuf,
    pub archive: PathBuf,
    pub sidecar: PathBuf,
    pub seal: PathBuf,
    pub sig: PathBuf,
    pub bundle_id: String,
}

impl BundleFiles {
    pub fn of(result: &serde_json::Value) -> Self {
        let uri = result["archive"]["uri"].as_str().expect("archive uri");
        let archive = PathBuf::from(uri.strip_prefix("file://").expect("file uri"));
        let bundle_id = result["bundle_id"].as_str().unwrap().to_owned();
        let dir = archive.parent().unwrap().to_owned();
        Self {
            case_dir: dir.parent().unwrap().to_owned(),
            sidecar: dir.join(format!("{bundle_id}.tar.zst.sha256")),
            seal: dir.join(format!("{bundle_id}.seal.json")),
            sig: dir.join(format!("{bundle_id}.seal.json.sig")),
            archive,
            bundle_id,
        }
    }
}

/// Makes a read-only evidence file writable, as an attacker with write access could.
pub fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// A standard tool from PATH; a missing tool fails the test (scripts/test.sh installs them).
pub fn tool(name: &str) -> PathBuf {
    if name == "bagit.py" {
        if let Some(p) = std::env::var_os("CUSTODY_TEST_BAGIT") {
            return PathBuf::from(p);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} is not installed or not on PATH: run the tests through scripts/test.sh, which installs it");
}

/// Runs a shell pipeline, panicking with its output unless it succeeds.
pub fn sh(script: &str, dir: &Path) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("bash");
    assert_success(&out);
    stdout(&out)
}

/// A combined-format line.
pub fn line(ip: &str, status: u16, path: &str) -> String {
    format!("{ip} - - [26/Nov/2026:14:54:48 +0000] \"POST {path} HTTP/1.1\" {status} 419 \"-\" \"curl/8.0\"\n")
}

/// The entries of a local journal directory (`<seq>.json`), sorted, without their signatures.
pub fn journal_entry_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
}
