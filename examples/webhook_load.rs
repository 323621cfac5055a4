//! A loopback load generator for `bench/webhook.sh`: posts Alertmanager notifications at a
//! steady rate over keep-alive connections, mostly resends of a few alerts, and prints the
//! latency of the answers (p50, p99, max) and their status codes.
//!
//! webhook_load --port 8080 --token-file webhook.token --rate 500 --seconds 10 --alerts 20

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn notification(i: usize) -> String {
    format!(
        r#"{{"receiver":"custody","status":"firing","version":"4","groupKey":"{{}}:{{alertname=\"WaqitiSecurityBreachDetected\"}}","truncatedAlerts":0,"groupLabels":{{"alertname":"WaqitiSecurityBreachDetected"}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://alertmanager","alerts":[{{"status":"firing","labels":{{"alertname":"WaqitiSecurityBreachDetected","severity":"critical","instance":"gw-{i}"}},"annotations":{{"summary":"breach"}},"startsAt":"2026-11-26T14:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus","fingerprint":"{i:016x}"}}]}}"#
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    let port: u16 = arg("--port", "8080").parse()?;
    let token = std::fs::read_to_string(arg("--token-file", "webhook.token"))?;
    let token = token.trim().to_owned();
    let rate: u64 = arg("--rate", "500").parse()?;
    let seconds: u64 = arg("--seconds", "10").parse()?;
    let alerts: usize = arg("--alerts", "20").parse()?;
    let connections: u64 = 10;
    let per_connection = rate / connections;
    let mut threads = Vec::new();
    for c in 0..connections {
        let token = token.clone();
        threads.push(std::thread::spawn(move || -> Result<(Vec<Duration>, Vec<u16>), String> {
            let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
            let mut reader = BufReader::new(stream);
            let (mut latencies, mut codes) = (Vec::new(), Vec::new());
            let start = Instant::now();
            let interval = Duration::from_nanos(1_000_000_000 / per_connection.max(1));
            for n in 0..per_connection * seconds {
                let due = start + interval * n as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let body = notification(((c * per_connection * seconds + n) as usize) % alerts);
                let request = format!(
                    "POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let sent = Instant::now();
                writer.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
                let mut status = String::new();
                reader.read_line(&mut status).map_err(|e| e.to_string())?;
                let mut length = 0usize;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).map_err(|e| e.to_string())?;
                    if header == "\r\n" || header.is_empty() {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).map_err(|e| e.to_string())?;
                latencies.push(sent.elapsed());
                codes.push(status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0));
            }
            Ok((latencies, codes))
        }));
    }
    let (mut latencies, mut codes) = (Vec::new(), Vec::new());
    for t in threads {
        let (l, c) = t.join().map_err(|_| "a load thread panicked")??;
        latencies.extend(l);
        codes.extend(c);
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let mut by_code = std::collections::BTreeMap::new();
    for c in codes {
        *by_code.entry(c).or_insert(0) += 1;
    }
    println!(
        "requests {} at {rate}/s for {seconds} s ({alerts} distinct alerts): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; codes {by_code:?}",
        latencies.len(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
    Ok(())
}
