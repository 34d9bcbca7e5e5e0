//! The mapper end to end on the original service's fixture and the example submissions.

use serde_json::{Value, json};

use super::mapping::testing::SequenceStamper;
use super::*;

const RECEIVE_MESSAGE_SHAPE: &str = include_str!("../../../tests/fixtures/telemetry/event.json");
const DECODED: &str = include_str!("../../../tests/fixtures/telemetry/event-body-decoded.json");
const EXAMPLE_SUBMISSIONS: &str =
    include_str!("../../../../examples/events/telemetry/submissions.jsonl");

const SUBMISSION_ID: &str = "81140a44-b06d-421d-bd00-cbc65aab6503";
const DEVICE_ID: &str = "a6829ee2-871f-485e-9253-fbd02ba091cc";

fn mapper(partition_key: PartitionKey) -> TelemetryMapper {
    TelemetryMapper::with_stamper(
        "events".to_owned(),
        partition_key,
        Box::new(SequenceStamper::default()),
    )
}

fn fixture_base64_body() -> String {
    let event: Value = serde_json::from_str(RECEIVE_MESSAGE_SHAPE).unwrap();
    event["Messages"][0]["Body"].as_str().unwrap().to_owned()
}

fn payload(body: &str) -> Payload {
    Payload {
        body: body.to_owned(),
        origin: "body".to_owned(),
    }
}

async fn process(processor: &dyn Processor, body: &str) -> Outcome {
    processor
        .process(&payload(body), &MessageContext::default())
        .await
}

fn spec(telemetry: Value) -> PipelineSpec {
    serde_json::from_value(json!({
        "source": {"sqs": {"queueUrl": "https://sqs.eu-west-2.amazonaws.com/123456789012/submissions"}},
        "processor": {"telemetry": telemetry},
        "sinks": [{"name": "events", "kinesis": {"streamName": "events"}}]
    }))
    .unwrap()
}

fn bodies(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .map(|output| serde_json::from_str(&output.record.body).unwrap())
        .collect()
}

/// The seven records the original would write for the fixture, with the test stamps.
fn expected_fixture_bodies() -> Vec<String> {
    let details = [
        r#"{"cmdl": "notepad.exe", "user": "admin"}"#,
        r#"{"cmdl": "notepad.exe", "user": "john"}"#,
        r#"{"cmdl": "calculator.exe", "user": "admin"}"#,
        r#"{"cmdl": "notepad.exe", "user": "john"}"#,
        r#"{"source_ip": "192.168.0.1", "destination_ip": "142.250.74.110", "destination_port": 33760}"#,
        r#"{"source_ip": "192.168.0.2", "destination_ip": "23.13.252.39", "destination_port": 41641}"#,
        r#"{"source_ip": "192.168.0.1", "destination_ip": "23.13.252.39", "destination_port": 22914}"#,
    ];
    details
        .iter()
        .enumerate()
        .map(|(i, details)| {
            let n = i + 1;
            let event_type = if i < 4 { "new_process" } else { "network_connection" };
            format!(
                r#"{{"event_id": "00000000-0000-1000-8000-{n:012}", "device_id": "{DEVICE_ID}", "time_processed": "2022-05-09T03:24:{n:02}.000001", "type": "{event_type}", "details": {details}}}"#
            )
        })
        .collect()
}

#[tokio::test]
async fn fixture_maps_to_seven_records_with_the_original_bytes_in_order() {
    let outcome = process(&mapper(PartitionKey::Event), &fixture_base64_body()).await;
    let Outcome::Ok(outputs) = outcome else {
        panic!("expected records, got {outcome:?}");
    };
    let got: Vec<&str> = outputs.iter().map(|o| o.record.body.as_str()).collect();
    assert_eq!(got, expected_fixture_bodies());
    for output in &outputs {
        assert_eq!(output.sink, "events");
        let body: Value = serde_json::from_str(&output.record.body).unwrap();
        // The original's partition key: each event's own id.
        assert_eq!(
            output.record.partition_key.as_deref(),
            body["event_id"].as_str()
        );
        assert!(body.get("submission_id").is_none() && body.get("time_created").is_none());
    }
}

