//! `custody serve`'s HTTP side: the router (`router`, a function so that tests can call it
//! without a socket), bearer-token auth, request limits, one error type (`ApiError`) for every
//! refusal, and `serve`, which starts the daemon's workers and listens. The work itself is the
//! `daemon`'s; this module only calls into it.

mod alerts;
mod auth;
mod body;
mod cases;
mod error;
mod listen;
mod plans;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::daemon::{self, config, Daemon};
use crate::keys::SigningKey;
use crate::store::{Store, StoreError};

pub use error::ApiError;

/// What the handlers share: the daemon, the tokens and the body limits.
#[derive(Clone)]
pub struct AppState {
    daemon: Arc<Daemon>,
    tokens: Arc<Tokens>,
    limits: BodyLimits,
}

struct Tokens {
    webhook: Vec<u8>,
    analyst: Vec<u8>,
}

#[derive(Clone, Copy)]
struct BodyLimits {
    max_body: usize,
    body_timeout: Duration,
}

impl AppState {
    pub fn new(
        daemon: Arc<Daemon>,
        webhook_token: Vec<u8>,
        analyst_token: Vec<u8>,
        limits: &config::Limits,
    ) -> Self {
        Self {
            daemon,
            tokens: Arc::new(Tokens {
                webhook: webhook_token,
                analyst: analyst_token,
            }),
            limits: BodyLimits {
                max_body: limits.max_body_bytes,
                body_timeout: Duration::from_secs(limits.body_timeout_seconds),
            },
        }
    }
}

/// Every endpoint. On the authenticated ones the token is checked first, then the body is read
/// (declared length, cap, timeout), then the handler runs.
pub fn router(state: AppState) -> Router {
    let body = || from_fn_with_state(state.clone(), body::read_whole);
    let webhook = || from_fn_with_state(state.clone(), auth::webhook);
    let analyst = || from_fn_with_state(state.clone(), auth::analyst);
    Router::new()
        .route(
            "/api/v1/alerts",
            post(alerts::receive)
                .route_layer(body())
                .route_layer(webhook())
                .route_layer(from_fn_with_state(state.clone(), alerts::count)),
        )
        .route(
            "/api/v1/cases",
            post(cases::open)
                .get(cases::list)
                .route_layer(body())
                .route_layer(analyst()),
        )
        .route(
            "/api/v1/cases/{id}",
            get(cases::one).route_layer(body()).route_layer(analyst()),
        )
        .route(
            "/api/v1/cases/{id}/plans",
            get(plans::list)
                .post(plans::propose)
                .route_layer(body())
                .route_layer(analyst()),
        )
        .route(
            "/api/v1/cases/{id}/plans/drafts",
            post(plans::draft)
                .route_layer(body())
                .route_layer(analyst()),
        )
        .route(
            "/api/v1/cases/{id}/plans/{plan}",
            get(plans::one).route_layer(body()).route_layer(analyst()),
        )
        .route(
            "/api/v1/cases/{id}/plans/{plan}/approvals",
            post(plans::approve)
                .route_layer(body())
                .route_layer(analyst()),
        )
        .route(
            "/api/v1/cases/{id}/plans/{plan}/execute",
            post(plans::execute)
                .route_layer(body())
                .route_layer(analyst()),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"ok": true})) }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(state.limits.max_body))
        .with_state(state)
}

/// Runs `f` on the blocking pool (the store's calls block).
async fn blocking<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&Daemon) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let d = s.daemon.clone();
    tokio::task::spawn_blocking(move || f(&d))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.daemon.render_metrics(),
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if !s.daemon.is_ready() {
        return Err(ApiError::NotReady("starting".into()));
    }
    blocking(&s, |d| d.probe_store())
        .await?
        .map_err(|e| ApiError::NotReady(e.to_string()))?;
    Ok(Json(json!({"ready": true})))
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Runtime(std::io::Error),
    #[error("cannot use the TLS certificate and key: {0}")]
    Tls(String),
    #[error(transparent)]
    Notify(#[from] daemon::notify::NotifyError),
    #[error("{path}: {message}")]
    Roster { path: String, message: String },
}

