//! `wharf run` on the embedded backend and `wharf invoke`, as a user runs them: the real binary
//! on the examples, with the expected results worked out here from the sample events.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use serde_json::Value;
use wharf_tests::workspace_root;

fn wharf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("the wharf binary runs")
}

fn stdout_json(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// Events in one base64 submission; `None` when its device id is not a UUID (the one invalid
/// sample, which must be dead-lettered).
fn submission_events(encoded: &str) -> Option<usize> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .expect("samples are base64");
    let submission: Value = serde_json::from_slice(&decoded).expect("samples are JSON");
    let device = submission["device_id"].as_str().unwrap_or_default();
    if device.len() != 36 {
        return None;
    }
    let events = submission["events"]
        .as_object()
        .expect("events is an object")
        .values()
        .map(|list| list.as_array().map_or(0, Vec::len))
        .sum();
    Some(events)
}

fn telemetry_sample_lines() -> Vec<String> {
    std::fs::read_to_string(workspace_root().join("examples/events/telemetry/submissions.jsonl"))
        .expect("the telemetry samples exist")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Events per sample message `wharf run` seeds: one per line of `submissions.jsonl`, and the
/// ReceiveMessage-shaped file as one message carrying several submissions.
fn telemetry_samples() -> Vec<Option<usize>> {
    let mut samples: Vec<Option<usize>> = telemetry_sample_lines()
        .iter()
        .map(|line| submission_events(line))
        .collect();
    let batch: Value = serde_json::from_str(
        &std::fs::read_to_string(
            workspace_root().join("examples/events/telemetry/receive-message-shape.json"),
        )
        .expect("the ReceiveMessage sample exists"),
    )
    .expect("it is JSON");
    let in_batch: Option<Vec<usize>> = batch["Messages"]
        .as_array()
        .expect("Messages")
        .iter()
        .map(|m| submission_events(m["Body"].as_str().expect("a Body")))
        .collect();
    samples.push(in_batch.map(|events| events.iter().sum()));
    samples
}

#[test]
fn run_telemetry_example_writes_one_record_per_event_and_dead_letters_the_invalid_submission() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = wharf(&[
        "run",
        "-f",
        "examples/telemetry.yaml",
        "--output",
        "json",
        "--output-dir",
        out.path().to_str().expect("utf-8 path"),
    ]);
    assert!(output.status.success(), "{output:?}");
    let summary = stdout_json(&output);

    let samples = telemetry_samples();
    let expected_events: usize = samples.iter().flatten().sum();
    let invalid = samples.iter().filter(|s| s.is_none()).count();
    assert_eq!(invalid, 1, "the samples hold one invalid submission");
    assert_eq!(summary["seeded"], samples.len());
    assert_eq!(summary["received"], samples.len());
    assert_eq!(summary["processed"], samples.len() - invalid);
    assert_eq!(summary["deadLettered"], invalid);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["outputs"]["events"], expected_events);

    let records = lines(&out.path().join("events.jsonl"));
    assert_eq!(records.len(), expected_events);
    assert!(
        records.iter().all(|r| r["data"].is_object()),
        "record data is JSON"
    );
    let dead = lines(&out.path().join("dead-letter.jsonl"));
    assert_eq!(dead.len(), 1);
    let reason = dead[0]["attributes"].to_string();
    assert!(
        reason.contains("device_id"),
        "the reason names the field: {reason}"
    );
}

