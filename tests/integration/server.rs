//! `custody serve`'s HTTP side as a hostile client meets it, over real sockets: the token and the
//! declared length are checked before any of the body is read, slow headers and bodies are cut
//! off, connections past the cap wait, and plain HTTP off loopback is warned about.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::daemon::{daemon_config, http, start, ANALYST_TOKEN, WEBHOOK_TOKEN};
use crate::util::Sandbox;

fn connect(port: u16, read_timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s
}

/// Reads what the server says until it closes or `read_timeout` passes: (status, text).
fn answer(s: &mut TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One response is enough.
                let text = String::from_utf8_lossy(&out);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_owned)
                        })
                        .and_then(|l| l.trim().parse::<usize>().ok());
                    if length.is_some_and(|l| body.len() >= l) {
                        break;
                    }
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn head(path: &str, token: Option<&str>, length: usize) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
}

#[test]
fn an_unauthenticated_or_oversized_body_is_answered_before_it_is_sent() {
    // Regression: the body was read before the token was checked, so unauthenticated clients
    // could make the daemon hold 4 MiB each; and a declared length over the limit got no 413.
    let sb = Sandbox::new();
    let config = daemon_config(&sb, sb.store().to_str().unwrap(), None, "");
    let d = start(&sb, &config, "daemon");
    for (path, token, length, status) in [
        ("/api/v1/alerts", None, 4 * 1024 * 1024, 401),
        ("/api/v1/cases", Some(WEBHOOK_TOKEN), 4 * 1024 * 1024, 401),
        ("/api/v1/alerts", Some(WEBHOOK_TOKEN), 300_000_000, 413),
        ("/api/v1/cases", Some(ANALYST_TOKEN), 300_000_000, 413),
    ] {
        let started = Instant::now();
        let mut s = connect(d.port, Duration::from_secs(5));
        s.write_all(head(path, token, length).as_bytes()).unwrap();
        // Not a byte of the body is sent.
        let (got, text) = answer(&mut s);
        assert_eq!(got, status, "{path}: {text}");
        assert!(text.contains("{\"error\":"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
    assert_eq!(http(d.port, "GET", "/healthz", None, b"").0, 200);
}

#[test]
fn slow_headers_and_bodies_are_cut_off() {
    // Regression: a client sending its request a byte at a time held a connection forever.
    let sb = Sandbox::new();
    let config = daemon_config(
        &sb,
        sb.store().to_str().unwrap(),
        None,
        "limits:\n  header_timeout_seconds: 2\n  body_timeout_seconds: 2\n",
    );
    let d = start(&sb, &config, "daemon");
    // Headers never finished: the connection is closed.
    let started = Instant::now();
    let mut s = connect(d.port, Duration::from_secs(10));
    s.write_all(b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let (_, text) = answer(&mut s);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "closed after {waited:?}: {text}"
    );
    // A connection that never sends anything is closed too.
    let started = Instant::now();
    let mut s = connect(d.port, Duration::from_secs(10));
    let _ = answer(&mut s);
    assert!(started.elapsed() < Duration::from_secs(6));
    // A body trickled a byte every half second is answered 408 at its deadline.
    let started = Instant::now();
    let mut s = connect(d.port, Duration::from_millis(400));
    s.write_all(head("/api/v1/alerts", Some(WEBHOOK_TOKEN), 100).as_bytes())
        .unwrap();
    let mut reply = (0, String::new());
    for _ in 0..40 {
        if s.write_all(b" ").is_err() {
            break;
        }
        reply = answer(&mut s);
        if reply.0 != 0 {
            break;
        }
    }
    assert_eq!(reply.0, 408, "{}", reply.1);
    assert!(
        reply
            .1
            .contains(r#"{"error":"the request body did not arrive within 2 s"}"#),
        "{}",
        reply.1
    );
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(http(d.port, "GET", "/healthz", None, b"").0, 200);
}

#[test]
fn connections_past_the_cap_wait_for_a_free_one() {
    let sb = Sandbox::new();
    let config = daemon_config(
        &sb,
        sb.store().to_str().unwrap(),
        None,
        "limits:\n  max_connections: 2\n  header_timeout_seconds: 60\n",
    );
    let d = start(&sb, &config, "daemon");
    // Two idle connections take both slots; the daemon answers after it accepts them.
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| connect(d.port, Duration::from_secs(1)))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(d.port, Duration::from_millis(1500));
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(answer(&mut third).0, 0, "answered past the cap");
    // One closes: the waiting connection is accepted and answered.
    drop(idle);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (status, text) = answer(&mut third);
    assert_eq!(status, 200, "{text}");
}

#[test]
fn plain_http_off_loopback_is_warned_about_at_start_up() {
    let warning = "plain HTTP on a non-loopback address";
    let sb = Sandbox::new();
    let config = daemon_config(&sb, sb.store().to_str().unwrap(), None, "");
    let d = start(&sb, &config, "loopback");
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(log.contains("custody serve listening (HTTP)"), "{log}");
    assert!(!log.contains(warning), "{log}");
    drop(d);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("listen: 127.0.0.1:", "listen: 0.0.0.0:"),
    )
    .unwrap();
    let d = start(&sb, &config, "everywhere");
    let log = std::fs::read_to_string(&d.log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains(warning))
        .unwrap_or_else(|| panic!("no warning: {log}"));
    // A structured event: JSON with its level and address.
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["level"], "WARN", "{line}");
    assert!(
        event["fields"]["listen"]
            .as_str()
            .is_some_and(|a| a.starts_with("0.0.0.0:")),
        "{line}"
    );
}
