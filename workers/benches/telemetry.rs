//! Telemetry mapping throughput on one core: the seed fixture (7 events, base64, as the
//! sensors send it), the same submission as plain JSON, and a 100-event submission. Each
//! iteration maps one submission, so submissions/s is 1 / time and events/s is the item rate.
//!
//! Run: `cargo bench -p wharf-workers --bench telemetry`

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use serde_json::{Value, json};
use wharf_crds::pipeline::PartitionKey;
use wharf_workers::processors::telemetry::TelemetryMapper;

const FIXTURE: &str = include_str!("../tests/fixtures/telemetry/event.json");

fn main() {
    divan::main();
}

fn fixture_body() -> String {
    let event: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    event["Messages"][0]["Body"]
        .as_str()
        .expect("fixture has a Body")
        .to_owned()
}

/// A submission with 50 process and 50 network events, base64-encoded.
fn hundred_event_body() -> String {
    let new_process: Vec<Value> = (0..50)
        .map(|i| json!({"cmdl": format!("C:\\Windows\\System32\\svchost.exe -k netsvcs -p {i}"), "user": "svc-backup"}))
        .collect();
    let network_connection: Vec<Value> = (0..50)
        .map(|i| {
            let destination = if i % 2 == 0 { "2001:4860:4860::8888".to_owned() } else { format!("142.250.74.{i}") };
            json!({"source_ip": format!("192.168.0.{i}"), "destination_ip": destination, "destination_port": 1000 + i})
        })
        .collect();
    let submission = json!({
        "submission_id": "6513270e-269e-4d37-b2a7-4de452e6b438",
        "device_id": "d23f0824-128b-4f33-8c5c-7fd0a6a3a450",
        "time_created": "2026-11-22T09:00:34.098702",
        "events": {"new_process": new_process, "network_connection": network_connection}
    });
    STANDARD.encode(submission.to_string())
}

fn run(bencher: Bencher<'_, '_>, body: String) {
    let mapper = TelemetryMapper::new("events".to_owned(), PartitionKey::Submission);
    let events = mapper
        .map(&body)
        .expect("the bench submission is valid")
        .len();
    bencher
        .counter(ItemsCount::new(events))
        .counter(BytesCount::of_str(&body))
        .bench(|| mapper.map(black_box(&body)));
}

#[divan::bench]
fn fixture_7_events_base64(bencher: Bencher<'_, '_>) {
    run(bencher, fixture_body());
}

#[divan::bench]
fn fixture_7_events_plain_json(bencher: Bencher<'_, '_>) {
    let decoded = STANDARD
        .decode(fixture_body())
        .expect("fixture Body is base64");
    run(
        bencher,
        String::from_utf8(decoded).expect("fixture is UTF-8"),
    );
}

#[divan::bench]
fn submission_100_events_base64(bencher: Bencher<'_, '_>) {
    run(bencher, hundred_event_body());
}
