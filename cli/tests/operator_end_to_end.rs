//! The whole loop on a real control plane (kube-apiserver + kube-controller-manager 1.20) and a
//! real SQS/Kinesis API (moto): the operator, run in this process, scales a Pipeline's worker
//! Deployment up from zero when messages arrive and says why in the status and an Event; the
//! ReplicaSet controller creates the pods; this test plays the kubelet, marking each pod Ready
//! and running a real `wharf worker` for it with the ConfigMap's pipeline.yaml; the workers
//! drain the queue into Kinesis, keeping their pod-deletion-cost annotation through the worker
//! RBAC in deploy/; the operator scales back to zero after the stabilization window; and
//! deleting the Pipeline lets the garbage collector remove its ConfigMap and Deployment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use wharf_crds::Pipeline;
use wharf_operator::backends;
use wharf_operator::resources::selector_string;
use wharf_tests::moto::{Moto, create_telemetry_resources, send_bodies, stream_records};
use wharf_tests::operator_support::{InProcessOperator, cluster_with_crds, eventually, namespace};
use wharf_tests::process::follow_test_process;
use wharf_tests::{KubeCluster, workspace_root};
use wharf_workers::io::Backend;
use wharf_workers::io::aws::AwsBackend;
use wharf_workers::pod_deletion_cost::ANNOTATION;

const PIPELINE: &str = "ingest";
const DEPLOYMENT: &str = "ingest-worker";
const WORKER_ACCOUNT: &str = "wharf-worker";
/// Messages per replica in the Pipeline's scaling policy.
const TARGET: i32 = 10;
const WAIT: Duration = Duration::from_secs(45);

/// The queue, dead-letter queue and stream in moto the Pipeline reads and writes.
struct AwsFixture {
    config: aws_config::SdkConfig,
    source_url: String,
    dead_letter_url: String,
    stream: String,
}

impl AwsFixture {
    async fn new(moto: &Moto, name: &str) -> Self {
        let config = moto.sdk_config().await;
        let resources = create_telemetry_resources(&config, name, 1).await;
        Self {
            config,
            source_url: resources.source_url,
            dead_letter_url: resources.dead_letter_url,
            stream: resources.stream,
        }
    }

    async fn send(&self, bodies: &[String]) {
        send_bodies(&self.config, &self.source_url, bodies).await;
    }

    fn pipeline(&self, moto: &Moto) -> Pipeline {
        serde_json::from_value(json!({
            "apiVersion": "wharf.dev/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": PIPELINE},
            "spec": {
                "source": {"sqs": {
                    "queueUrl": self.source_url, "batchSize": 10, "waitTimeSeconds": 1,
                    "visibilityTimeoutSeconds": 10
                }},
                "processor": {"telemetry": {"sink": "events"}},
                "sinks": [{"name": "events", "kinesis": {"streamName": self.stream}}],
                "deadLetter": {"sqs": {"queueUrl": self.dead_letter_url}},
                "retry": {"maxAttempts": 3, "initialBackoffSeconds": 1, "maxBackoffSeconds": 1},
                "worker": {
                    "concurrency": 4, "maxProcessingSeconds": 5,
                    "serviceAccountName": WORKER_ACCOUNT
                },
                "aws": {"region": "us-east-1", "endpointUrl": moto.endpoint},
                "scaling": {
                    "minReplicas": 0, "maxReplicas": 5, "targetBacklogPerReplica": TARGET,
                    "pollIntervalSeconds": 1, "scaleDownStabilizationSeconds": 5
                }
            }
        }))
        .expect("the test Pipeline deserialises")
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

/// A kubeconfig that acts as `system:serviceaccount:<namespace>:wharf-worker`, so the workers
/// hold exactly the permissions deploy/worker-rbac.yaml gives them.
fn worker_kubeconfig(dir: &Path, namespace: &str) -> PathBuf {
    let cluster = KubeCluster::shared();
    let mut kubeconfig =
        kube::config::Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig is readable");
    for named in &mut kubeconfig.auth_infos {
        if let Some(user) = named.auth_info.as_mut() {
            user.impersonate = Some(format!(
                "system:serviceaccount:{namespace}:{WORKER_ACCOUNT}"
            ));
            user.impersonate_groups = Some(vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ]);
        }
    }
    let path = dir.join("worker-kubeconfig.json");
    // JSON is YAML, which is what kubeconfig readers expect.
    std::fs::write(
        &path,
        serde_json::to_vec(&kubeconfig).expect("kubeconfig serialises"),
    )
    .expect("writing the worker kubeconfig");
    path
}

