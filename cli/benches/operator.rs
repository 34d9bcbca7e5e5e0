//! Measurements of the operator on the real test control plane, printed rather than asserted
//! (a timing threshold would fail on a busy machine and prove nothing on a quiet one):
//!
//! ```text
//! cargo bench -p wharf --bench operator                       # everything
//! cargo bench -p wharf --bench operator -- scale-latency      # or: pipelines, autoscaled-pipelines
//! WHARF_OPERATOR_BIN=target/release/wharf cargo bench -p wharf --bench operator -- pipelines
//! ```
//!
//! Under `cargo test` (no `--bench` argument) every measurement runs once at a small size, so
//! the harness itself stays working.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use wharf_crds::Pipeline;
use wharf_operator::backends;
use wharf_tests::moto::Moto;
use wharf_tests::operator_support::{InProcessOperator, cluster_with_crds, eventually, namespace};
use wharf_tests::process::follow_test_process;
use wharf_tests::{KubeCluster, unique_name, workspace_root};

/// Poll interval of the autoscaled Pipelines in the scale-up measurement, unless
/// `WHARF_MEASURE_POLL_SECONDS` names another.
const POLL_INTERVAL_SECONDS: u64 = 1;

fn poll_interval_seconds() -> u64 {
    std::env::var("WHARF_MEASURE_POLL_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(POLL_INTERVAL_SECONDS)
}
/// How much each measurement does: the full sizes under `cargo bench`, small ones under
/// `cargo test`.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    scale_up_runs: usize,
    pipelines: usize,
    /// How long the operator's CPU use is sampled once everything has settled.
    cpu_window: Duration,
}

const FULL: Sizes = Sizes {
    scale_up_runs: 7,
    pipelines: 200,
    cpu_window: Duration::from_secs(20),
};

const SMOKE: Sizes = Sizes {
    scale_up_runs: 1,
    pipelines: 3,
    cpu_window: Duration::from_secs(1),
};

const MEASUREMENTS: [&str; 3] = ["scale-latency", "pipelines", "autoscaled-pipelines"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes = if args.iter().any(|a| a == "--bench") {
        FULL
    } else {
        SMOKE
    };
    let wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if let Some(unknown) = wanted.iter().find(|w| !MEASUREMENTS.contains(w)) {
        eprintln!(
            "unknown measurement {unknown:?}; choose from {}",
            MEASUREMENTS.join(", ")
        );
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for measurement in MEASUREMENTS {
        if !wanted.is_empty() && !wanted.contains(&measurement) {
            continue;
        }
        println!("== {measurement} ({sizes:?})");
        runtime.block_on(async {
            match measurement {
                "scale-latency" => measure_scale_up_latency_from_backlog_to_replicas(sizes).await,
                "pipelines" => measure_pipelines(sizes, false).await,
                _ => measure_pipelines(sizes, true).await,
            }
        });
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(what: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "{what}: n={} min={:?} median={:?} p95={:?} max={:?}",
        samples.len(),
        samples[0],
        percentile(&samples, 50.0),
        percentile(&samples, 95.0),
        samples[samples.len() - 1]
    )
}

/// A telemetry Pipeline on `queue_url`, autoscaled from `min_replicas`.
fn autoscaled_pipeline(name: &str, queue_url: &str, endpoint: &str, min_replicas: i32) -> Pipeline {
    serde_json::from_value(json!({
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {
            "source": {"sqs": {"queueUrl": queue_url}},
            "processor": {"telemetry": {"sink": "events"}},
            "sinks": [{"name": "events", "kinesis": {"streamName": "events"}}],
            "aws": {"region": "us-east-1", "endpointUrl": endpoint},
            "scaling": {
                "minReplicas": min_replicas, "maxReplicas": 5, "targetBacklogPerReplica": 10,
                "pollIntervalSeconds": poll_interval_seconds(),
                "scaleDownStabilizationSeconds": 60
            }
        }
    }))
    .expect("the Pipeline deserialises")
}

/// Time from 25 messages landing in an SQS queue (SendMessageBatch returned) to the worker
/// Deployment's spec.replicas changing, seen through a watch. The messages are sent `phase`
/// after the scaler loop's first report was seen.
async fn scale_up_latency(
    client: &Client,
    ns: &str,
    moto: &Moto,
    sqs: &aws_sdk_sqs::Client,
    min_replicas: i32,
    phase: Duration,
) -> Duration {
    let name = unique_name("scale");
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("a queue URL");
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), ns);
    pipelines
        .create(
            &PostParams::default(),
            &autoscaled_pipeline(&name, &queue_url, &moto.endpoint, min_replicas),
        )
        .await
        .expect("the Pipeline is accepted");
    // The scaler loop is running once it has reported an (empty) backlog.
    eventually(
        "the first backlog observation",
        Duration::from_secs(60),
        || {
            let pipelines = pipelines.clone();
            let name = name.clone();
            async move {
                let status = pipelines.get(&name).await.ok()?.status?;
                status.backlog.is_some().then_some(())
            }
        },
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let worker = format!("{name}-worker");
    let mut changes = watcher(
        deployments,
        watcher::Config::default().fields(&format!("metadata.name={worker}")),
    )
    .applied_objects()
    .boxed();
    // The watch has listed the Deployment at its starting size before messages are sent.
    loop {
        let deployment = changes
            .next()
            .await
            .expect("the watch stays open")
            .expect("the watch works");
        if deployment.spec.and_then(|s| s.replicas) == Some(min_replicas) {
            break;
        }
    }
    // Sending at a chosen point of the poll cycle, so that the runs together cover it.
    tokio::time::sleep(phase).await;
    for batch in 0..3 {
        let entries = (0..if batch < 2 { 10 } else { 5 }).map(|i| {
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(format!("{{\"n\":{i}}}"))
                .build()
                .expect("a batch entry")
        });
        sqs.send_message_batch()
            .queue_url(&queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .expect("SendMessageBatch");
    }
    let sent = Instant::now();
    let latency = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let deployment = changes
                .next()
                .await
                .expect("the watch stays open")
                .expect("the watch works");
            if deployment.spec.and_then(|s| s.replicas) != Some(min_replicas) {
                return sent.elapsed();
            }
        }
    })
    .await
    .expect("the Deployment scales within 60 s");
    pipelines
        .delete(&name, &Default::default())
        .await
        .expect("the Pipeline is deleted");
    latency
}

