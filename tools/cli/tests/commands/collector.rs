//! The local collector, end to end over real loopback HTTP, and the `collect` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use closedloop_telemetry_collector::{
    format_arrival, Arrival, Collector, Destination, PrintFormat, DEFAULT_MAX_KEPT_BYTES,
    MAX_REASON_BYTES,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

/// A minimal HTTP/1.1 client: one request per connection, `Connection: close`.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect to collector");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, json)
}

fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    request(addr, "POST", path, headers, body.to_string().as_bytes())
}

fn collector() -> Collector {
    Collector::start("127.0.0.1:0".parse().unwrap()).expect("start collector")
}

fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn posthog_event(name: &str, id: &str) -> Value {
    json!({"event": name, "distinct_id": "ct-1", "timestamp": "2026-11-25T09:14:03.120Z",
           "uuid": id, "properties": {"distinct_id": "ct-1", "$lib": "closedloop-telemetry"}})
}

fn relay_message(event: &str, id: &str) -> Value {
    json!({"type": "desktop.telemetry", "event": event,
           "trace": {"schemaVersion": "1", "timestamp": "2026-11-25T09:14:03.120Z",
                     "computeTargetId": "ct-1", "gatewaySessionId": "gw-1"},
           "diagnostics": {"exitCode": 1}, "id": id})
}

#[test]
fn a_valid_posthog_batch_is_accepted_and_recorded() {
    let c = collector();
    let (a, b) = (uuid(), uuid());
    let batch = json!({"api_key": "phc_test", "sent_at": "2026-11-25T09:14:04.000Z",
                       "batch": [posthog_event("command_completed", &a),
                                 posthog_event("approval_requested", &b)]});
    let (status, body) = post(c.addr(), "/batch/", &[], &batch);
    assert_eq!((status, body), (200, json!({"status": "Ok"})));
    // At-least-once: a retried batch is recorded again, and the ids show it.
    assert_eq!(post(c.addr(), "/batch/", &[], &batch).0, 200);
    let got = c.wait_for(4, WAIT);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].stream, Destination::PostHog);
    assert_eq!(got[0].name, "command_completed");
    assert_eq!(got[0].id.as_deref(), Some(a.as_str()));
    assert_eq!(got[1].body["properties"]["$lib"], "closedloop-telemetry");
    assert_eq!(c.counts().posthog, 4);
    assert_eq!(c.unique_ids(Destination::PostHog).len(), 2);
}

