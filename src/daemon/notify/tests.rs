//! Delivery over real sockets: a local sink on 127.0.0.1 receives the body and the token; a sink
//! that answers 500 twice gets the event on the third attempt; an unreachable or silent
//! receiver never blocks `notify` and is given up after `max_attempts`; a full queue drops.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::mpsc;

use super::*;
use crate::id::{BundleId, CaseId, PlanId};

/// What the sink received: the Authorization header and the body.
type Received = (Option<String>, serde_json::Value);

struct Sink {
    /// Answers 500 to this many requests first.
    fail_first: u32,
    seen: AtomicU32,
    received: mpsc::UnboundedSender<Received>,
}

async fn receive(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: String) -> StatusCode {
    let n = sink.seen.fetch_add(1, Ordering::SeqCst);
    if n < sink.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = sink
        .received
        .send((auth, serde_json::from_str(&body).unwrap_or_default()));
    StatusCode::OK
}

/// A sink on 127.0.0.1: its URL, what it receives, and its request count.
async fn sink(fail_first: u32) -> (String, mpsc::UnboundedReceiver<Received>, Arc<Sink>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Arc::new(Sink {
        fail_first,
        seen: AtomicU32::new(0),
        received: tx,
    });
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), rx, sink)
}

fn config(url: &str) -> NotifyConfig {
    NotifyConfig {
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        timeout: Duration::from_secs(2),
        ..NotifyConfig::new(url).unwrap()
    }
}

fn sealed() -> Event {
    Event::CaseSealed {
        case: CaseId::new("case-1").unwrap(),
        bundle: BundleId::new("logs-1").unwrap(),
        suspicious: vec!["203.0.113.9<!channel>".into()],
    }
}

/// Waits until `done` holds, for at most 10 s.
async fn until(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_local_sink_receives_the_text_the_details_and_the_token() {
    let (url, mut received, _) = sink(0).await;
    let mut c = config(&url);
    c.token = Some(b"notify-token-0123456789".to_vec());
    let (notifier, _task) = Notifier::start(c, NotifyMetrics::default()).unwrap();
    notifier.notify(sealed());
    let (auth, body) = received.recv().await.unwrap();
    assert_eq!(auth.as_deref(), Some("Bearer notify-token-0123456789"));
    assert_eq!(
        body,
        serde_json::json!({
            "text": "custody: case case-1 sealed as bundle logs-1; 1 suspicious client(s): 203.0.113.9&lt;!channel&gt;.",
            "custody": {"event": "case_sealed", "case": "case-1", "bundle": "logs-1", "suspicious": ["203.0.113.9<!channel>"]},
        })
    );
    until(|| notifier.metrics().sent.get() == 1).await;
    assert_eq!(notifier.metrics().failed.get(), 0);
}

#[tokio::test]
async fn a_failing_sink_gets_the_event_on_the_third_attempt() {
    let (url, mut received, sink) = sink(2).await;
    let (notifier, _task) = Notifier::start(config(&url), NotifyMetrics::default()).unwrap();
    notifier.notify(Event::QuorumReached {
        case: CaseId::new("case-1").unwrap(),
        plan: PlanId::new("plan-1").unwrap(),
    });
    let (_, body) = received.recv().await.unwrap();
    assert_eq!(body["custody"]["event"], "quorum_reached");
    assert_eq!(sink.seen.load(Ordering::SeqCst), 3);
    until(|| notifier.metrics().sent.get() == 1).await;
    assert_eq!(notifier.metrics().retries.get(), 2);
}

#[tokio::test]
async fn an_unreachable_sink_never_blocks_and_is_given_up() {
    // A port nothing listens on: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut c = config(&format!("http://{addr}/hook"));
    c.max_attempts = 3;
    let (notifier, _task) = Notifier::start(c, NotifyMetrics::default()).unwrap();
    let start = Instant::now();
    for _ in 0..5 {
        notifier.notify(sealed());
    }
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "notify waited"
    );
    until(|| notifier.metrics().failed.get() == 5).await;
    assert_eq!(notifier.metrics().retries.get(), 10);
    assert_eq!(notifier.metrics().sent.get(), 0);
}

#[tokio::test]
async fn a_silent_receiver_is_cut_off_by_the_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut c = config(&format!("http://{addr}/hook"));
    c.timeout = Duration::from_millis(200);
    c.max_attempts = 2;
    let (notifier, _task) = Notifier::start(c, NotifyMetrics::default()).unwrap();
    let start = Instant::now();
    notifier.notify(sealed());
    until(|| notifier.metrics().failed.get() == 1).await;
    assert!(start.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn a_full_queue_drops_the_new_event() {
    let mut c = config("http://127.0.0.1:9/hook");
    c.queue = 2;
    let metrics = NotifyMetrics::default();
    // The delivery task is not running: the queue only fills.
    let (notifier, _delivery) = Notifier::new(c, metrics.clone()).unwrap();
    for _ in 0..5 {
        notifier.notify(sealed());
    }
    assert_eq!(metrics.dropped.get(), 3);
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("notifications_dropped_total 3"), "{text}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let app = Router::new().route(
        "/hook",
        post(|| async {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", "http://203.0.113.9/steal")],
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (notifier, _task) = Notifier::start(
        config(&format!("http://{addr}/hook")),
        NotifyMetrics::default(),
    )
    .unwrap();
    notifier.notify(sealed());
    until(|| notifier.metrics().failed.get() == 1).await;
    assert_eq!(notifier.metrics().retries.get(), 0);
}

#[test]
fn urls_are_checked_and_backoff_is_bounded() {
    for bad in [
        "ftp://x/",
        "/relative",
        "http://user:pw@host/",
        "not a url",
        "https:///x",
    ] {
        assert!(NotifyConfig::new(bad).is_err(), "{bad}");
    }
    let c = NotifyConfig::new("https://hooks.example.org/services/SECRET").unwrap();
    let waits: Vec<u64> = (1..=8).map(|a| c.backoff_after(a).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(c.backoff_after(100), Duration::from_secs(60));
    // Slack's secret is in the path: it is not shown.
    assert!(!format!("{c:?}").contains("SECRET"));
}