/// What the stand-in kubelet saw and did.
#[derive(Debug, Default)]
struct KubeletReport {
    /// Every pod a worker was started for.
    started: BTreeSet<String>,
    /// The most workers running at once.
    most_running: usize,
    /// Pods seen carrying the pod-deletion-cost annotation, with its value.
    deletion_costs: BTreeMap<String, String>,
    /// How each worker exited after its pod was deleted.
    exits: BTreeMap<String, ExitStatus>,
}

/// Plays the kubelet for the worker pods of one Pipeline: a new pod is marked Running and
/// Ready through `pods/status` and gets a `wharf worker` process with the pod's identity; a
/// deleted pod's worker gets SIGTERM, as the kubelet would send it.
struct Kubelet {
    pods: Api<Pod>,
    namespace: String,
    pipeline_file: PathBuf,
    kubeconfig: PathBuf,
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
    endpoint: String,
    workers: BTreeMap<String, Child>,
    report: KubeletReport,
}

impl Kubelet {
    async fn sync(&mut self) {
        let selector = selector_string(PIPELINE);
        let Ok(pods) = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
        else {
            return;
        };
        let mut present = BTreeSet::new();
        for pod in pods.items {
            let name = pod.name_any();
            if let Some(cost) = pod.annotations().get(ANNOTATION) {
                self.report
                    .deletion_costs
                    .insert(name.clone(), cost.clone());
            }
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            present.insert(name.clone());
            if !self.workers.contains_key(&name) {
                self.mark_ready(&name).await;
                let child = self.start_worker(&name);
                self.workers.insert(name.clone(), child);
                self.report.started.insert(name);
            }
        }
        self.report.most_running = self.report.most_running.max(self.workers.len());
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|name| !present.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(mut child) = self.workers.remove(&name) {
                let status = terminate(&mut child);
                self.report.exits.insert(name, status);
            }
        }
    }

    async fn mark_ready(&self, pod: &str) {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let condition =
            |type_: &str| json!({"type": type_, "status": "True", "lastTransitionTime": now});
        let status = json!({"status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                condition("PodScheduled"), condition("Initialized"),
                condition("ContainersReady"), condition("Ready")
            ],
            "containerStatuses": [{
                "name": "worker", "ready": true, "restartCount": 0, "started": true,
                "image": "registry.local/wharf:test", "imageID": "",
                "state": {"running": {"startedAt": now}}
            }]
        }});
        self.pods
            .patch_status(pod, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap_or_else(|e| panic!("pod {pod} cannot be marked Ready: {e}"));
    }

    fn start_worker(&self, pod: &str) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("{pod}.log"))).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["worker", "--pipeline"])
            .arg(&self.pipeline_file)
            .args(["--metrics-port", "0", "--log-format", "json"])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("WHARF_ENDPOINT_URL", &self.endpoint)
            .env("POD_NAME", pod)
            .env("POD_NAMESPACE", &self.namespace)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("wharf worker starts");
        follow_test_process(&child);
        child
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for pod in &self.report.started {
            let log =
                std::fs::read_to_string(self.dir.join(format!("{pod}.log"))).unwrap_or_default();
            all.push_str(&format!("--- {pod}\n{log}\n"));
        }
        all
    }

    /// Stops the workers that are still running (the test failed or is over).
    fn stop_all(&mut self) {
        for (name, mut child) in std::mem::take(&mut self.workers) {
            let status = terminate(&mut child);
            self.report.exits.insert(name, status);
        }
    }
}

/// SIGTERM, then SIGKILL if the worker is still there after 20 s.
fn terminate(child: &mut Child) -> ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            return child.wait().expect("the killed worker is reaped");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `kubelet.sync()` every 200 ms until `stop`, then stops the remaining workers.
fn run_kubelet(
    mut kubelet: Kubelet,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Kubelet> {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            kubelet.sync().await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.cancelled() => {}
            }
        }
        kubelet.stop_all();
        kubelet
    })
}

