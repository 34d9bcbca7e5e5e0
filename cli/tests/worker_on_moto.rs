//! The telemetry pipeline end to end: real `wharf worker` processes against moto's SQS and
//! Kinesis through the AWS SDK — exact records, dead letters with reasons, the same results on
//! the embedded backend, and nothing lost when a worker is killed, drained or cut off from the
//! emulator for a while.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use serde_json::Value;
use wharf_crds::pipeline::Envelope;
use wharf_tests::moto::{Moto, create_telemetry_resources, send_bodies, stream_records};
use wharf_tests::process::follow_test_process;
use wharf_tests::{unique_name, workspace_root};
use wharf_workers::io::Backend;
use wharf_workers::io::aws::AwsBackend;
use wharf_workers::processing::process_body;
use wharf_workers::processors::{self, MessageContext, Outcome};

const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// (partition key, record data as JSON) with how many times each is expected or was seen.
type RecordCounts = BTreeMap<(String, String), usize>;

struct Fixture {
    config: SdkConfig,
    source_url: String,
    dead_letter_url: String,
    stream: String,
    dir: tempfile::TempDir,
    pipeline_file: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Fixture {
    async fn new(moto: &Moto) -> Self {
        let config = moto.sdk_config().await;
        let name = unique_name("telemetry");
        let resources = create_telemetry_resources(&config, &name, 2).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pipeline_file = dir.path().join("pipeline.yaml");
        let manifest = format!(
            "apiVersion: wharf.dev/v1alpha1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    sqs:
      queueUrl: {source}
      batchSize: 10
      waitTimeSeconds: 1
      visibilityTimeoutSeconds: 5
  processor:
    telemetry:
      sink: events
  sinks:
    - name: events
      kinesis:
        streamName: {name}
  deadLetter:
    sqs:
      queueUrl: {dead}
  retry:
    maxAttempts: 5
    initialBackoffSeconds: 1
    maxBackoffSeconds: 2
  worker:
    concurrency: 8
    maxProcessingSeconds: 5
  aws:
    region: us-east-1
    endpointUrl: {endpoint}
",
            source = resources.source_url,
            dead = resources.dead_letter_url,
            endpoint = moto.endpoint,
        );
        std::fs::write(&pipeline_file, manifest).expect("writing the pipeline");
        Self {
            config,
            source_url: resources.source_url,
            dead_letter_url: resources.dead_letter_url,
            stream: resources.stream,
            dir,
            pipeline_file,
            env: moto.env(),
        }
    }

    async fn send(&self, bodies: &[String]) {
        send_bodies(&self.config, &self.source_url, bodies).await;
    }

    /// Starts `wharf worker` on this pipeline; its log goes to `log_name` in the temp dir.
    fn start_worker(&self, log_name: &str) -> Child {
        let log = std::fs::File::create(self.dir.path().join(log_name)).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["worker", "--pipeline"])
            .arg(&self.pipeline_file)
            .args(["--metrics-port", "0", "--log-format", "json"])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("wharf worker starts");
        follow_test_process(&child);
        child
    }

