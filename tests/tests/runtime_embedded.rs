//! The message contract, proven on the embedded backend: outputs land exactly once, poison goes
//! to the dead-letter queue with its reason, transient failures and panics are retried, a
//! partially failed stream batch retries only its failed entries, back-pressure holds, and a
//! drain finishes or releases what is in flight.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wharf_crds::PipelineSpec;
use wharf_tests::faults::ThrottlingBackend;
use wharf_tests::scripted::ScriptedProcessor;
use wharf_workers::io::memory::MemoryBackend;
use wharf_workers::io::{Backend, OutgoingMessage};
use wharf_workers::runtime::{
    DrainReport, FAILURE_REASON_ATTRIBUTE, RunningPipeline, RuntimeSettings, RuntimeStats,
    SOURCE_MESSAGE_ID_ATTRIBUTE, StatsSnapshot,
};

const SOURCE: &str = "https://sqs.local/000000000000/in";
const DEAD_LETTER: &str = "https://sqs.local/000000000000/in-dead";
const STREAM: &str = "out";
const RUN_LIMIT: Duration = Duration::from_secs(60);

struct Setup {
    memory: MemoryBackend,
    spec: PipelineSpec,
}

/// A pipeline from SOURCE to the stream, with a dead-letter queue unless `dead_letter` is false.
fn setup(dead_letter: bool, worker: serde_json::Value) -> Setup {
    let memory = MemoryBackend::new();
    memory.create_queue(SOURCE);
    memory.create_stream(STREAM, 2);
    let mut spec = json!({
        "source": {"sqs": {"queueUrl": SOURCE, "batchSize": 10, "waitTimeSeconds": 1,
                            "visibilityTimeoutSeconds": 2, "maxInFlight": 20}},
        "processor": {"telemetry": {"sink": "out"}},
        "sinks": [{"name": "out", "kinesis": {"streamName": STREAM}}],
        "retry": {"maxAttempts": 3, "initialBackoffSeconds": 1, "maxBackoffSeconds": 1},
        "worker": worker,
    });
    if dead_letter {
        memory.create_queue(DEAD_LETTER);
        spec["deadLetter"] = json!({"sqs": {"queueUrl": DEAD_LETTER}});
    }
    let spec = serde_json::from_value(spec).expect("the test spec deserialises");
    Setup { memory, spec }
}

fn send(memory: &MemoryBackend, bodies: impl IntoIterator<Item = String>) {
    for body in bodies {
        memory
            .send_message(
                SOURCE,
                OutgoingMessage {
                    body,
                    ..OutgoingMessage::default()
                },
            )
            .expect("the source queue takes the message");
    }
}

fn record_bodies(memory: &MemoryBackend) -> Vec<String> {
    memory
        .stream_records(STREAM)
        .into_iter()
        .map(|r| String::from_utf8(r.data).expect("scripted records are text"))
        .collect()
}

