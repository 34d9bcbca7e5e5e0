//! Reconcile against a mocked API server: each scenario states the exact requests the
//! reconciler must make, in order, and answers them as the API server would.

use std::sync::Arc;

use http::{Method, Request, Response};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use super::*;
use crate::resources::tests::telemetry_pipeline;

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn context() -> (Arc<Context>, ApiServerHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(
        client,
        Reporter {
            controller: "wharf-operator".to_owned(),
            instance: Some("wharf-operator-0".to_owned()),
        },
        WorkerDefaults {
            image: "ghcr.io/wharf-dev/wharf:0.1.0".to_owned(),
        },
        ScaleReports::default(),
        Arc::new(NoScalers),
    );
    (Arc::new(ctx), handle)
}

/// Takes the next request, checks its method and path-and-query, and returns its JSON body
/// with the responder.
async fn expect(
    handle: &mut ApiServerHandle,
    method: Method,
    path_and_query: &str,
) -> (Value, tower_test::mock::SendResponse<Response<Body>>) {
    let (request, respond) = handle
        .next_request()
        .await
        .unwrap_or_else(|| panic!("expected {method} {path_and_query}, got no request"));
    assert_eq!(request.method(), method, "method of {}", request.uri());
    assert_eq!(request.uri().to_string(), path_and_query);
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    let body = serde_json::from_slice(&bytes).expect("JSON request body");
    (body, respond)
}

fn respond_json(respond: tower_test::mock::SendResponse<Response<Body>>, body: &Value) {
    let bytes = serde_json::to_vec(body).expect("serialise response");
    respond.send_response(
        Response::builder()
            .body(Body::from(bytes))
            .expect("response"),
    );
}

const APPLY: &str = "?&force=true&fieldManager=wharf-operator";

fn status_patch_response(pipeline: &Pipeline, status: &Value) -> Value {
    let mut object = serde_json::to_value(pipeline).expect("pipeline JSON");
    object["status"] = status.clone();
    object
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("condition {type_} in {status}"))
}

#[tokio::test]
async fn first_reconcile_applies_config_map_deployment_status_and_one_event() {
    let (ctx, mut server) = context();
    let pipeline = telemetry_pipeline();
    let scripted = {
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            let (cm, respond) = expect(
                &mut server,
                Method::PATCH,
                &format!("/api/v1/namespaces/data/configmaps/telemetry-worker{APPLY}"),
            )
            .await;
            assert_eq!(cm["kind"], "ConfigMap");
            assert_eq!(cm["metadata"]["ownerReferences"][0]["controller"], true);
            assert_eq!(cm["metadata"]["ownerReferences"][0]["name"], "telemetry");
            assert!(
                cm["data"]["pipeline.yaml"]
                    .as_str()
                    .is_some_and(|y| y.contains("streamName: events")),
                "{cm}"
            );
            respond_json(respond, &cm);

            let (deployment, respond) = expect(
                &mut server,
                Method::PATCH,
                &format!("/apis/apps/v1/namespaces/data/deployments/telemetry-worker{APPLY}"),
            )
            .await;
            assert_eq!(deployment["kind"], "Deployment");
            assert_eq!(
                deployment["spec"]["replicas"], 1,
                "spec.replicas rules without scaling"
            );
            assert_eq!(
                deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"],
                true
            );
            let mut applied: Deployment = serde_json::from_value(deployment).expect("deployment");
            applied.status = Some(DeploymentStatus {
                replicas: Some(1),
                ready_replicas: Some(0),
                ..DeploymentStatus::default()
            });
            respond_json(respond, &serde_json::to_value(&applied).expect("json"));

            let (patch, respond) = expect(
                &mut server,
                Method::PATCH,
                &format!(
                    "/apis/wharf.dev/v1alpha1/namespaces/data/pipelines/telemetry/status{APPLY}"
                ),
            )
            .await;
            assert_eq!(patch["apiVersion"], "wharf.dev/v1alpha1");
            assert_eq!(patch["kind"], "Pipeline");
            let status = &patch["status"];
            assert_eq!(status["observedGeneration"], 3);
            assert_eq!(status["replicas"], 1);
            assert_eq!(status["readyReplicas"], 0);
            assert_eq!(status["desiredReplicas"], 1);
            assert_eq!(status["processor"], "telemetry");
            assert_eq!(
                status["selector"],
                "app.kubernetes.io/name=wharf-worker,wharf.dev/pipeline=telemetry"
            );
            let ready = condition(status, "Ready");
            assert_eq!(
                (&ready["status"], &ready["reason"]),
                (&json!("False"), &json!("WorkersStarting"))
            );
            assert_eq!(ready["message"], "0 of 1 pods ready");
            let scaling = condition(status, "Scaling");
            assert_eq!(
                (&scaling["status"], &scaling["reason"]),
                (&json!("False"), &json!("FixedReplicas"))
            );
            for c in status["conditions"].as_array().expect("conditions") {
                // Kubernetes 1.20 turns an empty string into null under server-side apply
                // and then rejects the status: every message must say something.
                assert!(c["message"].as_str().is_some_and(|m| !m.is_empty()), "{c}");
            }
            let degraded = condition(status, "Degraded");
            assert_eq!(
                (&degraded["status"], &degraded["reason"]),
                (&json!("False"), &json!("AsExpected"))
            );
            respond_json(respond, &status_patch_response(&pipeline, status));

            let (event, respond) = expect(
                &mut server,
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/data/events?",
            )
            .await;
            assert_eq!(event["reason"], "WorkersStarting");
            assert_eq!(event["type"], "Normal");
            assert_eq!(event["regarding"]["name"], "telemetry");
            assert_eq!(event["regarding"]["kind"], "Pipeline");
            respond_json(respond, &event);
            server
        })
    };

    let action = reconcile(Arc::new(pipeline), ctx.clone())
        .await
        .expect("reconcile");
    assert_eq!(action, Action::requeue(RESYNC));
    let mut server = scripted.await.expect("scripted API server");
    drop(ctx);
    assert!(server.next_request().await.is_none(), "no further requests");
}