#[test]
fn one_invalid_event_rejects_the_whole_posthog_batch() {
    let c = collector();
    let good = posthog_event("command_started", &uuid());
    let cases = [
        ("empty distinct_id", {
            let mut e = posthog_event("command_completed", &uuid());
            e["distinct_id"] = json!("");
            e["properties"] = json!({});
            e
        }),
        ("empty event", posthog_event("", &uuid())),
        (
            "malformed uuid",
            posthog_event("command_completed", "not-a-uuid"),
        ),
    ];
    for (what, bad) in cases {
        let batch = json!({"api_key": "phc_test", "batch": [good.clone(), bad]});
        let (status, body) = post(c.addr(), "/batch/", &[], &batch);
        assert_eq!(status, 400, "{what}");
        assert!(
            body["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{what}: {body}"
        );
    }
    let no_key = json!({"batch": [good.clone()]});
    assert_eq!(post(c.addr(), "/batch/", &[], &no_key).0, 401);
    assert_eq!(
        request(c.addr(), "POST", "/batch/", &[], b"{not json").0,
        400
    );

    assert!(
        c.received().is_empty(),
        "nothing from a rejected batch is recorded"
    );
    assert_eq!(c.counts().total(), 0);
    assert_eq!(c.counts().rejected_requests, 5);
    assert_eq!(c.rejected()[3].status, 401);
}

/// A reason that quotes the request (here a 1 MiB `uuid`) is cut to [`MAX_REASON_BYTES`], in
/// the answer and in what the collector keeps.
#[test]
fn a_rejection_reason_is_cut_to_a_bounded_length() {
    let c = collector();
    let huge = "é".repeat(512 * 1024); // 1 MiB of two-byte characters: the cut must not split one
    let batch =
        json!({"api_key": "phc_test", "batch": [posthog_event("command_completed", &huge)]});
    let (status, body) = post(c.addr(), "/batch/", &[], &batch);
    assert_eq!(status, 400);
    let answered = body["reason"].as_str().expect("a reason");
    assert!(answered.len() <= MAX_REASON_BYTES, "{}", answered.len());
    let kept = c.rejected();
    assert_eq!(kept.len(), 1);
    let reason = &kept[0].reason;
    assert!(reason.len() <= MAX_REASON_BYTES, "{}", reason.len());
    assert!(
        reason.starts_with("failed to parse request: event 0 has a malformed uuid"),
        "{reason}"
    );
    assert_eq!(reason, answered);
}

/// With the default bounds, accepted events past [`DEFAULT_MAX_KEPT_BYTES`] push the oldest out,
/// and the ones pushed out are counted: two PostHog requests of one 17 MiB event each (under the
/// 20 MiB body limit) are both accepted, only the newer is kept.
#[test]
fn kept_events_are_bounded_in_bytes_and_the_oldest_go_first() {
    let c = collector();
    let blob = "x".repeat(17 * 1024 * 1024);
    assert!(2 * blob.len() > DEFAULT_MAX_KEPT_BYTES);
    for name in ["big_0", "big_1"] {
        let mut event = posthog_event(name, &uuid());
        event["properties"]["blob"] = json!(blob);
        let batch = json!({"api_key": "phc_test", "batch": [event]});
        assert_eq!(post(c.addr(), "/batch/", &[], &batch).0, 200, "{name}");
    }
    let counts = c.counts();
    assert_eq!((counts.posthog, counts.not_kept), (2, 1));
    let kept: Vec<String> = c.received().into_iter().map(|r| r.name).collect();
    assert_eq!(kept, ["big_1"]);
}

/// Both bounds are set on the builder; past either, the oldest go first and are counted.
#[test]
fn the_kept_bounds_are_set_on_the_builder() {
    let by_count = Collector::builder().max_kept(1).start().unwrap();
    let (a, b) = (uuid(), uuid());
    let batch = json!([
        relay_message("job.started", &a),
        relay_message("job.failed", &b)
    ]);
    assert_eq!(post(by_count.addr(), "/relay", &[], &batch).0, 200);
    assert_eq!(
        (by_count.counts().relay, by_count.counts().not_kept),
        (2, 1)
    );
    assert_eq!(by_count.received()[0].id.as_deref(), Some(b.as_str()));

    let by_bytes = Collector::builder().max_kept_bytes(10).start().unwrap();
    let batch = json!([relay_message("job.started", &uuid())]);
    assert_eq!(post(by_bytes.addr(), "/relay", &[], &batch).0, 200);
    assert_eq!(
        (by_bytes.counts().relay, by_bytes.counts().not_kept),
        (1, 1)
    );
    assert!(
        by_bytes.received().is_empty(),
        "an event over the byte bound alone is not kept"
    );
}

#[test]
fn a_gzip_body_is_accepted() {
    let c = collector();
    let batch = json!({"api_key": "phc_test", "batch": [posthog_event("command_failed", &uuid())]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(batch.to_string().as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let (status, _) = request(
        c.addr(),
        "POST",
        "/batch/",
        &[("content-encoding", "gzip")],
        &body,
    );
    assert_eq!(status, 200);
    assert_eq!(c.wait_for(1, WAIT)[0].name, "command_failed");
}

#[test]
fn relay_arrays_are_validated_message_by_message() {
    let c = collector();
    let (a, b) = (uuid(), uuid());
    let ok = json!([
        relay_message("connection.established", &a),
        relay_message("job.failed", &b)
    ]);
    assert_eq!(post(c.addr(), "/relay", &[], &ok).0, 200);
    let got = c.wait_for(2, WAIT);
    assert_eq!(got[0].stream, Destination::Relay);
    assert_eq!(got[1].name, "job.failed");
    assert_eq!(got[1].id.as_deref(), Some(b.as_str()));

    let mut wrong_version = relay_message("job.completed", &uuid());
    wrong_version["trace"]["schemaVersion"] = json!("2");
    let batch = json!([relay_message("job.started", &uuid()), wrong_version]);
    let (status, body) = post(c.addr(), "/relay", &[], &batch);
    assert_eq!(status, 400);
    assert!(
        body["reason"].as_str().unwrap().contains("schemaVersion"),
        "{body}"
    );
    assert_eq!(c.counts().relay, 2, "the rejected array recorded nothing");
}

#[test]
fn the_relay_bearer_token_is_enforced_when_configured() {
    let c = Collector::builder().relay_token("s3cret").start().unwrap();
    let batch = json!([relay_message("connection.lost", &uuid())]);
    assert_eq!(post(c.addr(), "/relay", &[], &batch).0, 401);
    assert_eq!(
        post(
            c.addr(),
            "/relay",
            &[("authorization", "Bearer nope")],
            &batch
        )
        .0,
        401
    );
    assert_eq!(
        post(
            c.addr(),
            "/relay",
            &[("authorization", "Bearer s3cret")],
            &batch
        )
        .0,
        200
    );
    assert_eq!(c.counts().relay, 1);
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn datadog_intake_status_codes() {
    let c = collector();
    let item = json!({"ddsource": "closedloop-desktop", "service": "closedloop-desktop",
                      "message": "job.failed", "status": "error", "id": uuid(),
                      "trace": {"schemaVersion": "1"}});
    let key = [("DD-API-KEY", "local")];
    assert_eq!(post(c.addr(), "/api/v2/logs", &[], &json!([item])).0, 403);
    let too_many = Value::Array(vec![item.clone(); 1001]);
    assert_eq!(post(c.addr(), "/api/v2/logs", &key, &too_many).0, 413);
    let huge = json!([{"message": "x".repeat(5_000_001)}]);
    assert_eq!(post(c.addr(), "/api/v2/logs", &key, &huge).0, 413);
    assert_eq!(
        post(c.addr(), "/api/v2/logs", &key, &json!([{"status": "info"}])).0,
        400
    );
    let (status, body) = post(c.addr(), "/api/v2/logs", &key, &json!([item]));
    assert_eq!((status, body), (202, json!({})));
    let got = c.wait_for(1, WAIT);
    assert_eq!(
        (got[0].stream, got[0].name.as_str()),
        (Destination::Datadog, "job.failed")
    );
    assert_eq!(c.counts().datadog, 1);
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405() {
    let c = collector();
    assert_eq!(post(c.addr(), "/capture/", &[], &json!({})).0, 404);
    assert_eq!(request(c.addr(), "GET", "/", &[], b"").0, 404);
    assert_eq!(request(c.addr(), "GET", "/batch/", &[], b"").0, 405);
    assert_eq!(c.counts().rejected_requests, 3);
}

#[test]
fn arrivals_print_as_ndjson_and_text() {
    let c = collector();
    let arrivals = c.subscribe();
    let id = uuid();
    post(
        c.addr(),
        "/relay",
        &[],
        &json!([relay_message("queue.stats_changed", &id)]),
    );
    post(c.addr(), "/nowhere", &[], &json!({}));

    let first = arrivals.recv_timeout(WAIT).expect("an arrival");
    let line = format_arrival(&first, PrintFormat::Ndjson);
    assert!(!line.contains('\n'));
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["stream"], "relay");
    assert_eq!(v["name"], "queue.stats_changed");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["body"]["trace"]["computeTargetId"], "ct-1");
    assert_eq!(
        format_arrival(&first, PrintFormat::Human),
        format!("relay    queue.stats_changed  id={id} computeTargetId=ct-1")
    );

    let second = arrivals.recv_timeout(WAIT).expect("the rejection");
    assert!(matches!(&second, Arrival::Rejected(r) if r.status == 404));
    let v: Value = serde_json::from_str(&format_arrival(&second, PrintFormat::Ndjson)).unwrap();
    assert_eq!(
        (v["rejected"].clone(), v["status"].clone()),
        (json!(true), json!(404))
    );
}

#[test]
fn shutdown_stops_the_server_and_non_loopback_is_refused() {
    let c = collector();
    let addr = c.addr();
    c.shutdown();
    c.shutdown(); // idempotent
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    let err = Collector::start("0.0.0.0:0".parse().unwrap()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn the_collect_binary_prints_endpoints_and_receives_a_post() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_closedloop-telemetry"))
        .args(["collect", "--bind", "127.0.0.1:0", "--max-seconds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the binary");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = Vec::new();
    let mut relay_url = None;
    for line in (&mut stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("CL_RELAY_URL=") {
            relay_url = Some(url.to_string());
        }
        let done = line.starts_with("waiting for events");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    for needle in [
        "CL_POSTHOG_HOST=http://127.0.0.1:",
        "DD_LOGS_URL=http://127.0.0.1:",
    ] {
        assert!(banner.contains(needle), "{needle} missing from:\n{banner}");
    }
    let relay_url = relay_url.expect("a CL_RELAY_URL line");
    let addr: SocketAddr = relay_url
        .trim_start_matches("http://")
        .trim_end_matches("/relay")
        .parse()
        .unwrap();
    let id = uuid();
    let (status, _) = post(
        addr,
        "/relay",
        &[],
        &json!([relay_message("connection.established", &id)]),
    );
    assert_eq!(status, 200);

    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        rest.contains(&format!("relay    connection.established  id={id}")),
        "no event line in:\n{rest}"
    );
    assert!(
        rest.contains("received: posthog=0 relay=1 datadog=0"),
        "{rest}"
    );
}

#[test]
fn the_binary_refuses_non_loopback_and_unknown_commands() {
    let bin = env!("CARGO_BIN_EXE_closedloop-telemetry");
    let out = Command::new(bin)
        .args(["collect", "--bind", "0.0.0.0:4318"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = Command::new(bin).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    let out = Command::new(bin).arg("help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("collect"));
}
