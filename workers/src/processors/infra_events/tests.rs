//! The original service's six acceptance scenarios, every fixture it shipped, and the shapes
//! and cases it did not handle (several records, both ECS nestings, SNS delivery to a queue,
//! a missing `errorMessage`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wharf_crds::PipelineSpec;
use wharf_crds::manifest::{self, WharfResource};

use super::classify::UNIDENTIFIED_EVENT;
use super::{InfraEventsRouter, build, participant_events};
use crate::envelope::Payload;
use crate::processors::{BuildError, MessageContext, Outcome, Output, Processor};

const SINK: &str = "participant-events";
const NOW: i64 = 1_549_291_496_000;

const RECORDER_STARTED: &str =
    include_str!("../../../tests/fixtures/infra_events/recorder_started_event.json");
const VIDEO_FAILED_SEED: &str = include_str!(
    "../../../tests/fixtures/infra_events/video_processing_failed_event.seed-commit-77598e7.json"
);
const VIDEO_FAILED_FINAL: &str = include_str!(
    "../../../tests/fixtures/infra_events/video_processing_failed_event.final-branch-42e4936.json"
);
const COVERAGE_FAILED_SEED: &str = include_str!(
    "../../../tests/fixtures/infra_events/coverage_processing_failed_event.seed-commit-77598e7.json"
);
const COVERAGE_FAILED_FINAL: &str = include_str!(
    "../../../tests/fixtures/infra_events/coverage_processing_failed_event.final-branch-42e4936.json"
);

// ---------------------------------------------------------------------------------------------
// Helpers: payloads built the way the original acceptance tests built them.

/// A 32-hex id, as the original tests generated for challenges and participants.
fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `{"Records":[{"Sns":{"Message":"<message>"}}]}`: what the original Lambda received.
fn sns_wrapped(message: &Value) -> String {
    sns_wrapped_all(&[message])
}

fn sns_wrapped_all(messages: &[&Value]) -> String {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| json!({"Sns": {"Message": m.to_string()}}))
        .collect();
    json!({ "Records": records }).to_string()
}

fn s3_put_event_json(challenge_id: &str, participant_id: &str) -> String {
    json!({"Records": [{"eventVersion": "2.0", "eventSource": "aws:s3", "awsRegion": "eu-west-2",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "tdl-test-auto-uploads"},
               "object": {"key": format!("{challenge_id}/{participant_id}/last_sync_start.txt")}}}]})
    .to_string()
}

fn ecs_video_task_json() -> String {
    json!({"detail-type": "ECS Task State Change", "source": "aws.ecs",
        "detail": {"containerInstanceArn": "arn:aws:ecs:eu-west-1:000000000000:container-instance/c1",
                   "pullStartedAt": "2018-09-02T16:11:37.959Z", "pullStoppedAt": "2018-09-02T16:12:57.959Z",
                   "containers": [{"exitCode": 255, "lastStatus": "STOPPED"}],
                   "stoppedReason": "Essential container in task exited"}})
    .to_string()
}

fn ecs_coverage_task_json() -> String {
    json!({"detail-type": "ECS Task State Change", "source": "aws.ecs",
        "detail": {"attachments": [{"type": "eni", "status": "DELETED"}],
                   "stoppedReason": "Task failed to start"}})
    .to_string()
}

fn s3_message(event_json: &str, challenge_id: &str, participant_id: &str) -> Value {
    json!({"Records": [{"s3": {"s3event": {
        "eventJson": event_json, "challengeId": challenge_id, "participantId": participant_id}}}]})
}

/// The seed version's double nesting, `ecsevent.ecsevent`.
fn ecs_message(fields: Value) -> Value {
    json!({"Records": [{"ecsevent": {"ecsevent": fields}}]})
}

async fn process(body: &str) -> Outcome {
    let router = InfraEventsRouter::new(SINK.to_owned());
    let payload = Payload {
        body: body.to_owned(),
        origin: "body".to_owned(),
    };
    router.process(&payload, &MessageContext::default()).await
}