/// Runs the pipeline until `done` holds (or RUN_LIMIT passes), then drains it.
fn run_until(
    setup: &Setup,
    backend: Arc<dyn Backend>,
    grace: Duration,
    done: impl Fn(&MemoryBackend, &RunningPipeline) -> bool,
) -> (StatsSnapshot, DrainReport) {
    let system = actix::System::new();
    system.block_on(async {
        let settings = RuntimeSettings::from_spec("test", &setup.spec).expect("settings");
        let stats = RuntimeStats::default();
        let running = RunningPipeline::start(
            &setup.spec,
            settings,
            Arc::new(ScriptedProcessor::new("out")),
            backend,
            stats.clone(),
        )
        .expect("the runtime starts");
        let started = tokio::time::Instant::now();
        while !done(&setup.memory, &running) {
            assert!(
                started.elapsed() < RUN_LIMIT,
                "the run did not reach its end state within {RUN_LIMIT:?}: {:?}",
                stats.snapshot([STREAM])
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = running.drain(grace).await;
        (stats.snapshot(["out"]), report)
    })
}

fn source_is_empty(memory: &MemoryBackend) -> bool {
    memory.queue_messages(SOURCE).is_empty()
}

#[test]
fn every_output_lands_exactly_once_in_partition_order_and_the_queue_empties() {
    let setup = setup(true, json!({"concurrency": 4}));
    send(&setup.memory, (0..50).map(|i| format!("ok m{i} 3")));
    let backend: Arc<dyn Backend> = Arc::new(setup.memory.clone());
    let (stats, report) = run_until(&setup, backend, Duration::from_secs(5), |m, r| {
        source_is_empty(m) && r.held() == 0
    });

    assert_eq!(report, DrainReport::Finished);
    assert_eq!(stats.processed, 50);
    assert_eq!(stats.outputs.get("out"), Some(&150));
    let bodies = record_bodies(&setup.memory);
    let mut sorted = bodies.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 150, "every record exactly once");
    assert_eq!(bodies.len(), 150, "no record twice");
    for i in 0..50 {
        let of_message: Vec<&String> = bodies
            .iter()
            .filter(|b| b.starts_with(&format!("m{i}#")))
            .collect();
        let expected: Vec<String> = (0..3).map(|n| format!("m{i}#{n}")).collect();
        assert_eq!(
            of_message,
            expected.iter().collect::<Vec<_>>(),
            "order of m{i}"
        );
    }
    assert!(setup.memory.queue_messages(DEAD_LETTER).is_empty());
}

#[test]
fn a_poison_message_is_dead_lettered_with_its_reason_and_the_rest_are_processed() {
    let setup = setup(true, json!({}));
    send(&setup.memory, ["permanent p1".to_owned()]);
    send(&setup.memory, (0..5).map(|i| format!("ok g{i} 1")));
    let backend: Arc<dyn Backend> = Arc::new(setup.memory.clone());
    let (stats, _) = run_until(&setup, backend, Duration::from_secs(5), |m, r| {
        source_is_empty(m) && r.held() == 0
    });

    assert_eq!(stats.processed, 5);
    assert_eq!(stats.dead_lettered, 1);
    let dead = setup.memory.queue_messages(DEAD_LETTER);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "permanent p1", "the original body is kept");
    let reason = dead[0]
        .attributes
        .get(FAILURE_REASON_ATTRIBUTE)
        .expect("the reason attribute");
    assert!(reason.contains("p1 is poison"), "reason: {reason}");
    assert!(dead[0].attributes.contains_key(SOURCE_MESSAGE_ID_ATTRIBUTE));
    assert_eq!(record_bodies(&setup.memory).len(), 5);
}

#[test]
fn a_transient_failure_is_retried_through_visibility_and_then_succeeds() {
    let setup = setup(true, json!({}));
    send(&setup.memory, ["transient t1 2".to_owned()]);
    let backend: Arc<dyn Backend> = Arc::new(setup.memory.clone());
    let (stats, _) = run_until(&setup, backend, Duration::from_secs(5), |m, r| {
        source_is_empty(m) && r.held() == 0
    });

    assert_eq!(stats.failed, 1, "one transient failure");
    assert_eq!(stats.processed, 1);
    assert_eq!(stats.received, 2, "received again after the backoff");
    assert_eq!(record_bodies(&setup.memory), vec!["t1#0".to_owned()]);
    assert!(setup.memory.queue_messages(DEAD_LETTER).is_empty());
}

#[test]
fn a_panicking_processor_fails_only_that_message() {
    let setup = setup(true, json!({"concurrency": 2}));
    send(&setup.memory, ["panic x".to_owned()]);
    send(&setup.memory, (0..10).map(|i| format!("ok n{i} 1")));
    let backend: Arc<dyn Backend> = Arc::new(setup.memory.clone());
    let (stats, _) = run_until(&setup, backend, Duration::from_secs(5), |m, r| {
        source_is_empty(m) && r.held() == 0
    });

    assert_eq!(stats.processed, 10);
    assert_eq!(
        stats.dead_lettered, 1,
        "dead-lettered after retry.maxAttempts"
    );
    let dead = setup.memory.queue_messages(DEAD_LETTER);
    let reason = &dead[0].attributes[FAILURE_REASON_ATTRIBUTE];
    assert!(reason.contains("panicked"), "reason: {reason}");
    assert!(
        reason.contains("gave up after 3 attempts"),
        "reason: {reason}"
    );
}