/// The approvers' roster in the policies directory, if there is one.
fn roster_in_force(
    policies: Option<&std::path::Path>,
) -> Result<Option<daemon::plans::RosterInForce>, ServeError> {
    let Some(path) = policies
        .map(|d| d.join(crate::policy::ROSTER_FILE))
        .filter(|p| p.is_file())
    else {
        return Ok(None);
    };
    let bad = |message: String| ServeError::Roster {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let roster = crate::approval::Roster::parse(&path.display().to_string(), &text)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Some(daemon::plans::RosterInForce { text, roster }))
}

/// Runs the daemon until SIGTERM or SIGINT, then drains: the listener stops and the running
/// collections finish; queued ones are durable and resume at the next start.
/// Runs the daemon on `store` with `policies` (loaded once, by the caller, from the directory the
/// configuration names) until SIGTERM or SIGINT.
pub fn serve(
    store: Box<dyn Store>,
    spooling: Option<daemon::Spooling>,
    loaded: config::Loaded,
    policies: crate::policy::Policies,
) -> Result<(), ServeError> {
    let config = &loaded.config;
    let key = SigningKey::load(&config.signing_key)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let (mut daemon, jobs) = Daemon::new(
        store,
        policies,
        key,
        &config.kubernetes,
        config.limits.queue,
    );
    daemon.set_replica(loaded.replica.clone());
    if let Some(roster) = roster_in_force(config.policies.as_deref())? {
        daemon.set_roster(roster);
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = match &loaded.config.external_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("{scheme}://{}", loaded.listen),
    };
    daemon.set_server_url(url);
    // Notifications: the notifier's delivery task starts with the runtime.
    let delivery = match &loaded.notify {
        Some(n) => {
            let metrics = daemon::notify::NotifyMetrics::default();
            daemon.metrics().register_notify(&metrics);
            let (notifier, delivery) = daemon::notify::Notifier::new(n.clone(), metrics)?;
            daemon.set_notifier(notifier);
            Some(delivery)
        }
        None => None,
    };
    if let Some(spooling) = spooling {
        daemon.set_spool(spooling);
    }
    let daemon = Arc::new(daemon);
    let state = AppState::new(
        daemon.clone(),
        loaded.webhook_token.clone(),
        loaded.analyst_token.clone(),
        &config.limits,
    );
    let workers = config.limits.workers;
    let spool_flush = Duration::from_secs(config.limits.spool_flush_seconds);
    let plan_rescan = Duration::from_secs(config.limits.plan_rescan_seconds);
    let block_expiry = Duration::from_secs(config.limits.block_expiry_seconds);
    let listening = listen::Listening {
        listen: loaded.listen,
        tls: config.tls.as_ref().map(|t| config::TlsSettings {
            cert_file: t.cert_file.clone(),
            key_file: t.key_file.clone(),
        }),
        max_connections: config.limits.max_connections,
        header_timeout: Duration::from_secs(config.limits.header_timeout_seconds),
    };
    // The daemon is dropped after the runtime has stopped: an S3 store owns a runtime of its
    // own, which must not be dropped from async code.
    let keep = daemon.clone();
    let result = runtime.block_on(async move {
        let listen = listening.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: listen.to_string(),
                source,
            })?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        if let Some(delivery) = delivery {
            tokio::spawn(delivery.run());
        }
        let workers = tokio::spawn(daemon::run_workers(daemon.clone(), jobs, workers, stopping));
        tokio::spawn(daemon::housekeeping_every(
            daemon.clone(),
            spool_flush,
            stop.subscribe(),
        ));
        tokio::spawn(daemon::watch_expiries(
            daemon.clone(),
            plan_rescan,
            stop.subscribe(),
        ));
        tokio::spawn(daemon::expire_blocks_every(
            daemon.clone(),
            block_expiry,
            stop.subscribe(),
        ));
        tokio::spawn(daemon::requeue_unfinished(daemon));
        listen::serve(listener, router(state), listening).await?;
        tracing::info!("draining: finishing the running collections");
        let _ = stop.send(true);
        let _ = workers.await;
        tracing::info!("stopped");
        Ok(())
    });
    drop(runtime);
    drop(keep);
    result
}