async fn measure_scale_up_latency_from_backlog_to_replicas(sizes: Sizes) {
    let client = cluster_with_crds().await;
    let ns = namespace(&client, "latency").await;
    let moto = Moto::shared();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let operator = InProcessOperator::start(&client, &ns, backends::aws(moto.overrides()));
    for min_replicas in [0, 1] {
        let mut samples = Vec::new();
        for run in 0..sizes.scale_up_runs {
            let phase = Duration::from_secs(poll_interval_seconds()) * run as u32
                / sizes.scale_up_runs as u32;
            samples.push(scale_up_latency(&client, &ns, moto, &sqs, min_replicas, phase).await);
        }
        println!(
            "{}",
            summary(
                &format!(
                    "backlog → spec.replicas, from {min_replicas} replicas, \
                     pollIntervalSeconds={}",
                    poll_interval_seconds()
                ),
                samples
            )
        );
    }
    operator.stop().await;
}

/// Peak and current resident memory of process `pid`, in kB, from /proc.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of process `pid` so far, in seconds, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    let output = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    let per_second: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK");
    ticks / per_second
}

/// `wharf operator` as its own process, watching `ns` of the test cluster.
fn start_operator_process(
    ns: &str,
    log: &std::path::Path,
    env: &[(&'static str, String)],
) -> Child {
    // A relative WHARF_OPERATOR_BIN is taken from the workspace root, not cli/ (where cargo
    // runs the test).
    let binary = std::env::var_os("WHARF_OPERATOR_BIN")
        .map(|path| workspace_root().join(path))
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_wharf").into());
    println!("operator binary: {}", binary.display());
    let child = Command::new(binary)
        .args(["operator", "--namespace", ns, "--no-leader-election"])
        .args(["--metrics-port", "0", "--log-format", "json"])
        .args(["--worker-image", "registry.local/wharf:test"])
        .env("KUBECONFIG", &KubeCluster::shared().kubeconfig)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("a log file"))
        .spawn()
        .expect("wharf operator starts");
    follow_test_process(&child);
    child
}

/// When each Pipeline's status first reached `generation`, from a watch.
fn record_observed(
    pipelines: Api<Pipeline>,
    generation: i64,
) -> (
    Arc<Mutex<HashMap<String, Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let record = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let mut stream = watcher(pipelines, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(pipeline)) = stream.next().await {
            let observed = pipeline.status.as_ref().and_then(|s| s.observed_generation);
            if observed == Some(generation) {
                let mut seen = record.lock().expect("lock");
                seen.entry(pipeline.name_any()).or_insert_with(Instant::now);
            }
        }
    });
    (seen, task)
}

async fn wait_for_all(seen: &Arc<Mutex<HashMap<String, Instant>>>, count: usize, what: &str) {
    eventually(what, Duration::from_secs(300), || {
        let n = seen.lock().expect("lock").len();
        async move { (n >= count).then_some(()) }
    })
    .await;
}

fn latencies(
    started: &HashMap<String, Instant>,
    seen: &Arc<Mutex<HashMap<String, Instant>>>,
) -> Vec<Duration> {
    let seen = seen.lock().expect("lock");
    started
        .iter()
        .map(|(name, at)| seen[name].saturating_duration_since(*at))
        .collect()
}

