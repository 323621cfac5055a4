//! `custody serve --config FILE`: the daemon's configuration (its HTTP side's too), validated
//! whole at start-up.
//! Relative paths are relative to the configuration file. Tokens are read from files and never
//! logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The address to bind, `127.0.0.1:8080`.
    pub listen: String,
    /// A directory, `file://PATH` or `s3://bucket/prefix`.
    pub store: String,
    #[serde(default)]
    pub s3: S3Settings,
    /// The policy directory [default: the built-in policies].
    pub policies: Option<PathBuf>,
    /// The collector's Ed25519 key (PKCS#8 PEM).
    pub signing_key: PathBuf,
    pub auth: AuthSettings,
    #[serde(default)]
    pub kubernetes: KubernetesSettings,
    #[serde(default)]
    pub limits: Limits,
    /// Serve HTTPS with this certificate chain and key (PEM); plain HTTP without it.
    pub tls: Option<TlsSettings>,
    /// The URL approvers reach the daemon at (`https://custody.security.example`), written
    /// into the approve commands of the plan view and the notifications [default: the scheme
    /// and `listen`].
    pub external_url: Option<String>,
    /// This replica's name in the claims it takes on cases, so that one replica at a time
    /// collects a case; a replica restarted under the same name takes its claims back at once
    /// [default: the host name and the listen address, `host:127.0.0.1:8080`].
    pub replica: Option<String>,
    /// With an S3 store: the local spool a collection is sealed into before it is uploaded, so
    /// that an S3 outage keeps the sealed case here, to be uploaded when S3 answers again. Keep
    /// it on a persistent volume [default: `$CUSTODY_SPOOL`, else
    /// `$XDG_STATE_HOME/custody/spool`, else `~/.local/state/custody/spool`].
    pub spool: Option<PathBuf>,
    /// Tell the security team when a case is sealed, a plan awaits approval, and a plan reaches
    /// its quorum, is rejected or expires [default: no notifications].
    pub notify: Option<NotifySettings>,
}

/// The notification webhook: one POST per event with a Slack-compatible `text` and the
/// event's details as JSON (`custody`). A failing receiver is retried with backoff and never
/// holds up a case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// The receiver's URL, `https://…` (a Slack incoming webhook or any JSON receiver; plain
    /// `http://` for a receiver inside the cluster). Only its host is ever logged.
    pub url: String,
    /// A file holding a bearer token sent as `Authorization: Bearer …` [default: none].
    pub token_file: Option<PathBuf>,
    /// Seconds each attempt may take, from connecting to the end of the answer.
    #[serde(default = "default_notify_timeout")]
    pub timeout_seconds: u64,
    /// Attempts per event, the first included; retries wait 1 s, 2 s, 4 s … up to 60 s.
    #[serde(default = "default_notify_attempts")]
    pub max_attempts: u32,
    /// Events waiting for delivery; when full, new events are dropped with a warning.
    #[serde(default = "default_notify_queue")]
    pub queue: usize,
}

fn default_notify_timeout() -> u64 {
    10
}

fn default_notify_attempts() -> u32 {
    5
}

fn default_notify_queue() -> usize {
    256
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// An S3-compatible endpoint.
    pub endpoint: Option<String>,
    #[serde(default)]
    pub path_style: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The bearer token Alertmanager sends (`http_config.authorization.credentials_file`).
    pub webhook_token_file: PathBuf,
    /// The bearer token for the case API.
    pub analyst_token_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSettings {
    /// A kubeconfig file [default: KUBECONFIG, ~/.kube/config, or in-cluster].
    pub kubeconfig: Option<PathBuf>,
    /// Its context [default: the current one].
    pub context: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The largest request body accepted; larger ones are answered 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Collections waiting for a worker; when full, new cases are answered 503.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Collections run at once.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Connections served at once; further ones wait, unaccepted, until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (from the connection's start or the
    /// previous response); the connection is closed after that.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a whole request body; answered 408 after that.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_seconds: u64,
    /// Seconds between housekeeping rounds: the cases waiting in the local spool (with an S3
    /// store) offered to S3 again, and resolves kept for later journaled.
    #[serde(default = "default_spool_flush")]
    pub spool_flush_seconds: u64,
    /// Seconds between reads of every case's journal for open plans written by others (another
    /// replica, `custody plan propose`); the daemon's own proposals and the start-up scan need
    /// none. Each rescan reads every case's journal: keep it long on a large store.
    #[serde(default = "default_plan_rescan")]
    pub plan_rescan_seconds: u64,
    /// Seconds between looks for blocks whose expiry passed (lifted by an expiry plan). Each
    /// look reads every case's journal (twice: for the owners of blocked addresses, and for
    /// expiries left open); the cluster is read only when a block is due.
    #[serde(default = "default_block_expiry")]
    pub block_expiry_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            queue: default_queue(),
            workers: default_workers(),
            max_connections: default_max_connections(),
            header_timeout_seconds: default_header_timeout(),
            body_timeout_seconds: default_body_timeout(),
            spool_flush_seconds: default_spool_flush(),
            plan_rescan_seconds: default_plan_rescan(),
            block_expiry_seconds: default_block_expiry(),
        }
    }
}

