//! The infraEvents processor of `examples/infra-events.yaml`, run through the same message
//! handling as the worker (`process_body`: envelope, processor, combined outcome) on every
//! fixture of the original service, as the three bodies SQS holds for it: the SNS-wrapped
//! Lambda event, the SNS notification JSON (raw delivery off) and the raw message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use wharf_crds::PipelineSpec;
use wharf_crds::manifest::{self, WharfResource};
use wharf_crds::pipeline::Envelope;
use wharf_workers::processing::{MessageResult, process_body};
use wharf_workers::processors::infra_events::classify::UNIDENTIFIED_EVENT;
use wharf_workers::processors::{self, MessageContext, Outcome, Output, Processor};

/// Fixture file, `name` attribute and participant of the event it must produce.
const FIXTURES: [(&str, &str, &str); 5] = [
    (
        "recorder_started_event.json",
        "recorderStarted",
        "11684e961893422dbf9a33679bca3b53",
    ),
    (
        "video_processing_failed_event.seed-commit-77598e7.json",
        "videoProcessingFailed",
        "46ff08a1a9294fcd933d0c2c063c743d",
    ),
    (
        "video_processing_failed_event.final-branch-42e4936.json",
        "videoProcessingFailed",
        "82862935a43c4caeb9ed8f4c2622c493",
    ),
    (
        "coverage_processing_failed_event.seed-commit-77598e7.json",
        "coverageProcessingFailed",
        "6ad13e27e20749f798fcd7a7459533f2",
    ),
    (
        "coverage_processing_failed_event.final-branch-42e4936.json",
        "coverageProcessingFailed",
        "36179355d0a74691ac3869320e9a9da2",
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        root()
            .join("workers/tests/fixtures/infra_events")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn example_spec() -> PipelineSpec {
    let documents = manifest::load_file(&root().join("examples/infra-events.yaml")).unwrap();
    match &documents[0].outcome {
        manifest::Outcome::Valid(WharfResource::Pipeline(pipeline)) => pipeline.spec.clone(),
        other => panic!("examples/infra-events.yaml is not a valid Pipeline: {other:?}"),
    }
}

fn processor() -> (Arc<dyn Processor>, PipelineSpec) {
    let spec = example_spec();
    let processor = processors::build(&spec, None).expect("infraEvents needs no backend");
    (processor, spec)
}

fn sink_of(spec: &PipelineSpec) -> String {
    spec.processor
        .infra_events
        .as_ref()
        .expect("the example is an infraEvents pipeline")
        .sink
        .clone()
}

/// The three SQS bodies of one SNS-wrapped fixture, named for the delivery they model.
fn sqs_bodies(wrapped: &str) -> Vec<(&'static str, String)> {
    let value: Value = serde_json::from_str(wrapped).unwrap();
    let message = value["Records"][0]["Sns"]["Message"]
        .as_str()
        .unwrap()
        .to_owned();
    let notification = json!({
        "Type": "Notification",
        "MessageId": "0b6a4b7e-7f5a-5d5e-9d6c-2b1f4d2a6c11",
        "TopicArn": "arn:aws:sns:eu-west-2:123456789012:infra-events",
        "Message": message,
        "Timestamp": "2019-02-04T15:44:56.000Z",
        "SignatureVersion": "1",
    })
    .to_string();
    vec![
        ("lambda sns event", wrapped.to_owned()),
        ("sns notification json", notification),
        ("raw sns delivery", message),
    ]
}

async fn run(processor: &dyn Processor, body: &str, envelope: Envelope) -> MessageResult {
    let context = MessageContext {
        message_id: "m-1".to_owned(),
        receive_count: 1,
        ..MessageContext::default()
    };
    process_body(processor, body, envelope, &context).await
}

fn outputs(result: MessageResult, what: &str) -> Vec<Output> {
    assert!(!result.panicked, "{what}: the processor panicked");
    match result.outcome {
        Outcome::Ok(outputs) => outputs,
        other => panic!("{what}: expected outputs, got {other:?}"),
    }
}

fn assert_event(output: &Output, sink: &str, name: &str, participant: &str, what: &str) {
    assert_eq!(output.sink, sink, "{what}");
    assert_eq!(
        output.record.attributes.get("name").map(String::as_str),
        Some(name),
        "{what}"
    );
    assert_eq!(
        output.record.attributes.get("version").map(String::as_str),
        Some("0.2"),
        "{what}"
    );
    let body: Value = serde_json::from_str(&output.record.body).unwrap();
    assert_eq!(body["participant"], participant, "{what}");
    assert!(body["timestampMillis"].is_i64(), "{what}");
}

async fn each_fixture_as_each_sqs_body_becomes_one_event(envelope: Envelope) {
    let (processor, spec) = processor();
    let sink = sink_of(&spec);
    for (file, name, participant) in FIXTURES {
        for (delivery, body) in sqs_bodies(&fixture(file)) {
            let what = format!("{file} as {delivery} with envelope {envelope:?}");
            let outputs = outputs(run(processor.as_ref(), &body, envelope).await, &what);
            assert_eq!(outputs.len(), 1, "{what}");
            assert_event(&outputs[0], &sink, name, participant, &what);
        }
    }
}

#[tokio::test]
async fn every_fixture_in_every_sqs_shape_becomes_one_event_with_the_auto_envelope() {
    each_fixture_as_each_sqs_body_becomes_one_event(Envelope::Auto).await;
}

#[tokio::test]
async fn every_fixture_in_every_sqs_shape_becomes_one_event_with_the_raw_envelope() {
    each_fixture_as_each_sqs_body_becomes_one_event(Envelope::Raw).await;
}

#[tokio::test]
async fn a_lambda_event_holding_every_fixture_gives_every_event_in_order() {
    let (processor, spec) = processor();
    let sink = sink_of(&spec);
    let records: Vec<Value> = FIXTURES
        .iter()
        .map(|(file, _, _)| {
            let wrapped: Value = serde_json::from_str(&fixture(file)).unwrap();
            wrapped["Records"][0].clone()
        })
        .collect();
    let body = json!({ "Records": records }).to_string();
    for envelope in [Envelope::Auto, Envelope::Raw] {
        let what = format!("five SNS records with envelope {envelope:?}");
        let outputs = outputs(run(processor.as_ref(), &body, envelope).await, &what);
        assert_eq!(outputs.len(), FIXTURES.len(), "{what}");
        for (output, (file, name, participant)) in outputs.iter().zip(FIXTURES) {
            assert_event(output, &sink, name, participant, &format!("{what}: {file}"));
        }
    }
}

#[tokio::test]
async fn the_unidentified_sample_fails_permanently_with_the_original_sentence() {
    let (processor, _) = processor();
    let body =
        std::fs::read_to_string(root().join("examples/events/infra-events/unidentified.json"))
            .unwrap();
    for envelope in [Envelope::Auto, Envelope::Raw] {
        let result = run(processor.as_ref(), &body, envelope).await;
        assert!(!result.panicked);
        match result.outcome {
            Outcome::Permanent(reason) => assert!(
                reason.ends_with(UNIDENTIFIED_EVENT),
                "envelope {envelope:?}: {reason}"
            ),
            other => panic!("envelope {envelope:?}: expected a permanent failure, got {other:?}"),
        }
    }
}