#[tokio::test]
async fn invalid_pipeline_gets_ready_false_and_a_warning_without_touching_workers() {
    let (ctx, mut server) = context();
    let mut pipeline = telemetry_pipeline();
    pipeline.spec.sinks.clear();
    let scripted = {
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            let (patch, respond) = expect(
                &mut server,
                Method::PATCH,
                &format!(
                    "/apis/wharf.dev/v1alpha1/namespaces/data/pipelines/telemetry/status{APPLY}"
                ),
            )
            .await;
            let status = &patch["status"];
            assert_eq!(status["observedGeneration"], 3);
            let ready = condition(status, "Ready");
            assert_eq!(
                (&ready["status"], &ready["reason"]),
                (&json!("False"), &json!("InvalidSpec"))
            );
            let message = ready["message"].as_str().expect("message");
            assert!(
                message.contains("spec.processor.telemetry.sink") || message.contains("events"),
                "the message names the problem: {message}"
            );
            respond_json(respond, &status_patch_response(&pipeline, status));

            let (event, respond) = expect(
                &mut server,
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/data/events?",
            )
            .await;
            assert_eq!(event["type"], "Warning");
            assert_eq!(event["reason"], "InvalidSpec");
            assert_eq!(event["note"], message);
            respond_json(respond, &event);
            server
        })
    };

    let action = reconcile(Arc::new(pipeline), ctx.clone())
        .await
        .expect("an invalid spec is not an error");
    assert_eq!(action, Action::requeue(INVALID_RESYNC));
    let mut server = scripted.await.expect("scripted API server");
    drop(ctx);
    assert!(
        server.next_request().await.is_none(),
        "no ConfigMap or Deployment is written for an invalid spec"
    );
}

