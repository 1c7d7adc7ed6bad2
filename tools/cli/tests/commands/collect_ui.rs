//! `collect --ui` and the view of a local collector (moved from the facade's `tests/view.rs`
//! with the collector's view; the facade's view page is tested there).

use closedloop_telemetry_test_support as support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use closedloop_telemetry::ViewServer;
use closedloop_telemetry_cli::collect_ui::serve_collector_view;
use closedloop_telemetry_collector::Collector;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// One GET; returns the status, the headers (lower-cased) and the body.
fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the view");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn get_json(view: &ViewServer, path: &str) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    let path = format!("{path}{sep}token={}", view.token());
    let (status, head, body) = get(view.addr(), &view.addr().to_string(), &path, &[]);
    assert_eq!(status, 200, "{path}: {body}");
    assert!(head.contains("transfer-encoding: chunked") || !body.is_empty());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[test]
fn the_collector_view_refuses_addresses_other_than_loopback() {
    let collector = Collector::start("127.0.0.1:0".parse().unwrap()).unwrap();
    for addr in ["0.0.0.0:0", "192.0.2.1:0", "[::]:0"] {
        let addr: SocketAddr = addr.parse().unwrap();
        assert!(serve_collector_view(&collector, addr).is_err(), "{addr}");
    }
}

#[test]
fn the_collector_view_shows_received_events_and_validation_errors() {
    let collector = Collector::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let view = serve_collector_view(&collector, "127.0.0.1:0".parse().unwrap()).unwrap();
    // One valid relay message and one invalid PostHog batch (no api_key).
    let post = |path: &str, body: &str| {
        let mut s = TcpStream::connect(collector.addr()).unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            collector.addr(),
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
    };
    let id = uuid::Uuid::now_v7().to_string();
    post(
        "/relay",
        &format!(
            r#"[{{"event":"connection.lost","id":"{id}","timestamp":"2026-11-25T09:14:03.120Z","properties":{{}}}}]"#
        ),
    );
    post("/batch/", r#"{"batch":[{"event":"x"}]}"#);
    let deadline = Instant::now() + WAIT;
    let records = loop {
        let sent = get_json(&view, "/api/sent");
        let records = sent["records"].as_array().unwrap().clone();
        if records.len() >= 2 || Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let rejected = records
        .iter()
        .find(|r| r["stream"] == "posthog")
        .expect("the rejection");
    assert_eq!(rejected["outcome"], "dropped");
    assert!(
        rejected["detail"].as_str().unwrap().starts_with("HTTP 4"),
        "{rejected}"
    );
    let stats = get_json(&view, "/api/stats");
    assert!(stats["streams"][0]["last_error"].is_string(), "{stats}");
    assert_eq!(get_json(&view, "/api/activity")["available"], false);
}

#[test]
fn collect_ui_prints_the_ui_line_and_serves_the_page() {
    use std::io::BufRead;
    let child = Command::new(env!("CARGO_BIN_EXE_closedloop-telemetry"))
        .args([
            "collect",
            "--bind",
            "127.0.0.1:0",
            "--ui",
            "--max-seconds",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = support::process::KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("ui: "))
        .expect("a ui: line");
    let url = line.strip_prefix("ui: http://").unwrap();
    let (addr, rest) = url.split_once('/').unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    let token = rest.strip_prefix("?token=").expect("the token in the URL");
    let addr: SocketAddr = addr.parse().unwrap();
    let (status, _, body) = get(
        addr,
        &addr.to_string(),
        &format!("/api/stats?token={token}"),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"posthog\""), "{body}");
    assert_eq!(get(addr, &addr.to_string(), "/api/stats", &[]).0, 403);
}