fn default_spool_flush() -> u64 {
    30
}

fn default_plan_rescan() -> u64 {
    3600
}

fn default_block_expiry() -> u64 {
    60
}

fn default_max_body() -> usize {
    4 * 1024 * 1024
}

fn default_queue() -> usize {
    64
}

fn default_workers() -> usize {
    2
}

fn default_max_connections() -> usize {
    256
}

fn default_header_timeout() -> u64 {
    10
}

fn default_body_timeout() -> u64 {
    30
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// The configuration, checked, with its secrets read.
pub struct Loaded {
    pub config: ServeConfig,
    pub listen: SocketAddr,
    pub webhook_token: Vec<u8>,
    pub analyst_token: Vec<u8>,
    /// `replica`, or its default.
    pub replica: String,
    /// `notify`, checked, with its token read.
    pub notify: Option<crate::daemon::notify::NotifyConfig>,
}

/// The host name and `listen` (`host:127.0.0.1:8080`; two daemons on one machine listen on
/// different addresses), or the host name alone.
pub fn default_replica(listen: Option<&SocketAddr>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "custody".into());
    match listen {
        Some(l) => format!("{host}:{l}"),
        None => host,
    }
}

/// A replica name: 1 to 200 printable characters, no spaces (it is logged and stored).
fn check_replica(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.chars().count() > 200
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "replica {name:?} must be 1 to 200 characters without spaces or control characters"
        ));
    }
    Ok(())
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

fn read_token(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let token = String::from_utf8(bytes)
        .map_err(|_| format!("{what} {} is not text", path.display()))?
        .trim()
        .to_owned();
    if token.len() < 16 {
        return Err(format!(
            "{what} {} holds fewer than 16 characters: use a long random token",
            path.display()
        ));
    }
    Ok(token.into_bytes())
}

/// The limits, each within what the daemon can honour.
fn check_limits(l: &Limits) -> Result<(), String> {
    if !(1024..=256 * 1024 * 1024).contains(&l.max_body_bytes) {
        return Err(format!(
            "limits.max_body_bytes must be 1 KiB to 256 MiB, not {}",
            l.max_body_bytes
        ));
    }
    if !(1..=100_000).contains(&l.queue) || !(1..=64).contains(&l.workers) {
        return Err(format!(
            "limits.queue must be 1 to 100000 and limits.workers 1 to 64 (got {} and {})",
            l.queue, l.workers
        ));
    }
    if !(1..=65_536).contains(&l.max_connections) {
        return Err(format!(
            "limits.max_connections must be 1 to 65536, not {}",
            l.max_connections
        ));
    }
    if !(1..=3600).contains(&l.spool_flush_seconds) {
        return Err(format!(
            "limits.spool_flush_seconds must be 1 to 3600, not {}",
            l.spool_flush_seconds
        ));
    }
    if !(1..=86_400).contains(&l.block_expiry_seconds) {
        return Err(format!(
            "limits.block_expiry_seconds must be 1 to 86400, not {}",
            l.block_expiry_seconds
        ));
    }
    if !(10..=86_400).contains(&l.plan_rescan_seconds) {
        return Err(format!(
            "limits.plan_rescan_seconds must be 10 to 86400, not {}",
            l.plan_rescan_seconds
        ));
    }
    if !(1..=3600).contains(&l.header_timeout_seconds)
        || !(1..=3600).contains(&l.body_timeout_seconds)
    {
        return Err(format!(
            "limits.header_timeout_seconds and limits.body_timeout_seconds must be 1 to 3600 (got {} and {})",
            l.header_timeout_seconds, l.body_timeout_seconds
        ));
    }
    Ok(())
}

