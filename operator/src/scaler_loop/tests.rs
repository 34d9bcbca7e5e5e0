//! Polls against the embedded queue backend and a mocked API server that states the exact
//! requests each poll must make.

use std::sync::Arc;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use serde_json::{Value, json};
use wharf_workers::io::OutgoingMessage;
use wharf_workers::io::memory::MemoryBackend;

use super::*;
use crate::resources::tests::telemetry_pipeline;

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const QUEUE: &str = "https://sqs.eu-west-2.amazonaws.com/123456789012/submissions";
const SCALE: &str = "/apis/apps/v1/namespaces/data/deployments/telemetry-worker/scale";

struct Fixture {
    scaler: PipelineScaler,
    server: ApiServerHandle,
    refreshes: mpsc::Receiver<ObjectRef<Pipeline>>,
    reports: ScaleReports,
    pipeline: Pipeline,
}

fn fixture(backend: &MemoryBackend, policy: ScalingPolicy) -> Fixture {
    let (service, server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (refresh, refreshes) = mpsc::channel(8);
    let reports = ScaleReports::default();
    let shared = ScalerShared {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "wharf-operator".to_owned(),
                instance: None,
            },
        ),
        client,
        reports: reports.clone(),
        backends: Arc::new(|_| unreachable_backend()),
        store: reflector::store::<Pipeline>().0,
        refresh,
        metrics: crate::metrics::Metrics::default(),
    };
    let mut pipeline = telemetry_pipeline();
    pipeline.spec.scaling = Some(policy.clone());
    let key = ObjectRef::from_obj(&pipeline);
    let queues = PipelineQueues {
        source: backend.queue(QUEUE),
        dead_letter: None,
    };
    Fixture {
        scaler: PipelineScaler::new(shared, key, policy, queues),
        server,
        refreshes,
        reports,
        pipeline,
    }
}

fn unreachable_backend() -> BoxFuture<'static, Arc<dyn Backend>> {
    Box::pin(async { Arc::new(MemoryBackend::new()) as Arc<dyn Backend> })
}

fn policy() -> ScalingPolicy {
    ScalingPolicy {
        min_replicas: 0,
        max_replicas: 10,
        target_backlog_per_replica: 50,
        scale_down_stabilization_seconds: 60,
        ..ScalingPolicy::default()
    }
}

fn backend_with(messages: usize) -> MemoryBackend {
    let backend = MemoryBackend::new();
    backend.create_queue(QUEUE);
    for i in 0..messages {
        backend
            .send_message(
                QUEUE,
                OutgoingMessage {
                    body: format!("message {i}"),
                    ..OutgoingMessage::default()
                },
            )
            .expect("send");
    }
    backend
}

fn scale(replicas: i32) -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "telemetry-worker", "namespace": "data"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas}
    })
}

async fn answer(server: &mut ApiServerHandle, method: Method, uri: &str, response: Value) -> Value {
    let (request, respond) = server
        .next_request()
        .await
        .unwrap_or_else(|| panic!("expected {method} {uri}"));
    assert_eq!(request.method(), method);
    assert_eq!(request.uri().to_string(), uri);
    let bytes = request.into_body().collect_bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    let reply = if response.is_null() {
        body.clone()
    } else {
        response
    };
    respond.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).expect("json")))
            .expect("response"),
    );
    body
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("timestamp")
}

#[tokio::test]
async fn a_growing_backlog_patches_replicas_records_the_change_and_publishes_an_event() {
    let backend = backend_with(230);
    let Fixture {
        mut scaler,
        mut server,
        mut refreshes,
        reports,
        pipeline,
    } = fixture(&backend, policy());
    let api = tokio::spawn(async move {
        answer(&mut server, Method::GET, SCALE, scale(4)).await;
        let patch = answer(
            &mut server,
            Method::PATCH,
            &format!("{SCALE}?&fieldManager=wharf-operator"),
            scale(5),
        )
        .await;
        assert_eq!(patch, json!({"spec": {"replicas": 5}}));
        let event = answer(
            &mut server,
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/data/events?",
            Value::Null,
        )
        .await;
        assert_eq!(event["reason"], "ScaledUp");
        assert_eq!(event["note"], "4 → 5: backlog 230 > 4 × 50 → 5 replicas");
        server
    });

    let outcome = scaler.poll(&pipeline, at(0)).await;
    assert_eq!(outcome, PollOutcome::Scaled { from: 4, to: 5 });
    let _server = api.await.expect("API server script");

    let report = reports
        .get(&ObjectRef::from_obj(&pipeline))
        .expect("report");
    let backlog = report.backlog.expect("backlog");
    assert_eq!((backlog.visible, backlog.in_flight), (230, 0));
    let change = report.last_scale.expect("last scale");
    assert_eq!((change.from, change.to), (4, 5));
    assert_eq!(change.reason, "backlog 230 > 4 × 50 → 5 replicas");
    assert_eq!(change.time, Time(at(0)));
    assert_eq!(report.desired_replicas, Some(5));
    assert_eq!(
        refreshes.try_recv().ok().map(|r| r.name),
        Some("telemetry".to_owned()),
        "the controller is asked to write the status"
    );
}