#[test]
fn run_infra_events_example_routes_every_identified_event_and_dead_letters_the_rest() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = wharf(&[
        "run",
        "-f",
        "examples/infra-events.yaml",
        "--output",
        "json",
        "--output-dir",
        out.path().to_str().expect("utf-8 path"),
    ]);
    assert!(output.status.success(), "{output:?}");
    let summary = stdout_json(&output);
    let samples = std::fs::read_dir(workspace_root().join("examples/events/infra-events"))
        .expect("infra-events samples")
        .count();
    assert_eq!(summary["received"], samples);
    assert_eq!(
        summary["deadLettered"], 1,
        "only unidentified.json is dead-lettered"
    );
    let routed = lines(&out.path().join("participant-events.jsonl"));
    assert_eq!(summary["outputs"]["participant-events"], routed.len());
    let names: Vec<String> = routed
        .iter()
        .map(|m| {
            m["attributes"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for name in [
        "recorderStarted",
        "videoProcessingFailed",
        "coverageProcessingFailed",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
}

#[test]
fn invoke_telemetry_prints_one_output_per_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines = telemetry_sample_lines();
    let event = dir.path().join("submission.txt");
    std::fs::write(&event, &lines[0]).expect("write the event");

    let output = wharf(&[
        "invoke",
        "--processor",
        "telemetry",
        "--event",
        event.to_str().expect("utf-8 path"),
    ]);
    assert!(output.status.success(), "{output:?}");
    let printed = stdout_json(&output);
    assert_eq!(printed["outcome"], "ok");
    let outputs = printed["outputs"].as_array().expect("outputs");
    assert_eq!(Some(outputs.len()), submission_events(&lines[0]));
    assert!(outputs.iter().all(|o| o["sink"] == "events"));
}

#[test]
fn invoke_reports_a_permanent_failure_with_the_field_and_exit_status_3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let invalid = telemetry_sample_lines()
        .into_iter()
        .find(|line| submission_events(line).is_none())
        .expect("an invalid sample");
    let event = dir.path().join("invalid.txt");
    std::fs::write(&event, invalid).expect("write the event");

    let output = wharf(&[
        "invoke",
        "--processor",
        "telemetry",
        "--event",
        event.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let printed = stdout_json(&output);
    assert_eq!(printed["outcome"], "permanent");
    let reason = printed["reason"].as_str().expect("a reason");
    assert!(reason.contains("device_id"), "{reason}");
}

#[test]
fn run_refuses_an_invalid_pipeline_naming_the_field() {
    let output = wharf(&["run", "-f", "examples/invalid/undeclared-sink.yaml"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spec.processor.telemetry.sink"),
        "the error names the field: {stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing runs: {output:?}");
}

#[test]
fn run_snapshot_status_example_counts_each_file_once_and_completes_the_finished_run() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = wharf(&[
        "run",
        "-f",
        "examples/snapshot-status.yaml",
        "--output",
        "json",
        "--output-dir",
        out.path().to_str().expect("utf-8 path"),
    ]);
    assert!(output.status.success(), "{output:?}");
    let summary = stdout_json(&output);
    // Six sample messages: three data files (one of them delivered twice), one more for a
    // second collection, a success file for a run whose only collection was received, and
    // one without a collection name.
    assert_eq!(summary["received"], 6);
    assert_eq!(summary["deadLettered"], 1);
    // A collection is announced once per received collection; the message that completed it
    // announces it again if it is delivered again (its first announcement may have been lost),
    // which the FIFO queue's content-based deduplication absorbs in AWS.
    let announced: std::collections::BTreeSet<String> =
        lines(&out.path().join("export-state.jsonl"))
            .iter()
            .map(|m| {
                let body: Value =
                    serde_json::from_str(m["body"].as_str().expect("a body")).expect("JSON body");
                body["topic_name"].as_str().expect("topic_name").to_owned()
            })
            .collect();
    assert_eq!(
        announced.into_iter().collect::<Vec<_>>(),
        ["core.contract", "core.statement"]
    );
    assert_eq!(
        summary["outputs"]["monitoring"], 1,
        "one for the completed run"
    );

    let collections = lines(&out.path().join("UCExportToCrownStatus.jsonl"));
    let contract = collections
        .iter()
        .find(|c| c["CollectionName"] == "core.contract")
        .expect("the core.contract collection");
    assert_eq!(
        contract["FilesReceived"], 2,
        "the repeated file is counted once"
    );
    assert_eq!(contract["CollectionStatus"], "Received");
    let products = lines(&out.path().join("data_pipeline_metadata.jsonl"));
    let status = |run: &str| {
        products
            .iter()
            .find(|p| p["Correlation_Id"] == run)
            .map(|p| p["Status"].clone())
    };
    assert_eq!(status("run-2026-12-01"), Some("RECEIVED".into()));
    assert_eq!(status("run-2026-11-30"), Some("COMPLETED".into()));
    let dead = lines(&out.path().join("dead-letter.jsonl"));
    assert!(
        dead[0]["attributes"]
            .to_string()
            .contains("collection_name")
    );
}
