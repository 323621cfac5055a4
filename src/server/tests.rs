//! The router without a socket (`oneshot`): auth before the body, body limits and timeouts, and
//! the exact error bodies clients see.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;

const WEBHOOK: &str = "webhook-token-0123456789abcdef";
const ANALYST: &str = "analyst-token-0123456789abcdef";

fn app(dir: &std::path::Path) -> (Router, Arc<Daemon>) {
    let store = crate::store::open(
        dir.to_str().unwrap(),
        &crate::store::OpenOptions {
            create: true,
            ..Default::default()
        },
    )
    .unwrap()
    .into_store();
    let policies = crate::policy::load(None).unwrap();
    let (daemon, _jobs) = Daemon::new(
        store,
        policies,
        SigningKey::generate(),
        &config::KubernetesSettings::default(),
        4,
    );
    let daemon = Arc::new(daemon);
    let limits = config::Limits {
        max_body_bytes: 1024,
        body_timeout_seconds: 1,
        ..config::Limits::default()
    };
    let state = AppState::new(
        daemon.clone(),
        WEBHOOK.as_bytes().to_vec(),
        ANALYST.as_bytes().to_vec(),
        &limits,
    );
    (router(state), daemon)
}

/// A body that never sends a byte: a handler that waited for it would never answer.
fn never() -> Body {
    Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>())
}

fn request(method: &str, path: &str, token: Option<&str>, body: Body) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(body).unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let response = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(req))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_token_is_checked_before_the_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (app, daemon) = app(dir.path());
    for (path, token) in [
        ("/api/v1/alerts", None),
        ("/api/v1/alerts", Some(ANALYST)),
        ("/api/v1/cases", Some(WEBHOOK)),
        ("/api/v1/cases", None),
    ] {
        let (status, body) = send(&app, request("POST", path, token, never())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body, r#"{"error":"a valid bearer token is required"}"#);
    }
    // Refusals count among the webhook's answers.
    assert!(daemon
        .render_metrics()
        .contains(r#"custody_webhook_requests_total{code="401"} 2"#));
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path());
    let mut req = request("POST", "/api/v1/alerts", Some(WEBHOOK), never());
    req.headers_mut()
        .insert("content-length", "300000000".parse().unwrap());
    let (status, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body,
        r#"{"error":"the request body is larger than 1024 bytes"}"#
    );
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path());
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 512]))),
    );
    let req = request(
        "POST",
        "/api/v1/cases",
        Some(ANALYST),
        Body::from_stream(chunks),
    );
    let (status, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path());
    let started = Instant::now();
    let (status, body) = send(
        &app,
        request("POST", "/api/v1/alerts", Some(WEBHOOK), never()),
    )
    .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(
        body,
        r#"{"error":"the request body did not arrive within 1 s"}"#
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

// One request per documented error body, in a row as docs/DAEMON.md lists them: longer than
// ~80 lines because the table is, not because it does several things.
#[tokio::test]
async fn error_bodies_are_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = app(dir.path());
    let missing = format!(
        "/api/v1/cases/{}",
        crate::id::CaseId::generate(time::OffsetDateTime::now_utc())
    );
    // Method, path, token, body; the status and body expected ("" for any body).
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a [u8],
        StatusCode,
        &'a str,
    );
    let cases: [Case<'_>; 5] = [
        (
            "GET",
            "/api/v1/cases/not_an_id",
            Some(ANALYST),
            b"",
            StatusCode::BAD_REQUEST,
            r#"{"error":"not a case id"}"#,
        ),
        (
            "GET",
            &missing,
            Some(ANALYST),
            b"",
            StatusCode::NOT_FOUND,
            r#"{"error":"no such case"}"#,
        ),
        (
            "POST",
            "/api/v1/cases",
            Some(ANALYST),
            br#"{"namespace": "w"}"#,
            StatusCode::BAD_REQUEST,
            r#"{"error":"give deployment or selector (not both)"}"#,
        ),
        (
            "POST",
            "/api/v1/cases",
            Some(ANALYST),
            br#"{"namespace": "w", "deployment": "d", "since": "soon"}"#,
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "GET",
            "/readyz",
            None,
            b"",
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"ready":false,"why":"starting"}"#,
        ),
    ];
    for (method, path, token, body, code, expected) in cases {
        let (status, got) = send(
            &app,
            request(method, path, token, Body::from(body.to_vec())),
        )
        .await;
        assert_eq!(status, code, "{method} {path}: {got}");
        if !expected.is_empty() {
            assert_eq!(got, expected, "{method} {path}");
        }
    }
    let (status, got) = send(
        &app,
        request(
            "POST",
            "/api/v1/alerts",
            Some(WEBHOOK),
            Body::from("{\"alerts\": ["),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        got.starts_with(r#"{"error":"not an Alertmanager webhook body: "#),
        "{got}"
    );
    let (status, got) = send(&app, request("GET", "/healthz", None, Body::empty())).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, r#"{"ok":true}"#));
    // Nothing was written by any of it.
    assert!(
        !dir.path().join("cases").exists()
            || std::fs::read_dir(dir.path().join("cases")).unwrap().count() == 0
    );
}