#[test]
fn a_partially_failed_stream_batch_retries_only_its_failed_entries() {
    let setup = setup(true, json!({"concurrency": 8}));
    send(&setup.memory, (0..30).map(|i| format!("ok k{i} 5")));
    let throttling = Arc::new(ThrottlingBackend::new(Arc::new(setup.memory.clone()), 3));
    let backend: Arc<dyn Backend> = throttling.clone();
    let (stats, _) = run_until(&setup, backend, Duration::from_secs(5), |m, r| {
        source_is_empty(m) && r.held() == 0
    });

    assert_eq!(stats.processed, 30);
    let bodies = record_bodies(&setup.memory);
    let mut unique = bodies.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(bodies.len(), 150, "no record written twice");
    assert_eq!(unique.len(), 150, "no record lost");
    let stream = throttling
        .stream_named(STREAM)
        .expect("the runtime used the stream");
    assert!(
        stream.entries_failed() > 0,
        "the decorator injected failures"
    );
    assert_eq!(
        stream.entries_sent(),
        150 + stream.entries_failed(),
        "only the failed entries were sent again"
    );
}

#[test]
fn back_pressure_never_holds_more_than_max_in_flight_or_burns_receives() {
    let mut setup = setup(true, json!({"concurrency": 2}));
    if let Some(source) = setup.spec.source.sqs.as_mut() {
        source.max_in_flight = 2;
    }
    send(&setup.memory, (0..10).map(|i| format!("slow s{i} 200")));
    let backend: Arc<dyn Backend> = Arc::new(setup.memory.clone());
    let most_held = std::cell::Cell::new(0);
    let (stats, _) = run_until(&setup, backend, Duration::from_secs(5), |m, r| {
        most_held.set(most_held.get().max(r.held()));
        source_is_empty(m) && r.held() == 0
    });

    assert!(most_held.get() <= 2, "held {} at once", most_held.get());
    assert_eq!(stats.processed, 10);
    assert_eq!(stats.received, 10, "no message was received twice");
}

#[test]
fn a_drain_lets_in_flight_messages_finish() {
    let setup = setup(true, json!({"concurrency": 4}));
    send(&setup.memory, (0..4).map(|i| format!("slow d{i} 1500")));
    let backend: Arc<dyn Backend> = Arc::new(setup.memory.clone());
    let (stats, report) = run_until(&setup, backend, Duration::from_secs(20), |_, r| {
        r.processing() == 4
    });

    assert_eq!(report, DrainReport::Finished);
    assert_eq!(stats.processed, 4);
    assert!(source_is_empty(&setup.memory));
    assert_eq!(record_bodies(&setup.memory).len(), 4);
}

#[test]
fn a_drain_past_its_grace_period_releases_unfinished_messages_at_once() {
    let setup = setup(true, json!({"concurrency": 1}));
    send(&setup.memory, ["slow long 20000".to_owned()]);
    let backend: Arc<dyn Backend> = Arc::new(setup.memory.clone());
    let (stats, report) = run_until(&setup, backend, Duration::from_millis(300), |_, r| {
        r.processing() == 1
    });

    assert_eq!(report, DrainReport::Abandoned(1));
    assert_eq!(stats.processed, 0);
    let left = setup.memory.queue_messages(SOURCE);
    assert_eq!(left.len(), 1, "nothing lost");
    assert!(
        left[0].visible,
        "released at once, not after its visibility timeout"
    );
}

#[test]
fn without_a_dead_letter_sink_poison_is_left_to_the_queue_redrive_policy() {
    let setup = setup(false, json!({}));
    let redrive = "https://sqs.local/000000000000/in-redrive";
    setup.memory.create_queue(redrive);
    setup
        .memory
        .configure_redrive(SOURCE, redrive, 2)
        .expect("both queues exist");
    send(&setup.memory, ["permanent p2".to_owned()]);
    let backend: Arc<dyn Backend> = Arc::new(setup.memory.clone());
    let (stats, _) = run_until(&setup, backend, Duration::from_secs(5), |m, _| {
        !m.queue_messages(redrive).is_empty()
    });

    assert!(stats.left_for_redrive >= 1);
    assert_eq!(stats.dead_lettered, 0);
    let moved = setup.memory.queue_messages(redrive);
    assert_eq!(moved[0].body, "permanent p2");
    assert!(source_is_empty(&setup.memory));
}