fn outputs(outcome: Outcome) -> Vec<Output> {
    match outcome {
        Outcome::Ok(outputs) => outputs,
        other => panic!("expected outputs, got {other:?}"),
    }
}

fn attribute<'a>(output: &'a Output, key: &str) -> &'a str {
    output
        .record
        .attributes
        .get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("attribute {key} missing from {output:?}"))
}

/// The body with its timestamp checked and taken out, so the rest compares exactly.
fn body_without_timestamp(output: &Output, sent_between: (i64, i64)) -> String {
    let body: Value = serde_json::from_str(&output.record.body).unwrap();
    let timestamp = body["timestampMillis"].as_i64().unwrap();
    assert!(
        (sent_between.0..=sent_between.1).contains(&timestamp),
        "timestampMillis {timestamp} is the time of sending"
    );
    output
        .record
        .body
        .replacen(&format!("{{\"timestampMillis\":{timestamp},"), "{", 1)
}

/// The `Records[0].Sns.Message` text of an SNS-wrapped fixture.
fn sns_message_of(fixture: &str) -> String {
    let wrapped: Value = serde_json::from_str(fixture).unwrap();
    wrapped["Records"][0]["Sns"]["Message"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The bodies (with the fixed NOW) and `name` attributes a body produces.
fn events_of(body: &str) -> Vec<(String, &'static str)> {
    participant_events(body, NOW)
        .unwrap()
        .iter()
        .map(|e| (e.body().unwrap(), e.kind().event_name()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The original's acceptance scenarios.

/// RecorderStartedEventsAcceptanceTest.start_recorder_and_an_event_should_flow_to_the_sqs_queue
#[tokio::test]
async fn recorder_started_s3_event_flows_to_the_sink_as_recorder_started() {
    let (challenge, participant) = (random_id(), random_id());
    let body = sns_wrapped(&s3_message(
        &s3_put_event_json(&challenge, &participant),
        &challenge,
        &participant,
    ));
    let before = now();
    let outputs = outputs(process(&body).await);
    let after = now();

    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].sink, SINK);
    assert_eq!(attribute(&outputs[0], "name"), "recorderStarted");
    assert_eq!(attribute(&outputs[0], "version"), "0.2");
    assert_eq!(outputs[0].record.attributes.len(), 2);
    assert_eq!(
        body_without_timestamp(&outputs[0], (before, after)),
        format!(r#"{{"participant":"{participant}","challengeId":"{challenge}"}}"#)
    );
}

/// RecorderStartedEventsAcceptanceTest.an_unsupported_s3_event_should_not_flow_to_the_sqs_queue
#[tokio::test]
async fn unsupported_s3_event_is_refused_with_the_original_sentence() {
    let body = sns_wrapped(&s3_message(
        "Some random non-s3 event",
        &random_id(),
        &random_id(),
    ));
    assert_eq!(
        process(&body).await,
        Outcome::Permanent(UNIDENTIFIED_EVENT.to_owned())
    );
}

/// VideoProcessingFailedEventsAcceptanceTest.when_video_processing_fails_in_a_container_an_event_should_flow_to_the_sqs_queue
#[tokio::test]
async fn failed_video_processing_task_flows_as_video_processing_failed() {
    let (challenge, participant) = (random_id(), random_id());
    let body = sns_wrapped(&ecs_message(json!({
        "eventJson": ecs_video_task_json(), "challengeId": challenge,
        "participantId": participant, "errorMessage": "Essential container in task exited"})));
    let before = now();
    let outputs = outputs(process(&body).await);
    let after = now();

    assert_eq!(outputs.len(), 1);
    assert_eq!(attribute(&outputs[0], "name"), "videoProcessingFailed");
    assert_eq!(attribute(&outputs[0], "version"), "0.2");
    assert_eq!(
        body_without_timestamp(&outputs[0], (before, after)),
        format!(
            r#"{{"participant":"{participant}","challengeId":"{challenge}","errorMessage":"Essential container in task exited"}}"#
        )
    );
}

/// VideoProcessingFailedEventsAcceptanceTest.an_unsupported_ecs_event_should_not_flow_to_the_sqs_queue
#[tokio::test]
async fn unsupported_ecs_event_for_video_is_refused_with_the_original_sentence() {
    let body = sns_wrapped(&ecs_message(json!({
        "eventJson": "Some random non-ecs event", "challengeId": random_id(),
        "participantId": random_id(), "errorMessage": "Essential container in task exited"})));
    assert_eq!(
        process(&body).await,
        Outcome::Permanent(UNIDENTIFIED_EVENT.to_owned())
    );
}

/// CoverageFailedEventsAcceptanceTest.when_coverage_processing_fails_in_a_container_an_event_should_flow_to_the_sqs_queue
#[tokio::test]
async fn failed_coverage_processing_task_flows_as_coverage_processing_failed() {
    let (round, participant) = (random_id(), random_id());
    let body = sns_wrapped(&ecs_message(json!({
        "eventJson": ecs_coverage_task_json(), "roundId": round,
        "participantId": participant, "errorMessage": ""})));
    let before = now();
    let outputs = outputs(process(&body).await);
    let after = now();

    assert_eq!(outputs.len(), 1);
    assert_eq!(attribute(&outputs[0], "name"), "coverageProcessingFailed");
    assert_eq!(attribute(&outputs[0], "version"), "0.2");
    assert_eq!(
        body_without_timestamp(&outputs[0], (before, after)),
        format!(r#"{{"participant":"{participant}","roundId":"{round}","errorMessage":""}}"#)
    );
}

/// CoverageFailedEventsAcceptanceTest.an_unsupported_ecs_event_should_not_flow_to_the_sqs_queue
#[tokio::test]
async fn unsupported_ecs_event_for_coverage_is_refused_with_the_original_sentence() {
    let body = sns_wrapped(&ecs_message(json!({
        "eventJson": "Some random non-ecs event", "roundId": random_id(),
        "participantId": random_id(), "errorMessage": ""})));
    assert_eq!(
        process(&body).await,
        Outcome::Permanent(UNIDENTIFIED_EVENT.to_owned())
    );
}

// ---------------------------------------------------------------------------------------------
// The original's fixtures.

#[test]
fn recorder_started_fixture_becomes_the_readme_event() {
    assert_eq!(
        events_of(RECORDER_STARTED),
        vec![(
            format!(
                r#"{{"timestampMillis":{NOW},"participant":"11684e961893422dbf9a33679bca3b53","challengeId":"6dc0aeeed0404241abc1709377e23531"}}"#
            ),
            "recorderStarted"
        )]
    );
}

#[test]
fn seed_video_fixture_without_error_message_becomes_video_processing_failed_with_empty_message() {
    assert_eq!(
        events_of(VIDEO_FAILED_SEED),
        vec![(
            format!(
                r#"{{"timestampMillis":{NOW},"participant":"46ff08a1a9294fcd933d0c2c063c743d","challengeId":"141873a7aa854caa84aac3e98af72696","errorMessage":""}}"#
            ),
            "videoProcessingFailed"
        )]
    );
}

#[test]
fn final_video_fixture_with_single_nesting_becomes_video_processing_failed() {
    assert_eq!(
        events_of(VIDEO_FAILED_FINAL),
        vec![(
            format!(
                r#"{{"timestampMillis":{NOW},"participant":"82862935a43c4caeb9ed8f4c2622c493","challengeId":"b15ae3afc97f4980873159810ae18de2","errorMessage":"Essential container in task exited"}}"#
            ),
            "videoProcessingFailed"
        )]
    );
}

#[test]
fn seed_coverage_fixture_becomes_the_readme_event() {
    assert_eq!(
        events_of(COVERAGE_FAILED_SEED),
        vec![(
            format!(
                r#"{{"timestampMillis":{NOW},"participant":"6ad13e27e20749f798fcd7a7459533f2","roundId":"e592e3145a6442ad89147bdd7c2dcfef","errorMessage":""}}"#
            ),
            "coverageProcessingFailed"
        )]
    );
}

#[test]
fn final_coverage_fixture_with_single_nesting_becomes_coverage_processing_failed() {
    assert_eq!(
        events_of(COVERAGE_FAILED_FINAL),
        vec![(
            format!(
                r#"{{"timestampMillis":{NOW},"participant":"36179355d0a74691ac3869320e9a9da2","roundId":"f1ec1da635ed422280970a2260eba0e7","errorMessage":""}}"#
            ),
            "coverageProcessingFailed"
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Nestings and optional fields.

#[test]
fn both_ecs_nestings_give_the_same_event() {
    let fields = json!({"eventJson": ecs_video_task_json(), "challengeId": "c",
        "participantId": "p", "errorMessage": "boom"});
    let double = sns_wrapped(&json!({"Records": [{"ecsevent": {"ecsevent": fields.clone()}}]}));
    let single = sns_wrapped(&json!({"Records": [{"ecsevent": fields}]}));
    assert_eq!(events_of(&double), events_of(&single));
    assert_eq!(events_of(&single)[0].1, "videoProcessingFailed");
}

#[test]
fn missing_or_null_error_message_is_empty() {
    for error_message in [None, Some(Value::Null)] {
        let mut fields = json!({"eventJson": ecs_coverage_task_json(), "roundId": "r",
            "participantId": "p"});
        if let Some(value) = error_message {
            fields["errorMessage"] = value;
        }
        let body = sns_wrapped(&json!({"Records": [{"ecsevent": fields}]}));
        assert_eq!(
            events_of(&body)[0].0,
            format!(
                r#"{{"timestampMillis":{NOW},"participant":"p","roundId":"r","errorMessage":""}}"#
            )
        );
    }
}

#[test]
fn missing_participant_id_is_refused_naming_the_field() {
    let body = sns_wrapped(&json!({"Records": [{"s3": {"s3event": {
        "eventJson": s3_put_event_json("c", "p"), "challengeId": "c"}}}]}));
    let error = participant_events(&body, NOW).unwrap_err().to_string();
    assert!(
        error
            .starts_with("Records[0].Sns.Message > Records[0].s3.s3event.participantId: not found"),
        "{error}"
    );
}

#[test]
fn non_string_round_id_is_refused_naming_the_field() {
    let body = json!({"Records": [{"ecsevent": {"eventJson": ecs_coverage_task_json(),
        "roundId": 7, "participantId": "p"}}]})
    .to_string();
    let error = participant_events(&body, NOW).unwrap_err().to_string();
    assert!(
        error.starts_with("Records[0].ecsevent.roundId: must be a string"),
        "{error}"
    );
}

#[test]
fn s3_marker_in_an_ecs_record_classifies_it_as_recorder_started_as_the_original_did() {
    // The original tested markers in order on the raw text; the S3 marker wins, and an ECS
    // record has no `s3` fields, so it is refused rather than sent as the wrong event.
    let body = json!({"Records": [{"ecsevent": {"eventJson": ecs_video_task_json(),
        "challengeId": "c", "participantId": "p", "errorMessage": "upload to aws:s3 failed"}}]})
    .to_string();
    let error = participant_events(&body, NOW).unwrap_err().to_string();
    assert!(error.starts_with("Records[0].s3: not found"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Shapes: every record, SNS delivery to a queue (raw or not), plain bodies.

#[test]
fn every_sns_record_of_a_lambda_event_becomes_an_event_in_order() {
    let s3 = s3_message(&s3_put_event_json("c1", "p1"), "c1", "p1");
    let video = ecs_message(
        json!({"eventJson": ecs_video_task_json(), "challengeId": "c2",
        "participantId": "p2", "errorMessage": "e2"}),
    );
    let coverage = json!({"Records": [{"ecsevent": {"eventJson": ecs_coverage_task_json(),
        "roundId": "r3", "participantId": "p3", "errorMessage": "e3"}}]});
    let names: Vec<&str> = events_of(&sns_wrapped_all(&[&s3, &video, &coverage]))
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert_eq!(
        names,
        [
            "recorderStarted",
            "videoProcessingFailed",
            "coverageProcessingFailed"
        ]
    );
}

#[test]
fn every_record_of_a_message_becomes_an_event_in_order() {
    let message = json!({"Records": [
        {"s3": {"s3event": {"eventJson": s3_put_event_json("c1", "p1"), "challengeId": "c1", "participantId": "p1"}}},
        {"s3": {"s3event": {"eventJson": s3_put_event_json("c2", "p2"), "challengeId": "c2", "participantId": "p2"}}},
    ]});
    let events = events_of(&sns_wrapped(&message));
    assert_eq!(events.len(), 2);
    assert!(events[0].0.contains(r#""participant":"p1""#));
    assert!(events[1].0.contains(r#""participant":"p2""#));
}

#[tokio::test]
async fn one_unidentified_record_fails_the_whole_payload_naming_the_record() {
    let good = s3_message(&s3_put_event_json("c", "p"), "c", "p");
    let junk = ecs_message(json!({"eventJson": "junk", "roundId": "r", "participantId": "p"}));
    let body = sns_wrapped_all(&[&good, &junk]);
    assert_eq!(
        process(&body).await,
        Outcome::Permanent(format!(
            "Records[1].Sns.Message > Records[0]: {UNIDENTIFIED_EVENT}"
        ))
    );
}

#[test]
fn sns_notification_json_from_a_queue_without_raw_delivery_is_handled() {
    let message = sns_message_of(RECORDER_STARTED);
    let notification = json!({"Type": "Notification",
        "MessageId": "6a1c8f1e-0000-0000-0000-000000000000",
        "TopicArn": "arn:aws:sns:eu-west-2:123456789012:infra-events",
        "Message": message, "Timestamp": "2019-01-11T21:07:26.000Z",
        "SignatureVersion": "1"})
    .to_string();
    assert_eq!(events_of(&notification), events_of(RECORDER_STARTED));
}

#[test]
fn raw_delivery_body_is_the_message_itself() {
    let raw = sns_message_of(COVERAGE_FAILED_FINAL);
    assert_eq!(events_of(&raw), events_of(COVERAGE_FAILED_FINAL));
}

#[test]
fn a_bare_record_is_handled_as_a_message_of_one_record() {
    let record = json!({"ecsevent": {"eventJson": ecs_video_task_json(), "challengeId": "c",
        "participantId": "p"}})
    .to_string();
    assert_eq!(
        events_of(&record),
        vec![(
            format!(
                r#"{{"timestampMillis":{NOW},"participant":"p","challengeId":"c","errorMessage":""}}"#
            ),
            "videoProcessingFailed"
        )]
    );
}

#[test]
fn empty_or_missing_records_are_unidentified_as_in_the_original() {
    for body in [
        "{}".to_owned(),
        r#"{"Records":[]}"#.to_owned(),
        sns_wrapped(&json!({"Records": []})),
        sns_wrapped(&json!({"unrelated": true})),
        "not json at all".to_owned(),
    ] {
        assert_eq!(
            participant_events(&body, NOW).unwrap_err().to_string(),
            UNIDENTIFIED_EVENT,
            "{body}"
        );
    }
}

#[test]
fn a_message_with_markers_that_is_not_json_is_refused_as_not_json() {
    let body = json!({"Records": [{"Sns": {"Message": "aws:s3 {"}}]}).to_string();
    let error = participant_events(&body, NOW).unwrap_err().to_string();
    assert!(
        error.starts_with("Records[0].Sns.Message: not JSON"),
        "{error}"
    );
}

#[test]
fn an_sns_record_without_message_is_refused_naming_the_key() {
    let body = json!({"Records": [{"Sns": {"Subject": "x"}}]}).to_string();
    let error = participant_events(&body, NOW).unwrap_err().to_string();
    assert!(
        error.starts_with(r#"Records[0].Sns: key "Message" not found"#),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration and the shipped example.

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn example_spec() -> PipelineSpec {
    let documents = manifest::load_file(&examples_dir().join("infra-events.yaml")).unwrap();
    match &documents[0].outcome {
        manifest::Outcome::Valid(WharfResource::Pipeline(pipeline)) => pipeline.spec.clone(),
        other => panic!("examples/infra-events.yaml is not a valid Pipeline: {other:?}"),
    }
}

#[tokio::test]
async fn example_pipeline_routes_its_sample_events_to_its_sink() {
    let spec = example_spec();
    let sink = spec.processor.infra_events.as_ref().unwrap().sink.clone();
    assert!(
        spec.sinks.iter().any(|s| s.name == sink),
        "the example's sink `{sink}` is declared in spec.sinks"
    );
    let processor = build(&spec).unwrap();
    assert_eq!(processor.kind(), wharf_crds::ProcessorKind::InfraEvents);

    let expected = [
        ("recorder-started.json", Some("recorderStarted")),
        (
            "video-processing-failed.json",
            Some("videoProcessingFailed"),
        ),
        (
            "coverage-processing-failed.json",
            Some("coverageProcessingFailed"),
        ),
        ("unidentified.json", None),
    ];
    let samples = examples_dir().join("events/infra-events");
    let mut found: Vec<String> = std::fs::read_dir(&samples)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut listed: Vec<String> = expected.iter().map(|(f, _)| (*f).to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed, "every sample event is checked here");

    for (file, name) in expected {
        let body = std::fs::read_to_string(samples.join(file)).unwrap();
        let payload = Payload {
            body,
            origin: "body".to_owned(),
        };
        let outcome = processor
            .process(&payload, &MessageContext::default())
            .await;
        match name {
            Some(name) => {
                let outputs = outputs(outcome);
                assert_eq!(outputs.len(), 1, "{file}");
                assert_eq!(outputs[0].sink, sink, "{file}");
                assert_eq!(attribute(&outputs[0], "name"), name, "{file}");
            }
            None => assert_eq!(
                outcome,
                Outcome::Permanent(UNIDENTIFIED_EVENT.to_owned()),
                "{file}"
            ),
        }
    }
}

#[tokio::test]
async fn processed_payloads_are_counted_by_event_name_and_unidentified() {
    let router = InfraEventsRouter::new(SINK.to_owned());
    let junk = sns_wrapped(&s3_message("junk", "c", "p"));
    let incomplete =
        sns_wrapped(&json!({"Records": [{"s3": {"s3event": {"eventJson": "aws:s3"}}}]}));
    for body in [
        RECORDER_STARTED,
        VIDEO_FAILED_SEED,
        RECORDER_STARTED,
        &junk,
        &incomplete,
    ] {
        let payload = Payload {
            body: body.to_owned(),
            origin: "body".to_owned(),
        };
        router.process(&payload, &MessageContext::default()).await;
    }
    let mut registry = prometheus_client::registry::Registry::default();
    router.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        r#"wharf_infra_events_classified_total{name="recorderStarted"} 2"#,
        r#"wharf_infra_events_classified_total{name="videoProcessingFailed"} 1"#,
        r#"wharf_infra_events_classified_total{name="unidentified"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[test]
fn building_without_an_infra_events_processor_is_refused() {
    let spec: PipelineSpec = serde_json::from_value(json!({
        "source": {"sqs": {"queueUrl": "https://sqs.local/000000000000/in"}},
        "processor": {"telemetry": {"sink": "out"}},
        "sinks": [{"name": "out", "kinesis": {"streamName": "out"}}],
    }))
    .unwrap();
    assert!(matches!(build(&spec), Err(BuildError::NoProcessor)));
}