async fn deployment_replicas(deployments: &Api<Deployment>) -> Option<i32> {
    deployments.get_opt(DEPLOYMENT).await.ok()??.spec?.replicas
}

async fn event_with_reason(client: &Client, namespace: &str, reason: &str) -> Option<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .ok()?
        .items
        .into_iter()
        .find(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(PIPELINE)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_scales_real_workers_up_and_back_to_zero_and_deletion_cleans_up() {
    let started = Instant::now();
    let client = cluster_with_crds().await;
    let ns = namespace(&client, "e2e").await;
    let applied = KubeCluster::shared().kubectl_output(&[
        "apply",
        "-n",
        &ns,
        "-f",
        &workspace_root()
            .join("deploy/worker-rbac.yaml")
            .to_string_lossy(),
    ]);
    assert!(
        applied.status.success(),
        "deploy/worker-rbac.yaml applies: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let moto = Moto::shared();
    let aws = AwsFixture::new(moto, &ns).await;
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    pipelines
        .create(&PostParams::default(), &aws.pipeline(moto))
        .await
        .expect("the Pipeline is accepted");
    let operator = InProcessOperator::start(&client, &ns, backends::aws(moto.overrides()));

    // An empty queue and minReplicas 0: the Deployment exists with no pods.
    eventually("a Deployment with 0 replicas", WAIT, || {
        let deployments = deployments.clone();
        async move { (deployment_replicas(&deployments).await == Some(0)).then_some(()) }
    })
    .await;

    let submissions = sample_submissions();
    let n = submissions.len();
    assert_eq!(n, 21, "the samples hold 20 valid submissions and 1 invalid");
    aws.send(&submissions).await;
    let expected = i32::try_from(n.div_ceil(TARGET as usize)).expect("a small count");
    assert_eq!(expected, 3);

    eventually("ceil(21 / 10) = 3 replicas", WAIT, || {
        let deployments = deployments.clone();
        async move { (deployment_replicas(&deployments).await == Some(expected)).then_some(()) }
    })
    .await;
    let status = eventually("backlog and last scale in the status", WAIT, || {
        let pipelines = pipelines.clone();
        async move {
            let status = pipelines.get(PIPELINE).await.ok()?.status?;
            (status.last_scale.as_ref()?.to == expected).then_some(status)
        }
    })
    .await;
    let backlog = status.backlog.expect("the observed backlog");
    assert_eq!((backlog.visible, backlog.in_flight), (21, 0));
    assert_eq!(backlog.dead_letter, Some(0));
    let scale_up = status.last_scale.expect("the last scale");
    assert_eq!((scale_up.from, scale_up.to), (0, 3));
    assert_eq!(
        scale_up.reason,
        "backlog 21 > activation 0 on 2 polls → 3 replicas"
    );
    let event = eventually("a ScaledUp Event", WAIT, || {
        event_with_reason(&client, &ns, "ScaledUp")
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(
        event.note,
        Some(format!("0 → 3: {}", scale_up.reason)),
        "the Event says why"
    );

    // The workers read exactly what the operator mounts into the pods.
    let config_map = config_maps.get(DEPLOYMENT).await.expect("the ConfigMap");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pipeline_file = dir.path().join("pipeline.yaml");
    std::fs::write(
        &pipeline_file,
        &config_map.data.expect("ConfigMap data")["pipeline.yaml"],
    )
    .expect("writing pipeline.yaml");
    let kubelet = Kubelet {
        pods: Api::namespaced(client.clone(), &ns),
        namespace: ns.clone(),
        pipeline_file,
        kubeconfig: worker_kubeconfig(dir.path(), &ns),
        dir: dir.path().to_owned(),
        env: moto.env(),
        endpoint: moto.endpoint.clone(),
        workers: BTreeMap::new(),
        report: KubeletReport::default(),
    };
    let kubelet_stop = tokio_util::sync::CancellationToken::new();
    let kubelet_task = run_kubelet(kubelet, kubelet_stop.clone());

    // Pods marked Ready make the Deployment, and so the Pipeline, ready.
    eventually("Ready=True with 3 ready workers", WAIT, || {
        let pipelines = pipelines.clone();
        async move {
            let status = pipelines.get(PIPELINE).await.ok()?.status?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (ready && status.ready_replicas == 3).then_some(())
        }
    })
    .await;

    // The workers drain the queue: every valid submission reaches Kinesis, the invalid one
    // is dead-lettered, and nothing stays visible or in flight.
    let source = AwsBackend::new(&aws.config).queue(&aws.source_url);
    let dead_letter = AwsBackend::new(&aws.config).queue(&aws.dead_letter_url);
    let drained = eventually(
        "the workers to drain the queue",
        Duration::from_secs(60),
        || {
            let (source, dead_letter, config, stream) =
                (&source, &dead_letter, &aws.config, &aws.stream);
            async move {
                let depth = source.depth().await.ok()?;
                let dead = dead_letter.depth().await.ok()?;
                let records = stream_records(config, stream).await.len();
                (depth.visible == 0 && depth.in_flight == 0 && dead.visible == 1 && records >= 20)
                    .then_some(records)
            }
        },
    )
    .await;

    // Empty for longer than the stabilization window: back to minReplicas.
    eventually("0 replicas once the queue is empty", WAIT, || {
        let deployments = deployments.clone();
        async move { (deployment_replicas(&deployments).await == Some(0)).then_some(()) }
    })
    .await;
    let status = eventually("the scale-down in the status", WAIT, || {
        let pipelines = pipelines.clone();
        async move {
            let status = pipelines.get(PIPELINE).await.ok()?.status?;
            (status.last_scale.as_ref()?.to == 0).then_some(status)
        }
    })
    .await;
    let scale_down = status.last_scale.expect("the last scale");
    assert!(
        scale_down
            .reason
            .starts_with("queue empty (0 visible, 0 in flight)"),
        "the scale-down says why: {}",
        scale_down.reason
    );
    eventually("a ScaledDown Event", WAIT, || {
        event_with_reason(&client, &ns, "ScaledDown")
    })
    .await;
    // The ReplicaSet controller deletes the pods (unscheduled pods go at once) and the
    // stand-in kubelet stops their workers.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    eventually("the worker pods to be gone", WAIT, || {
        let pods = pods.clone();
        async move {
            let left = pods
                .list(&ListParams::default().labels(&selector_string(PIPELINE)))
                .await
                .ok()?;
            left.items.is_empty().then_some(())
        }
    })
    .await;
    kubelet_stop.cancel();
    let kubelet = kubelet_task.await.expect("the kubelet task does not panic");
    let logs = kubelet.logs();
    let report = kubelet.report;
    assert!(
        report.started.len() >= 3 && report.most_running >= 3,
        "a worker ran for each of the 3 pods: {report:?}"
    );
    for (pod, status) in &report.exits {
        assert!(
            status.success(),
            "worker of {pod} exits 0 on SIGTERM, got {status}; logs:\n{logs}"
        );
    }
    // Each worker patched its own pod through the worker Role alone.
    assert!(
        report
            .started
            .iter()
            .all(|pod| report.deletion_costs.contains_key(pod)),
        "every worker keeps its pod's {ANNOTATION}: {:?}; logs:\n{logs}",
        report.deletion_costs
    );
    assert!(
        !logs.contains("could not update"),
        "no worker was refused the annotation patch; logs:\n{logs}"
    );

    // Deleting the Pipeline: the garbage collector removes what it owned.
    pipelines
        .delete(PIPELINE, &DeleteParams::default())
        .await
        .expect("the Pipeline is deleted");
    eventually(
        "the garbage collector to delete the ConfigMap and Deployment",
        Duration::from_secs(60),
        || {
            let (deployments, config_maps) = (deployments.clone(), config_maps.clone());
            async move {
                let deployment = deployments.get_opt(DEPLOYMENT).await.ok()?;
                let config_map = config_maps.get_opt(DEPLOYMENT).await.ok()?;
                (deployment.is_none() && config_map.is_none()).then_some(())
            }
        },
    )
    .await;
    operator.stop().await;
    eprintln!(
        "end to end in {:?}: {drained} Kinesis records, workers for pods {:?}",
        started.elapsed(),
        report.started
    );
}
