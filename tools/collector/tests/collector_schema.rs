//! The collector checks relay messages against the published schema (docs/schema/), not a hand
//! copy of its rules: anything the schema forbids is refused with a reason naming the place.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use closedloop_telemetry_collector::Collector;
use serde_json::{json, Value};

/// One POST over a fresh loopback connection: the status and the JSON answer.
fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(addr).expect("connect to collector");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn relay_message() -> Value {
    json!({"type": "desktop.telemetry", "event": "connection.established",
           "trace": {"schemaVersion": "1", "timestamp": "2026-11-25T09:14:03.120Z",
                     "computeTargetId": "ct-1"},
           "id": uuid::Uuid::now_v7().to_string()})
}

#[test]
fn relay_messages_outside_the_published_schema_are_refused() {
    let c = Collector::start("127.0.0.1:0".parse().unwrap()).expect("start collector");
    assert_eq!(
        post(c.addr(), "/relay", &[], &json!([relay_message()])).0,
        200
    );

    let mut unknown_field = relay_message();
    unknown_field["surprise"] = json!(1);
    let mut seconds_only = relay_message();
    seconds_only["trace"]["timestamp"] = json!("2026-11-25T09:14:03Z");
    let mut empty_session = relay_message();
    empty_session["trace"]["gatewaySessionId"] = json!("");
    let mut null_extra = relay_message();
    null_extra["diagnostics"] = json!({"extra": {"k": null}});
    for (bad, place) in [
        (unknown_field, "surprise"),
        (seconds_only, "/trace/timestamp"),
        (empty_session, "/trace/gatewaySessionId"),
        (null_extra, "/diagnostics/extra/k"),
    ] {
        let (status, body) = post(c.addr(), "/relay", &[], &json!([relay_message(), bad]));
        assert_eq!(status, 400, "{place}: {body}");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("message 1: "), "{reason}");
        assert!(reason.contains(place), "{place}: {reason}");
    }
    assert_eq!(c.counts().relay, 1, "a refused array records nothing");
}

#[test]
fn a_datadog_item_needs_a_non_empty_message() {
    let c = Collector::start("127.0.0.1:0".parse().unwrap()).expect("start collector");
    let key = [("DD-API-KEY", "local")];
    let (status, body) = post(c.addr(), "/api/v2/logs", &key, &json!([{"message": ""}]));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("`message`"),
        "{body}"
    );
    assert_eq!(
        post(c.addr(), "/api/v2/logs", &key, &json!([{"message": "m"}])).0,
        202
    );
}
