//! What the operator tests against the real API server share: the CRDs installed once per test
//! process, a fresh namespace per test, polling with a deadline, and the operator run in this
//! process until the test stops it.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{KubeCluster, unique_name};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use wharf_crds::crdgen::{CelRules, all_crds};
use wharf_operator::metrics::Metrics;
use wharf_operator::scaler_loop::BackendFactory;
use wharf_operator::{CancellationToken, OperatorConfig, run_controllers};

/// Installs the no-CEL CRDs (the test cluster is Kubernetes 1.20) once per test process.
pub async fn cluster_with_crds() -> Client {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let client = KubeCluster::shared().client().await;
    if INSTALLED.get().is_none() {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in all_crds(CelRules::Omit) {
            crds.patch(
                &crd.name_any(),
                &PatchParams::apply("wharf-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("CRD applies");
        }
        eventually(
            "the Pipeline CRD to be established",
            Duration::from_secs(60),
            || {
                let crds = crds.clone();
                async move {
                    let crd = crds.get("pipelines.wharf.dev").await.ok()?;
                    crd.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await;
        let _ = INSTALLED.set(());
    }
    client
}

/// A namespace of its own for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace"),
        )
        .await
        .expect("namespace is created");
    name
}

/// Polls `check` every 100 ms until it yields a value, failing after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Pipeline controller and its scaler loops, run in this process for one namespace.
pub struct InProcessOperator {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl InProcessOperator {
    pub fn start(client: &Client, namespace: &str, backends: BackendFactory) -> Self {
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
            backends,
            Metrics::default(),
            stop.clone(),
        ));
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the operator stops on cancellation")
            .expect("the operator task does not panic");
    }
}