/// The notification settings as the notifier takes them, the token file read.
fn notify_config(
    base: &Path,
    n: &mut NotifySettings,
) -> Result<crate::daemon::notify::NotifyConfig, String> {
    let mut config = crate::daemon::notify::NotifyConfig::new(&n.url).map_err(|e| e.to_string())?;
    if !(1..=300).contains(&n.timeout_seconds)
        || !(1..=20).contains(&n.max_attempts)
        || !(1..=100_000).contains(&n.queue)
    {
        return Err(format!(
            "notify.timeout_seconds must be 1 to 300, notify.max_attempts 1 to 20 and notify.queue 1 to 100000 (got {}, {} and {})",
            n.timeout_seconds, n.max_attempts, n.queue
        ));
    }
    config.timeout = std::time::Duration::from_secs(n.timeout_seconds);
    config.max_attempts = n.max_attempts;
    config.queue = n.queue;
    if let Some(file) = &mut n.token_file {
        *file = resolve(base, file);
        config.token = Some(read_token(file, "notify.token_file")?);
    }
    Ok(config)
}

/// Reads and validates the configuration at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let err = |message: String| ConfigError {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut config: ServeConfig = crate::yaml::from_str(&text).map_err(|e| err(e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let listen: SocketAddr = config
        .listen
        .parse()
        .map_err(|e| err(format!("listen {:?}: {e}", config.listen)))?;
    if let Some(url) = &config.external_url {
        let ok = url
            .parse::<http::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !ok {
            return Err(err(format!(
                "external_url {url:?}: give an http:// or https:// URL with a host"
            )));
        }
    }
    config.signing_key = resolve(base, &config.signing_key);
    config.policies = config.policies.as_ref().map(|p| resolve(base, p));
    config.spool = config.spool.as_ref().map(|p| resolve(base, p));
    config.auth.webhook_token_file = resolve(base, &config.auth.webhook_token_file);
    config.auth.analyst_token_file = resolve(base, &config.auth.analyst_token_file);
    config.kubernetes.kubeconfig = config
        .kubernetes
        .kubeconfig
        .as_ref()
        .map(|p| resolve(base, p));
    if !config.store.contains("://") {
        config.store = resolve(base, Path::new(&config.store))
            .display()
            .to_string();
    }
    let webhook_token =
        read_token(&config.auth.webhook_token_file, "auth.webhook_token_file").map_err(err)?;
    let analyst_token =
        read_token(&config.auth.analyst_token_file, "auth.analyst_token_file").map_err(err)?;
    if webhook_token == analyst_token {
        return Err(err(
            "the webhook and analyst tokens are the same: give each its own".into(),
        ));
    }
    check_limits(&config.limits).map_err(err)?;
    let replica = config
        .replica
        .clone()
        .unwrap_or_else(|| default_replica(Some(&listen)));
    check_replica(&replica).map_err(err)?;
    if let Some(tls) = &mut config.tls {
        tls.cert_file = resolve(base, &tls.cert_file);
        tls.key_file = resolve(base, &tls.key_file);
        for (what, file) in [
            ("tls.cert_file", &tls.cert_file),
            ("tls.key_file", &tls.key_file),
        ] {
            if !file.is_file() {
                return Err(err(format!("{what} {} is not a file", file.display())));
            }
        }
    }
    if let Some(k) = &config.kubernetes.kubeconfig {
        if !k.is_file() {
            return Err(err(format!(
                "kubernetes.kubeconfig {} is not a file",
                k.display()
            )));
        }
    }
    let notify = match &mut config.notify {
        Some(n) => Some(notify_config(base, n).map_err(err)?),
        None => None,
    };
    Ok(Loaded {
        config,
        listen,
        webhook_token,
        analyst_token,
        replica,
        notify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(dir: &Path, limits: &str) -> Result<Loaded, ConfigError> {
        std::fs::write(dir.join("w.token"), "webhook-token-0123456789").unwrap();
        std::fs::write(dir.join("a.token"), "analyst-token-0123456789").unwrap();
        let path = dir.join("custody.yaml");
        std::fs::write(
            &path,
            format!("listen: 127.0.0.1:8080\nstore: ./evidence\nsigning_key: k\nauth:\n  webhook_token_file: w.token\n  analyst_token_file: a.token\n{limits}"),
        )
        .unwrap();
        load(&path)
    }

    #[test]
    fn the_plan_rescan_defaults_to_an_hour_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let l = config_with(dir.path(), "").unwrap().config.limits;
        assert_eq!(l.plan_rescan_seconds, 3600);
        let set = config_with(dir.path(), "limits:\n  plan_rescan_seconds: 10\n").unwrap();
        assert_eq!(set.config.limits.plan_rescan_seconds, 10);
        for bad in [0, 9, 86_401] {
            let e = config_with(
                dir.path(),
                &format!("limits:\n  plan_rescan_seconds: {bad}\n"),
            )
            .err()
            .unwrap();
            assert!(
                e.message
                    .contains("plan_rescan_seconds must be 10 to 86400"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_connection_limits_have_documented_defaults_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let l = config_with(dir.path(), "").unwrap().config.limits;
        // As docs/DAEMON.md gives them.
        assert_eq!(
            (
                l.max_connections,
                l.header_timeout_seconds,
                l.body_timeout_seconds
            ),
            (256, 10, 30)
        );
        let set = config_with(
            dir.path(),
            "limits:\n  max_connections: 8\n  header_timeout_seconds: 2\n  body_timeout_seconds: 3\n",
        )
        .unwrap()
        .config
        .limits;
        assert_eq!(
            (
                set.max_connections,
                set.header_timeout_seconds,
                set.body_timeout_seconds
            ),
            (8, 2, 3)
        );
        let named = config_with(dir.path(), "replica: custody-0\n").unwrap();
        assert_eq!(named.replica, "custody-0");
        let default = config_with(dir.path(), "").unwrap();
        assert!(
            default.replica.ends_with(":127.0.0.1:8080"),
            "{}",
            default.replica
        );
        for bad in [
            "limits:\n  max_connections: 0\n",
            "limits:\n  body_timeout_seconds: 0\n",
            "limits:\n  header_timeout: 5\n",
            "replica: \"a b\"\n",
            "replica: \"\"\n",
        ] {
            let e = config_with(dir.path(), bad).err().unwrap();
            assert!(
                e.message.contains("limits")
                    || e.message.contains("unknown field")
                    || e.message.contains("replica"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_notify_section_is_optional_checked_and_reads_its_token() {
        let dir = tempfile::tempdir().unwrap();
        assert!(config_with(dir.path(), "").unwrap().notify.is_none());
        std::fs::write(dir.path().join("n.token"), "notify-token-0123456789\n").unwrap();
        let n = config_with(
            dir.path(),
            "notify:\n  url: https://hooks.example.org/services/T0/B0/X\n  token_file: n.token\n  max_attempts: 3\n",
        )
        .unwrap()
        .notify
        .unwrap();
        assert_eq!(n.url.host(), Some("hooks.example.org"));
        assert_eq!(n.token.as_deref(), Some(&b"notify-token-0123456789"[..]));
        assert_eq!((n.max_attempts, n.queue, n.timeout.as_secs()), (3, 256, 10));
        for bad in [
            "notify:\n  url: ftp://x/\n",
            "notify:\n  url: https://x/\n  retries: 3\n",
            "notify:\n  url: https://x/\n  max_attempts: 0\n",
            "notify:\n  url: https://x/\n  timeout_seconds: 0\n",
            "notify:\n  url: https://x/\n  token_file: missing.token\n",
        ] {
            let e = config_with(dir.path(), bad).err().unwrap();
            assert!(
                e.message.contains("notify") || e.message.contains("unknown field"),
                "{bad}: {e}"
            );
        }
    }
}
