//! The Pipeline controller, run in this process against a real kube-apiserver and
//! kube-controller-manager (v1.20, CRDs without CEL): it creates the worker ConfigMap and
//! Deployment with owner references and restricted pod security, reports an invalid Pipeline
//! as Ready=False without touching workloads, follows `kubectl scale`, scales on queue depth
//! from the embedded backend, and elects exactly one leader.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use wharf_crds::Pipeline;
use wharf_crds::manifest::{Outcome, WharfResource, load_str};
use wharf_operator::leader::{Attempt, LeaderElector, LeaseSettings};
use wharf_operator::metrics::Metrics;
use wharf_operator::{CancellationToken, OperatorConfig, backends, run_controllers};
use wharf_tests::KubeCluster;
use wharf_tests::operator_support::{cluster_with_crds, eventually, namespace};
use wharf_workers::io::memory::MemoryBackend;
use wharf_workers::io::{Backend, OutgoingMessage};

const WAIT: Duration = Duration::from_secs(60);

fn pipeline(name: &str, queue_url: &str, sink: &str, extra: serde_json::Value) -> Pipeline {
    let mut value = json!({
        "apiVersion": "wharf.dev/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {
            "source": {"sqs": {"queueUrl": queue_url}},
            "processor": {"telemetry": {"sink": sink}},
            "sinks": [{"name": "events", "kinesis": {"streamName": "events"}}]
        }
    });
    if let (Some(spec), Some(extra)) = (value["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(value).expect("pipeline")
}

struct RunningOperator {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningOperator {
    fn start(client: &Client, namespace: &str, backend: &MemoryBackend) -> Self {
        let stop = CancellationToken::new();
        let config = OperatorConfig {
            worker_image: "registry.local/wharf:test".to_owned(),
            namespace: Some(namespace.to_owned()),
            election: None,
            instance: Some("wharf-operator-test".to_owned()),
            autoscaling: true,
        };
        let task = tokio::spawn(run_controllers(
            client.clone(),
            config,
            backends::fixed(Arc::new(backend.clone())),
            Metrics::default(),
            stop.clone(),
        ));
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the controller stops on cancellation")
            .expect("the controller task does not panic");
    }
}

fn condition(pipeline: &Pipeline, type_: &str) -> Option<(String, String, String)> {
    pipeline
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_pipeline_gets_owned_workers_and_invalid_one_gets_ready_false() {
    let client = cluster_with_crds().await;
    let ns = namespace(&client, "operator").await;
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let queue = "https://sqs.eu-west-2.amazonaws.com/123456789012/submissions";
    let created = pipelines
        .create(
            &PostParams::default(),
            &pipeline("telemetry", queue, "events", json!({})),
        )
        .await
        .expect("valid Pipeline is accepted");
    // Without CEL (Kubernetes 1.20) the API server accepts a sink that does not exist.
    pipelines
        .create(
            &PostParams::default(),
            &pipeline("broken", queue, "nowhere", json!({})),
        )
        .await
        .expect("the no-CEL CRD accepts what only validate() refuses");

    let backend = MemoryBackend::new();
    let operator = RunningOperator::start(&client, &ns, &backend);

    let deployment = eventually("the worker Deployment", WAIT, || {
        let deployments = deployments.clone();
        async move { deployments.get_opt("telemetry-worker").await.ok().flatten() }
    })
    .await;
    let owner = &deployment.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Pipeline", "telemetry", Some(true))
    );
    assert_eq!(Some(owner.uid.clone()), created.metadata.uid);
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod template");
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.local/wharf:test")
    );
    let security = container
        .security_context
        .clone()
        .expect("security context");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    assert_eq!(pod.termination_grace_period_seconds, Some(930));
    let managers: Vec<_> = deployment
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "wharf-operator"),
        "applied by the operator's field manager: {managers:?}"
    );

    let config_map = config_maps
        .get("telemetry-worker")
        .await
        .expect("ConfigMap exists");
    assert_eq!(config_map.owner_references()[0].name, "telemetry");
    let yaml = &config_map.data.expect("data")["pipeline.yaml"];
    let documents = load_str(yaml).expect("resolved Pipeline is YAML");
    match &documents[0].outcome {
        Outcome::Valid(WharfResource::Pipeline(resolved)) => {
            assert_eq!(resolved.spec.sqs().map(|s| s.batch_size), Some(10));
        }
        other => panic!("the mounted Pipeline passes `wharf validate`: {other:?}"),
    }

    let status = eventually("the Pipeline status", WAIT, || {
        let pipelines = pipelines.clone();
        async move {
            let p = pipelines.get("telemetry").await.ok()?;
            let status = p.status.clone()?;
            (status.observed_generation == p.metadata.generation && status.replicas == 1)
                .then_some(p)
        }
    })
    .await;
    assert_eq!(
        condition(&status, "Ready").map(|c| (c.0, c.1)),
        // No kubelet in the test cluster: pods never become ready.
        Some(("False".to_owned(), "WorkersStarting".to_owned()))
    );
    assert_eq!(
        status
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .as_deref(),
        Some("app.kubernetes.io/name=wharf-worker,wharf.dev/pipeline=telemetry")
    );

    let broken = eventually("Ready=False on the invalid Pipeline", WAIT, || {
        let pipelines = pipelines.clone();
        async move {
            let p = pipelines.get("broken").await.ok()?;
            condition(&p, "Ready").filter(|c| c.1 == "InvalidSpec")
        }
    })
    .await;
    assert_eq!(broken.0, "False");
    assert!(
        broken.2.contains("nowhere"),
        "the message names the problem: {}",
        broken.2
    );
    assert!(
        deployments
            .get_opt("broken-worker")
            .await
            .expect("get")
            .is_none(),
        "no workload for an invalid spec"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let warned = eventually("an InvalidSpec Event", WAIT, || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("InvalidSpec"))
        }
    })
    .await;
    assert_eq!(warned.type_.as_deref(), Some("Warning"));
    assert_eq!(
        warned.regarding.and_then(|r| r.name).as_deref(),
        Some("broken")
    );

    // `kubectl scale` writes spec.replicas through the scale subresource; without
    // spec.scaling that is what the workers run.
    let scaled = KubeCluster::shared().kubectl_output(&[
        "scale",
        "-n",
        &ns,
        "pipeline/telemetry",
        "--replicas=3",
    ]);
    assert!(
        scaled.status.success(),
        "{}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    eventually("the Deployment to follow kubectl scale", WAIT, || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("telemetry-worker").await.ok()?;
            (d.spec?.replicas == Some(3)).then_some(())
        }
    })
    .await;

    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaled_pipeline_follows_the_queue_depth() {
    let client = cluster_with_crds().await;
    let ns = namespace(&client, "operator").await;
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let queue = format!("https://sqs.eu-west-2.amazonaws.com/123456789012/{ns}");
    let backend = MemoryBackend::new();
    backend.create_queue(&queue);
    for i in 0..25 {
        backend
            .send_message(
                &queue,
                OutgoingMessage {
                    body: format!("{{\"n\":{i}}}"),
                    ..OutgoingMessage::default()
                },
            )
            .expect("send");
    }
    let scaling = json!({"scaling": {
        "minReplicas": 0, "maxReplicas": 5, "targetBacklogPerReplica": 10,
        "pollIntervalSeconds": 1, "scaleDownStabilizationSeconds": 0
    }});
    pipelines
        .create(
            &PostParams::default(),
            &pipeline("scaled", &queue, "events", scaling),
        )
        .await
        .expect("Pipeline is accepted");
    let operator = RunningOperator::start(&client, &ns, &backend);

    eventually("3 replicas for 25 messages at 10 each", WAIT, || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get_opt("scaled-worker").await.ok()??;
            (d.spec?.replicas == Some(3)).then_some(())
        }
    })
    .await;
    let status = eventually("backlog and last scale in the status", WAIT, || {
        let pipelines = pipelines.clone();
        async move {
            let status = pipelines.get("scaled").await.ok()?.status?;
            (status.backlog.as_ref()?.visible == 25 && status.last_scale.is_some())
                .then_some(status)
        }
    })
    .await;
    let change = status.last_scale.expect("last scale");
    assert_eq!((change.from, change.to), (0, 3));
    assert_eq!(
        change.reason,
        "backlog 25 > activation 0 on 2 polls → 3 replicas"
    );
    assert_eq!(status.desired_replicas, Some(3));

    // Draining the queue scales to zero (no stabilization window in this spec).
    let received = backend
        .queue(&queue)
        .receive(10, Duration::ZERO, Duration::from_secs(300))
        .await
        .expect("receive");
    let handles: Vec<String> = received.iter().map(|m| m.receipt_handle.clone()).collect();
    backend
        .queue(&queue)
        .delete_batch(&handles)
        .await
        .expect("delete");
    for _ in 0..2 {
        let more = backend
            .queue(&queue)
            .receive(10, Duration::ZERO, Duration::from_secs(300))
            .await
            .expect("receive");
        let handles: Vec<String> = more.iter().map(|m| m.receipt_handle.clone()).collect();
        if !handles.is_empty() {
            backend
                .queue(&queue)
                .delete_batch(&handles)
                .await
                .expect("delete");
        }
    }
    eventually("zero replicas once the queue is empty", WAIT, || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("scaled-worker").await.ok()?;
            (d.spec?.replicas == Some(0)).then_some(())
        }
    })
    .await;

    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_of_two_candidates_leads() {
    let client = cluster_with_crds().await;
    let ns = namespace(&client, "operator").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let settings = |id: &str| LeaseSettings::new("wharf-operator", id);
    let mut a = LeaderElector::new(leases.clone(), settings("a"));
    let mut b = LeaderElector::new(leases.clone(), settings("b"));
    let now = k8s_openapi::jiff::Timestamp::now();
    assert_eq!(
        a.try_acquire_or_renew(now).await.expect("a"),
        Attempt::Leading
    );
    assert_eq!(
        b.try_acquire_or_renew(now).await.expect("b"),
        Attempt::Following {
            holder: "a".to_owned()
        }
    );
    assert_eq!(
        a.try_acquire_or_renew(now).await.expect("a renews"),
        Attempt::Leading
    );
    a.release().await;
    assert_eq!(
        b.try_acquire_or_renew(now).await.expect("b"),
        Attempt::Leading,
        "a released Lease is taken at once"
    );
    let lease = leases.get("wharf-operator").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
}