#[tokio::test]
async fn unchanged_conditions_keep_their_time_and_publish_no_event() {
    let (ctx, mut server) = context();
    let mut pipeline = telemetry_pipeline();
    let earlier = "2026-01-01T00:00:00Z";
    let previous: PipelineStatus = serde_json::from_value(json!({
        "observedGeneration": 2,
        "replicas": 1,
        "readyReplicas": 1,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "WorkersReady", "message": "1 of 1 pods ready",
             "lastTransitionTime": earlier},
            {"type": "Scaling", "status": "False", "reason": "FixedReplicas",
             "message": "spec.scaling is unset; spec.replicas = 1", "lastTransitionTime": earlier},
            {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "",
             "lastTransitionTime": earlier}
        ]
    }))
    .expect("status");
    pipeline.status = Some(previous);
    let scripted = {
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            let (cm, respond) = expect(
                &mut server,
                Method::PATCH,
                &format!("/api/v1/namespaces/data/configmaps/telemetry-worker{APPLY}"),
            )
            .await;
            respond_json(respond, &cm);
            let (deployment, respond) = expect(
                &mut server,
                Method::PATCH,
                &format!("/apis/apps/v1/namespaces/data/deployments/telemetry-worker{APPLY}"),
            )
            .await;
            let mut applied: Deployment = serde_json::from_value(deployment).expect("deployment");
            applied.status = Some(DeploymentStatus {
                replicas: Some(1),
                ready_replicas: Some(1),
                ..DeploymentStatus::default()
            });
            respond_json(respond, &serde_json::to_value(&applied).expect("json"));
            let (patch, respond) = expect(
                &mut server,
                Method::PATCH,
                &format!(
                    "/apis/wharf.dev/v1alpha1/namespaces/data/pipelines/telemetry/status{APPLY}"
                ),
            )
            .await;
            let status = &patch["status"];
            assert_eq!(status["observedGeneration"], 3);
            for type_ in ["Ready", "Scaling", "Degraded"] {
                let c = condition(status, type_);
                assert_eq!(c["lastTransitionTime"], earlier, "{type_} keeps its time");
                assert_eq!(c["observedGeneration"], 3);
            }
            respond_json(respond, &status_patch_response(&pipeline, status));
            server
        })
    };
    reconcile(Arc::new(pipeline), ctx.clone())
        .await
        .expect("reconcile");
    let mut server = scripted.await.expect("scripted API server");
    drop(ctx);
    assert!(
        server.next_request().await.is_none(),
        "no Event without a transition"
    );
}

#[test]
fn autoscaled_replicas_come_from_the_scaler_then_the_status_then_min() {
    let mut pipeline = telemetry_pipeline();
    pipeline.spec.scaling = Some(wharf_crds::pipeline::ScalingPolicy {
        min_replicas: 1,
        max_replicas: 4,
        ..Default::default()
    });
    assert_eq!(desired_replicas(&pipeline, None), 1);
    pipeline.status = Some(PipelineStatus {
        desired_replicas: Some(3),
        ..PipelineStatus::default()
    });
    assert_eq!(desired_replicas(&pipeline, None), 3);
    let report = ScaleReport {
        desired_replicas: Some(9),
        ..ScaleReport::default()
    };
    assert_eq!(
        desired_replicas(&pipeline, Some(&report)),
        4,
        "clamped to maxReplicas"
    );
    pipeline.spec.scaling = None;
    pipeline.spec.replicas = 2;
    assert_eq!(
        desired_replicas(&pipeline, Some(&report)),
        2,
        "spec.replicas rules without scaling"
    );
}

#[test]
fn event_notes_are_cut_at_a_character_boundary() {
    let text = "é".repeat(600);
    let cut = truncate(&text, 1000);
    assert!(cut.len() <= 1000 + "…".len());
    assert!(cut.ends_with('…'));
}

#[test]
fn an_unreachable_queue_marks_the_pipeline_degraded() {
    let mut pipeline = telemetry_pipeline();
    pipeline.spec.scaling = Some(wharf_crds::pipeline::ScalingPolicy::default());
    let report = ScaleReport {
        queue_error: Some("GetQueueAttributes on https://sqs/q failed: timeout".to_owned()),
        last_reason: Some("backlog 3 needs 1 replica at 50 each; no change".to_owned()),
        ..ScaleReport::default()
    };
    let deployment = Deployment::default();
    let [ready, scaling, degraded] = observe(&pipeline, 2, &deployment, Some(&report));
    assert_eq!(
        (degraded.status, degraded.reason),
        (true, reason::QUEUE_UNREACHABLE)
    );
    assert!(degraded.message.contains("timeout"));
    assert_eq!(
        (scaling.status, scaling.reason),
        (true, reason::AUTOSCALING)
    );
    assert_eq!(
        scaling.message,
        "backlog 3 needs 1 replica at 50 each; no change"
    );
    assert_eq!(
        (ready.status, ready.reason),
        (false, reason::WORKERS_STARTING)
    );
}
