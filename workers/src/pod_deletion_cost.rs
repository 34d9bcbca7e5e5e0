//! Keeps the worker pod's `controller.kubernetes.io/pod-deletion-cost` annotation at the number
//! of messages it holds, so that a scale-down removes idle pods before busy ones (the
//! ReplicaSet controller deletes pods with the lowest cost first).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The annotation the ReplicaSet controller reads.
pub const ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
/// How often the load is looked at; the pod is patched only when the cost changes.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Patches this pod's deletion cost.
pub struct PodDeletionCost {
    pods: Api<Pod>,
    pod: String,
    reported: Option<i64>,
}

impl PodDeletionCost {
    /// For the pod named by `POD_NAME` in `POD_NAMESPACE` (set by the operator through the
    /// downward API); `None` when not running in a pod or no cluster is reachable.
    pub async fn from_environment() -> Option<Self> {
        let pod = std::env::var("POD_NAME").ok().filter(|v| !v.is_empty())?;
        let namespace = std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|v| !v.is_empty())?;
        match kube::Client::try_default().await {
            Ok(client) => Some(Self {
                pods: Api::namespaced(client, &namespace),
                pod,
                reported: None,
            }),
            Err(error) => {
                warn!(%error, "no Kubernetes client: the pod-deletion-cost annotation will not be kept");
                None
            }
        }
    }

    /// Sets the cost to `held` messages, if it changed since the last report.
    pub async fn report(&mut self, held: usize) -> Result<(), kube::Error> {
        let cost = i64::try_from(held).unwrap_or(i64::MAX);
        if self.reported == Some(cost) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {ANNOTATION: cost.to_string()}}});
        self.pods
            .patch(&self.pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        debug!(pod = %self.pod, cost, "pod deletion cost updated");
        self.reported = Some(cost);
        Ok(())
    }

    /// Reports `load()` every [`REPORT_INTERVAL`] until `stop` is cancelled.
    pub async fn keep_updated(mut self, load: impl Fn() -> usize, stop: CancellationToken) {
        info!(pod = %self.pod, "keeping {ANNOTATION} up to date");
        loop {
            if let Err(error) = self.report(load()).await {
                warn!(%error, "could not update {ANNOTATION}");
            }
            tokio::select! {
                _ = tokio::time::sleep(REPORT_INTERVAL) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