/// RSS of a `wharf operator` process and its reconcile latency (create or spec change to
/// status.observedGeneration) over `sizes.pipelines` Pipelines in one namespace; autoscaled,
/// each has a scaler loop polling its own moto queue every 5 s.
async fn measure_pipelines(sizes: Sizes, autoscaled: bool) {
    let pipelines_wanted = sizes.pipelines;
    let client = cluster_with_crds().await;
    let ns = namespace(&client, "bulk").await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("operator.log");
    let mut queue_urls = Vec::new();
    let mut env = Vec::new();
    let mut endpoint = String::new();
    if autoscaled {
        let moto = Moto::shared();
        endpoint.clone_from(&moto.endpoint);
        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
        for i in 0..pipelines_wanted {
            let created = sqs
                .create_queue()
                .queue_name(format!("{ns}-{i:03}"))
                .send()
                .await
                .expect("CreateQueue");
            queue_urls.push(created.queue_url.expect("a queue URL"));
        }
        env = moto.env();
    } else {
        queue_urls.extend(
            (0..pipelines_wanted)
                .map(|i| format!("https://sqs.eu-west-2.amazonaws.com/123456789012/{ns}-{i:03}")),
        );
    }
    let mut operator = start_operator_process(&ns, &log, &env);
    let pid = operator.id();
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);

    // Idle: the operator has listed the (empty) namespace.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle_rss, _) = memory_kb(pid);

    // Plain Pipelines run spec.replicas 0 and autoscaled ones minReplicas 0 on empty queues,
    // so the measurement is the operator's and not the controller-manager's (no kubelet
    // would run 200 pods here anyway).
    let pipeline = |name: &str, queue_url: &str| -> Pipeline {
        let mut spec = json!({
            "source": {"sqs": {"queueUrl": queue_url}},
            "processor": {"telemetry": {"sink": "events"}},
            "sinks": [{"name": "events", "kinesis": {"streamName": "events"}}],
            "replicas": 0
        });
        if autoscaled {
            spec["aws"] = json!({"region": "us-east-1", "endpointUrl": endpoint});
            spec["scaling"] = json!({"minReplicas": 0, "pollIntervalSeconds": 5});
        }
        serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": name},
            "spec": spec
        }))
        .expect("the Pipeline deserialises")
    };
    let (created_seen, created_watch) = record_observed(pipelines.clone(), 1);
    let mut created = HashMap::new();
    let creating = Instant::now();
    for (i, queue_url) in queue_urls.iter().enumerate() {
        let name = format!("p{i:03}");
        created.insert(name.clone(), Instant::now());
        pipelines
            .create(&PostParams::default(), &pipeline(&name, queue_url))
            .await
            .expect("the Pipeline is accepted");
    }
    let create_time = creating.elapsed();
    wait_for_all(
        &created_seen,
        pipelines_wanted,
        "every Pipeline's first status",
    )
    .await;
    let all_reconciled = creating.elapsed();
    created_watch.abort();
    let create_latencies = latencies(&created, &created_seen);

    let (updated_seen, updated_watch) = record_observed(pipelines.clone(), 2);
    let mut updated = HashMap::new();
    let updating = Instant::now();
    for i in 0..pipelines_wanted {
        let name = format!("p{i:03}");
        updated.insert(name.clone(), Instant::now());
        pipelines
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"worker": {"concurrency": 2}}})),
            )
            .await
            .expect("the Pipeline is updated");
    }
    wait_for_all(
        &updated_seen,
        pipelines_wanted,
        "every Pipeline's status after an update",
    )
    .await;
    let all_updated = updating.elapsed();
    updated_watch.abort();
    let update_latencies = latencies(&updated, &updated_seen);

    // Settled: nothing changes but the scaler loops' polls (when autoscaled).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let window = sizes.cpu_window;
    let cpu_before = cpu_seconds(pid);
    tokio::time::sleep(window).await;
    let cpu_share = (cpu_seconds(pid) - cpu_before) / window.as_secs_f64();
    let (rss, peak) = memory_kb(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = operator.wait().expect("the operator exits");

    println!("autoscaled Pipelines: {autoscaled}");
    println!("operator RSS idle (0 Pipelines): {idle_rss} kB");
    println!(
        "operator RSS with {pipelines_wanted} Pipelines, settled: {rss} kB (peak VmHWM {peak} kB)"
    );
    println!(
        "{pipelines_wanted} creates sent in {create_time:?}; all reconciled {all_reconciled:?} after the first"
    );
    println!(
        "{}",
        summary("create → status.observedGeneration=1", create_latencies)
    );
    println!(
        "operator CPU while settled: {:.1}% of one core over {window:?}",
        cpu_share * 100.0
    );
    println!("{pipelines_wanted} spec updates: all reconciled {all_updated:?} after the first");
    println!(
        "{}",
        summary("update → status.observedGeneration=2", update_latencies)
    );
    println!("operator exit: {exit}; log: {}", log.display());
    let _ = dir.keep();
}