    fn log(&self, log_name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(log_name)).unwrap_or_default()
    }

    async fn records(&self) -> RecordCounts {
        count(
            stream_records(&self.config, &self.stream)
                .await
                .into_iter()
                .map(|(key, data)| (key, String::from_utf8(data).expect("UTF-8 records"))),
        )
    }

    async fn dead_letters(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let received = sqs
            .receive_message()
            .queue_url(&self.dead_letter_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(0)
            .send()
            .await
            .expect("ReceiveMessage");
        received.messages.unwrap_or_default()
    }

    /// Waits until the source is empty (nothing visible or in flight) and `records` holds
    /// every expected record at least as often as expected.
    async fn wait_for_completion(&self, expected: &RecordCounts, worker_log: &str) {
        let backend = AwsBackend::new(&self.config);
        let source = backend.queue(&self.source_url);
        let started = Instant::now();
        loop {
            let depth = source.depth().await.ok();
            let records = self.records().await;
            let complete = expected
                .iter()
                .all(|(record, n)| records.get(record).is_some_and(|seen| seen >= n));
            if complete && depth.is_some_and(|d| d.visible == 0 && d.in_flight == 0) {
                return;
            }
            assert!(
                started.elapsed() < WAIT_LIMIT,
                "not complete after {WAIT_LIMIT:?}: depth {depth:?}, {} of {} records; worker log:\n{}",
                records.len(),
                expected.len(),
                self.log(worker_log)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Counts records by partition key and content. Each record gets a fresh `event_id` and the
/// time it was processed, which differ from run to run; they are checked for presence and
/// left out of the comparison.
fn count(records: impl IntoIterator<Item = (String, String)>) -> RecordCounts {
    let mut counts = RecordCounts::new();
    for (key, data) in records {
        let mut record: Value = serde_json::from_str(&data).expect("records are JSON");
        let object = record.as_object_mut().expect("records are JSON objects");
        for stamp in ["event_id", "time_processed"] {
            assert!(
                object.remove(stamp).is_some_and(|v| v.is_string()),
                "record without {stamp}: {data}"
            );
        }
        *counts.entry((key, record.to_string())).or_default() += 1;
    }
    counts
}

/// Every record in the stream has its own event id.
async fn assert_event_ids_unique(config: &SdkConfig, stream: &str) {
    let records = stream_records(config, stream).await;
    let mut ids = std::collections::BTreeSet::new();
    for (_, data) in &records {
        let record: Value = serde_json::from_slice(data).expect("records are JSON");
        let id = record["event_id"].as_str().expect("an event_id").to_owned();
        assert!(ids.insert(id.clone()), "event_id {id} appears twice");
    }
}

/// The example's sample submissions: 20 valid, 1 invalid.
fn sample_submissions() -> Vec<String> {
    let path = workspace_root().join("examples/events/telemetry/submissions.jsonl");
    std::fs::read_to_string(&path)
        .expect("the sample submissions")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// What the telemetry processor makes of `bodies`, run in process without any I/O.
async fn expected_records(pipeline_file: &Path, bodies: &[String]) -> (RecordCounts, usize) {
    let text = std::fs::read_to_string(pipeline_file).expect("the pipeline file");
    let pipeline: wharf_crds::Pipeline = serde_saphyr::from_str(&text).expect("a Pipeline");
    let processor = processors::build(&pipeline.spec, None).expect("the telemetry processor");
    let mut records = Vec::new();
    let mut invalid = 0;
    for body in bodies {
        let context = MessageContext::default();
        match process_body(processor.as_ref(), body, Envelope::Auto, &context)
            .await
            .outcome
        {
            Outcome::Ok(outputs) => records.extend(outputs.into_iter().map(|o| {
                (
                    o.record
                        .partition_key
                        .expect("telemetry sets partition keys"),
                    o.record.body,
                )
            })),
            _ => invalid += 1,
        }
    }
    (count(records), invalid)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} failed");
}

fn wait_with_limit(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "the worker did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` submissions: the valid samples over and over.
async fn many_submissions(pipeline_file: &Path, n: usize) -> Vec<String> {
    let mut valid = Vec::new();
    for submission in sample_submissions() {
        let (_, invalid) = expected_records(pipeline_file, std::slice::from_ref(&submission)).await;
        if invalid == 0 {
            valid.push(submission);
        }
    }
    valid.iter().cycle().take(n).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_in_sqs_become_exactly_the_expected_kinesis_records() {
    let moto = Moto::shared();
    let fixture = Fixture::new(moto).await;
    let submissions = sample_submissions();
    let (expected, invalid) = expected_records(&fixture.pipeline_file, &submissions).await;
    assert_eq!(invalid, 1, "the samples hold one invalid submission");
    assert!(expected.values().sum::<usize>() > submissions.len());
    fixture.send(&submissions).await;

    let mut worker = fixture.start_worker("worker.log");
    fixture.wait_for_completion(&expected, "worker.log").await;
    let records = fixture.records().await;
    assert_eq!(records, expected, "exactly the expected records, each once");
    assert_event_ids_unique(&fixture.config, &fixture.stream).await;
    let dead = fixture.dead_letters().await;
    assert_eq!(dead.len(), 1, "the invalid submission is dead-lettered");
    let reason = dead[0]
        .message_attributes()
        .and_then(|a| a.get("wharf-failure-reason"))
        .and_then(|v| v.string_value())
        .unwrap_or_default()
        .to_owned();
    assert!(!reason.is_empty(), "the dead letter carries its reason");

    signal(&worker, "TERM");
    let status = wait_with_limit(&mut worker, Duration::from_secs(30));
    assert!(
        status.success(),
        "SIGTERM exits 0, got {status}; log:\n{}",
        fixture.log("worker.log")
    );

    // The same pipeline and messages on the embedded backend give the same records.
    let out = fixture.dir.path().join("embedded");
    let run = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["run", "--backend", "embedded", "--output", "json", "-f"])
        .arg(&fixture.pipeline_file)
        .arg("--events")
        .arg(workspace_root().join("examples/events/telemetry/submissions.jsonl"))
        .arg("--output-dir")
        .arg(&out)
        .output()
        .expect("wharf run");
    assert!(
        run.status.success(),
        "wharf run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: Value = serde_json::from_slice(&run.stdout).expect("a JSON summary");
    assert_eq!(summary["deadLettered"], 1);
    let embedded = std::fs::read_to_string(out.join("events.jsonl")).expect("events.jsonl");
    let embedded = count(embedded.lines().map(|line| {
        let record: Value = serde_json::from_str(line).expect("a JSON line");
        (
            record["partitionKey"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            record["data"].to_string(),
        )
    }));
    assert!(
        embedded.values().sum::<usize>() > 0,
        "the embedded run wrote records"
    );
    assert_eq!(
        embedded, expected,
        "the embedded backend gives the same records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_nothing() {
    let moto = Moto::shared();
    let fixture = Fixture::new(moto).await;
    let submissions = many_submissions(&fixture.pipeline_file, 300).await;
    let (expected, _) = expected_records(&fixture.pipeline_file, &submissions).await;
    fixture.send(&submissions).await;

    let mut first = fixture.start_worker("first.log");
    let started = Instant::now();
    loop {
        let seen: usize = fixture.records().await.values().sum();
        if seen > 0 {
            break;
        }
        assert!(
            started.elapsed() < WAIT_LIMIT,
            "no records from the first worker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&first, "KILL");
    let _ = wait_with_limit(&mut first, Duration::from_secs(10));
    let after_kill: usize = fixture.records().await.values().sum();
    let total: usize = expected.values().sum();
    assert!(
        after_kill < total,
        "the kill must land mid-run ({after_kill} of {total} records were already out)"
    );

    // Whatever the killed worker held comes back after its visibility timeout.
    let mut second = fixture.start_worker("second.log");
    fixture.wait_for_completion(&expected, "second.log").await;
    signal(&second, "TERM");
    assert!(wait_with_limit(&mut second, Duration::from_secs(30)).success());
    let records = fixture.records().await;
    let missing: Vec<_> = expected
        .iter()
        .filter(|(record, n)| records.get(*record).is_none_or(|seen| seen < *n))
        .collect();
    assert!(missing.is_empty(), "records lost: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_work_and_exits_zero_with_nothing_lost() {
    let moto = Moto::shared();
    let fixture = Fixture::new(moto).await;
    let submissions = many_submissions(&fixture.pipeline_file, 300).await;
    let (expected, _) = expected_records(&fixture.pipeline_file, &submissions).await;
    fixture.send(&submissions).await;

    let mut first = fixture.start_worker("first.log");
    let started = Instant::now();
    while fixture.records().await.is_empty() {
        assert!(started.elapsed() < WAIT_LIMIT, "no records from the worker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&first, "TERM");
    let status = wait_with_limit(&mut first, Duration::from_secs(30));
    assert!(
        status.success(),
        "SIGTERM exits 0, got {status}; log:\n{}",
        fixture.log("first.log")
    );
    let log = fixture.log("first.log");
    assert!(
        log.contains("drained"),
        "the worker reports its drain:\n{log}"
    );

    let mut second = fixture.start_worker("second.log");
    fixture.wait_for_completion(&expected, "second.log").await;
    signal(&second, "TERM");
    assert!(wait_with_limit(&mut second, Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_rides_out_a_paused_emulator_and_loses_nothing() {
    // A server of its own: pausing the shared one would stall the other tests.
    let moto = Moto::start();
    let fixture = Fixture::new(&moto).await;
    let submissions = many_submissions(&fixture.pipeline_file, 100).await;
    let (expected, _) = expected_records(&fixture.pipeline_file, &submissions).await;

    let mut worker = fixture.start_worker("worker.log");
    fixture.send(&submissions[..50]).await;
    moto.pause();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        worker.try_wait().expect("try_wait").is_none(),
        "the worker must keep running while the emulator is away; log:\n{}",
        fixture.log("worker.log")
    );
    moto.resume();
    fixture.send(&submissions[50..]).await;
    fixture.wait_for_completion(&expected, "worker.log").await;
    signal(&worker, "TERM");
    assert!(wait_with_limit(&mut worker, Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wharf_run_against_the_emulator_gives_the_same_records_as_a_worker() {
    let moto = Moto::shared();
    let fixture = Fixture::new(moto).await;
    let submissions = sample_submissions();
    let (expected, invalid) = expected_records(&fixture.pipeline_file, &submissions).await;

    // The Pipeline's aws.endpointUrl points at moto, so `wharf run` uses the AWS SDK backend;
    // it seeds the real queue and stops once it has been idle for two seconds.
    let run = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["run", "--output", "json", "--until-idle", "2", "-f"])
        .arg(&fixture.pipeline_file)
        .arg("--events")
        .arg(workspace_root().join("examples/events/telemetry/submissions.jsonl"))
        .envs(fixture.env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("wharf run");
    assert!(
        run.status.success(),
        "wharf run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: Value = serde_json::from_slice(&run.stdout).expect("a JSON summary");
    assert_eq!(summary["backend"], "aws");
    assert_eq!(summary["seeded"], submissions.len());
    assert_eq!(summary["deadLettered"], invalid);
    assert_eq!(fixture.records().await, expected);
    assert_eq!(fixture.dead_letters().await.len(), invalid);
}