#[tokio::test]
async fn activation_from_zero_needs_two_polls() {
    let backend = backend_with(30);
    let Fixture {
        mut scaler,
        mut server,
        reports,
        pipeline,
        ..
    } = fixture(&backend, policy());
    let api = tokio::spawn(async move {
        answer(&mut server, Method::GET, SCALE, scale(0)).await;
        answer(&mut server, Method::GET, SCALE, scale(0)).await;
        let patch = answer(
            &mut server,
            Method::PATCH,
            &format!("{SCALE}?&fieldManager=wharf-operator"),
            scale(1),
        )
        .await;
        assert_eq!(patch, json!({"spec": {"replicas": 1}}));
        answer(
            &mut server,
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/data/events?",
            Value::Null,
        )
        .await;
        server
    });
    assert_eq!(
        scaler.poll(&pipeline, at(0)).await,
        PollOutcome::Held { replicas: 0 }
    );
    let held = reports
        .get(&ObjectRef::from_obj(&pipeline))
        .expect("report");
    assert_eq!(
        held.last_reason.as_deref(),
        Some("backlog 30 > activation 0 on 1 of 2 polls; staying at 0 replicas")
    );
    assert_eq!(
        scaler.poll(&pipeline, at(5)).await,
        PollOutcome::Scaled { from: 0, to: 1 }
    );
    api.await.expect("API server script");
}

#[tokio::test]
async fn an_unreachable_queue_keeps_replicas_and_reports_the_error() {
    // The queue was never created: every depth read fails as SQS's NonExistentQueue would.
    let backend = MemoryBackend::new();
    let Fixture {
        mut scaler,
        mut server,
        mut refreshes,
        reports,
        pipeline,
    } = fixture(&backend, policy());
    let api = tokio::spawn(async move {
        answer(&mut server, Method::GET, SCALE, scale(3)).await;
        server
    });
    assert_eq!(
        scaler.poll(&pipeline, at(0)).await,
        PollOutcome::QueueUnreachable
    );
    let mut server = api.await.expect("API server script");
    let report = reports
        .get(&ObjectRef::from_obj(&pipeline))
        .expect("report");
    let error = report.queue_error.expect("queue error recorded");
    assert!(error.contains(QUEUE), "the error names the queue: {error}");
    assert_eq!(report.last_scale, None);
    assert!(refreshes.try_recv().ok().is_some());
    drop(scaler);
    assert!(
        server.next_request().await.is_none(),
        "no patch while the queue is unreachable"
    );
}

#[tokio::test]
async fn loops_start_once_per_spec_end_with_their_pipeline_and_restart_when_it_returns() {
    let (service, _server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (refresh, _refreshes) = mpsc::channel(8);
    let (store, mut writer) = reflector::store::<Pipeline>();
    let shared = ScalerShared {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "wharf-operator".to_owned(),
                instance: None,
            },
        ),
        client,
        reports: ScaleReports::default(),
        backends: Arc::new(|_| unreachable_backend()),
        store,
        refresh,
        metrics: crate::metrics::Metrics::default(),
    };
    let shutdown = CancellationToken::new();
    let scalers = Scalers::new(shared, shutdown.clone());
    let mut pipeline = telemetry_pipeline();
    pipeline.spec.scaling = Some(ScalingPolicy {
        poll_interval_seconds: 3600,
        ..policy()
    });
    let key = ObjectRef::from_obj(&pipeline);

    // Not in the controller's cache: the loop sees the Pipeline gone and ends on its own.
    scalers.ensure_running(&pipeline);
    assert!(scalers.is_running(&key));
    tokio::time::timeout(Duration::from_secs(5), async {
        while scalers.is_running(&key) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the loop of a deleted Pipeline ends");

    // Re-created with the same spec: a new loop, which keeps running while the Pipeline exists.
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(pipeline.clone()));
    scalers.ensure_running(&pipeline);
    assert!(scalers.is_running(&key));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(scalers.is_running(&key));

    let mut without_scaling = pipeline.clone();
    without_scaling.spec.scaling = None;
    scalers.ensure_running(&without_scaling);
    assert!(
        !scalers.is_running(&key),
        "removing spec.scaling stops the loop"
    );

    scalers.ensure_running(&pipeline);
    assert!(scalers.is_running(&key));
    shutdown.cancel();
    assert!(!scalers.is_running(&key), "shutdown stops every loop");
}