/// A client acting as the operator's service account, bound only by `deploy/rbac.yaml`.
async fn operator_service_account_client() -> Client {
    let cluster = KubeCluster::shared();
    let admin = cluster.client().await;
    let namespaces: Api<Namespace> = Api::all(admin);
    let wharf_system =
        serde_json::from_value(json!({"metadata": {"name": "wharf-system"}})).expect("namespace");
    match namespaces
        .create(&PostParams::default(), &wharf_system)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("cannot create wharf-system: {error}"),
    }
    let rbac = wharf_tests::workspace_root().join("deploy/rbac.yaml");
    let applied = cluster.kubectl_output(&["apply", "-f", &rbac.to_string_lossy()]);
    assert!(
        applied.status.success(),
        "deploy/rbac.yaml applies: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig is readable");
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("kubeconfig is valid");
    config.auth_info.impersonate =
        Some("system:serviceaccount:wharf-system:wharf-operator".to_owned());
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".to_owned(),
        "system:serviceaccounts:wharf-system".to_owned(),
        "system:authenticated".to_owned(),
    ]);
    Client::try_from(config).expect("client builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_with_nothing_but_its_rbac() {
    let admin = cluster_with_crds().await;
    let ns = namespace(&admin, "operator").await;
    let restricted = operator_service_account_client().await;
    let queue = format!("https://sqs.eu-west-2.amazonaws.com/123456789012/{ns}");
    let backend = MemoryBackend::new();
    backend.create_queue(&queue);
    for i in 0..15 {
        backend
            .send_message(
                &queue,
                OutgoingMessage {
                    body: format!("{{\"n\":{i}}}"),
                    ..OutgoingMessage::default()
                },
            )
            .expect("send");
    }
    let pipelines: Api<Pipeline> = Api::namespaced(admin.clone(), &ns);
    let scaling = json!({"scaling": {
        "minReplicas": 0, "maxReplicas": 5, "targetBacklogPerReplica": 10, "pollIntervalSeconds": 1
    }});
    pipelines
        .create(
            &PostParams::default(),
            &pipeline("rbac", &queue, "events", scaling),
        )
        .await
        .expect("Pipeline is accepted");

    let stop = CancellationToken::new();
    // Only the Lease named in deploy/rbac.yaml may be read and renewed.
    let mut lease = LeaseSettings::new("wharf-operator", "operator-under-test");
    lease.retry_period = Duration::from_millis(500);
    let config = OperatorConfig {
        worker_image: "registry.local/wharf:test".to_owned(),
        namespace: Some(ns.clone()),
        election: Some(wharf_operator::Election {
            namespace: "wharf-system".to_owned(),
            lease,
        }),
        instance: Some("operator-under-test".to_owned()),
        autoscaling: true,
    };
    let task = tokio::spawn(wharf_operator::run(
        restricted,
        config,
        backends::fixed(Arc::new(backend.clone())),
        Metrics::default(),
        stop.clone(),
    ));

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    eventually(
        "2 replicas for 15 messages, written as the service account",
        WAIT,
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get_opt("rbac-worker").await.ok()??;
                (d.spec?.replicas == Some(2)).then_some(())
            }
        },
    )
    .await;
    eventually("the status written as the service account", WAIT, || {
        let pipelines = pipelines.clone();
        async move {
            let status = pipelines.get("rbac").await.ok()?.status?;
            (status.last_scale.as_ref()?.to == 2 && status.backlog.is_some()).then_some(())
        }
    })
    .await;
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns);
    eventually(
        "a ScaledUp Event published as the service account",
        WAIT,
        || {
            let events = events.clone();
            async move {
                events
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("ScaledUp"))
            }
        },
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "wharf-system");
    let held = leases.get("wharf-operator").await.expect("Lease exists");
    assert_eq!(
        held.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("operator-under-test")
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the operator stops on cancellation")
        .expect("no panic")
        .expect("the operator ran without errors");
    let released = leases.get("wharf-operator").await.expect("Lease exists");
    assert_eq!(
        released.spec.and_then(|s| s.holder_identity),
        None,
        "the Lease is released on shutdown"
    );
}