#[tokio::test]
async fn plain_json_body_maps_like_the_base64_one() {
    let base64 = mapper(PartitionKey::Submission)
        .map(&fixture_base64_body())
        .unwrap();
    let plain = mapper(PartitionKey::Submission).map(DECODED).unwrap();
    assert_eq!(plain, base64);
    assert_eq!(plain.len(), 7);
}

#[tokio::test]
async fn receive_message_shape_is_accepted_as_the_original_was_invoked() {
    let outputs = mapper(PartitionKey::Event)
        .map(RECEIVE_MESSAGE_SHAPE)
        .unwrap();
    let got: Vec<&str> = outputs.iter().map(|o| o.record.body.as_str()).collect();
    assert_eq!(got, expected_fixture_bodies());
}

#[tokio::test]
async fn lambda_records_shape_maps_every_message_in_order() {
    let records = format!(
        r#"{{"Records": [{{"messageId": "1", "body": "{0}"}}, {{"messageId": "2", "body": "{0}"}}]}}"#,
        fixture_base64_body()
    );
    let outputs = mapper(PartitionKey::Submission).map(&records).unwrap();
    assert_eq!(outputs.len(), 14);
    let ids: Vec<String> = bodies(&outputs)
        .iter()
        .map(|body| body["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids[0], "00000000-0000-1000-8000-000000000001");
    assert_eq!(ids[13], "00000000-0000-1000-8000-000000000014");
}

#[tokio::test]
async fn one_invalid_message_in_a_batch_shape_fails_the_payload_naming_it() {
    let broken = DECODED.replacen("33760", "65536", 1);
    let batch =
        json!({"Messages": [{"Body": fixture_base64_body()}, {"Body": broken}]}).to_string();
    let outcome = process(&mapper(PartitionKey::Submission), &batch).await;
    assert_eq!(
        outcome,
        Outcome::Permanent(
            "invalid submission: Messages[1].Body: `events.network_connection[0].destination_port`: \
             65536 is not a port number (expected an integer from 0 to 65535)"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn submission_partition_key_keeps_a_submission_on_one_shard() {
    let processor = build(&spec(
        json!({"sink": "events", "partitionKey": "submission"}),
    ))
    .unwrap();
    let Outcome::Ok(outputs) = process(processor.as_ref(), &fixture_base64_body()).await else {
        panic!("expected records");
    };
    assert_eq!(outputs.len(), 7);
    assert!(
        outputs
            .iter()
            .all(|o| o.record.partition_key.as_deref() == Some(SUBMISSION_ID))
    );
}

#[tokio::test]
async fn partition_key_defaults_to_the_submission() {
    let processor = build(&spec(json!({"sink": "events"}))).unwrap();
    let Outcome::Ok(outputs) = process(processor.as_ref(), DECODED).await else {
        panic!("expected records");
    };
    assert_eq!(
        outputs[0].record.partition_key.as_deref(),
        Some(SUBMISSION_ID)
    );
}

#[tokio::test]
async fn device_partition_key_uses_the_device_id() {
    let processor = build(&spec(json!({"sink": "events", "partitionKey": "device"}))).unwrap();
    let Outcome::Ok(outputs) = process(processor.as_ref(), DECODED).await else {
        panic!("expected records");
    };
    assert!(
        outputs
            .iter()
            .all(|o| o.record.partition_key.as_deref() == Some(DEVICE_ID))
    );
}

#[tokio::test]
async fn event_partition_key_is_each_events_unique_version_1_id() {
    let processor = build(&spec(json!({"sink": "events", "partitionKey": "event"}))).unwrap();
    let Outcome::Ok(outputs) = process(processor.as_ref(), DECODED).await else {
        panic!("expected records");
    };
    let mut keys = std::collections::HashSet::new();
    for (output, body) in outputs.iter().zip(bodies(&outputs)) {
        let key = output.record.partition_key.clone().unwrap();
        assert_eq!(Some(key.as_str()), body["event_id"].as_str());
        assert_eq!(uuid::Uuid::parse_str(&key).unwrap().get_version_num(), 1);
        assert_eq!(body["device_id"], DEVICE_ID);
        assert!(keys.insert(key));
    }
    assert_eq!(keys.len(), 7);
}

#[tokio::test]
async fn submission_without_events_succeeds_with_nothing_to_publish() {
    let empty = DECODED
        .split("\"events\"")
        .next()
        .map(|head| {
            format!("{head}\"events\": {{\"new_process\": [], \"network_connection\": []}}}}")
        })
        .unwrap();
    assert_eq!(
        process(&mapper(PartitionKey::Submission), &empty).await,
        Outcome::Ok(vec![])
    );
}

#[tokio::test]
async fn invalid_submission_is_permanent_naming_the_field() {
    let broken = DECODED.replacen("\"192.168.0.2\"", "\"192.168.0\"", 1);
    assert_eq!(
        process(&mapper(PartitionKey::Submission), &broken).await,
        Outcome::Permanent(
            "invalid submission: body: `events.network_connection[1].source_ip`: \
             \"192.168.0\" is not an IPv4 or IPv6 address"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn broken_base64_and_broken_json_are_permanent() {
    let Outcome::Permanent(reason) = process(&mapper(PartitionKey::Submission), "%%%").await else {
        panic!("expected a permanent failure");
    };
    assert!(
        reason.contains("neither a JSON object nor base64"),
        "{reason}"
    );
    let Outcome::Permanent(reason) =
        process(&mapper(PartitionKey::Submission), "{\"submission_id\": ").await
    else {
        panic!("expected a permanent failure");
    };
    assert!(
        reason.starts_with("invalid submission: body: `submission_id`: EOF while parsing"),
        "{reason}"
    );
}

#[tokio::test]
async fn example_submissions_map_except_the_deliberately_invalid_one() {
    let mapper = mapper(PartitionKey::Submission);
    let lines: Vec<&str> = EXAMPLE_SUBMISSIONS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let (last, valid) = lines.split_last().unwrap();
    for line in valid {
        let texts = submission::submission_texts(line).unwrap();
        let submission: Value = serde_json::from_slice(&texts[0].json).unwrap();
        let expected = submission["events"]["new_process"]
            .as_array()
            .unwrap()
            .len()
            + submission["events"]["network_connection"]
                .as_array()
                .unwrap()
                .len();
        let outputs = mapper.map(line).unwrap();
        assert_eq!(outputs.len(), expected);
        assert!(
            outputs
                .iter()
                .all(|o| o.record.partition_key.as_deref() == submission["submission_id"].as_str())
        );
    }
    let Outcome::Permanent(reason) = process(&mapper, last).await else {
        panic!("the last example submission is invalid");
    };
    assert!(reason.contains("`device_id`: \"not-a-uuid\""), "{reason}");
}

#[test]
fn invalid_input_is_dropped_without_a_dead_letter_sink_like_the_original() {
    let processor = build(&spec(json!({"sink": "events"}))).unwrap();
    assert!(processor.drops_invalid_without_dead_letter());
    assert_eq!(processor.kind(), ProcessorKind::Telemetry);
}

#[test]
fn build_without_telemetry_settings_is_an_error() {
    let mut spec = spec(json!({"sink": "events"}));
    spec.processor.telemetry = None;
    assert!(matches!(build(&spec), Err(BuildError::NoProcessor)));
}

#[test]
fn metrics_count_payloads_and_events_by_type() {
    let mapper = mapper(PartitionKey::Submission);
    let mut registry = Registry::with_prefix("wharf");
    mapper.register_metrics(&mut registry);
    mapper.map(DECODED).unwrap();
    mapper.map("%%%").unwrap_err();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "wharf_telemetry_submissions_total{result=\"mapped\"} 1",
        "wharf_telemetry_submissions_total{result=\"invalid\"} 1",
        "wharf_telemetry_events_total{type=\"new_process\"} 4",
        "wharf_telemetry_events_total{type=\"network_connection\"} 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}
