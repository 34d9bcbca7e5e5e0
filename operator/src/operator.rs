//! Putting the operator together: the Pipeline controller and its scaler loops, run only while
//! this replica holds the leader Lease (or always, when election is off).

use std::sync::Arc;

use futures::channel::mpsc;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use tokio_util::sync::CancellationToken;
use tracing::info;
use wharf_crds::Pipeline;

use crate::controller::{self, Context, NoScalers, ScalerControl, Scope};
use crate::leader::{LeaderElector, LeaseSettings};
use crate::metrics::Metrics;
use crate::resources::WorkerDefaults;
use crate::scale_reports::ScaleReports;
use crate::scaler_loop::{BackendFactory, ScalerShared, Scalers};

/// Pending status refreshes asked for by scaler loops; more are dropped (one is enough).
const REFRESH_QUEUE: usize = 256;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Worker image for Pipelines that do not name one.
    pub worker_image: String,
    /// Watch only this namespace; `None` watches the whole cluster.
    pub namespace: Option<String>,
    /// Leader election; `None` runs the controllers at once (a single replica).
    pub election: Option<Election>,
    /// This replica's name in Events (its pod name).
    pub instance: Option<String>,
    /// Run the queue-depth autoscaler loops.
    pub autoscaling: bool,
}

/// Where the leader Lease lives.
#[derive(Clone, Debug)]
pub struct Election {
    pub namespace: String,
    pub lease: LeaseSettings,
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(
        "cannot build a Kubernetes client: {0}; run in a pod with a service account, or set \
         KUBECONFIG"
    )]
    NoCluster(kube::Error),
    #[error(
        "the Pipeline CRD (pipelines.wharf.dev) is not installed or not readable: {0}; \
         install it with `wharf crds | kubectl apply -f -` and check the operator's RBAC"
    )]
    CrdMissing(kube::Error),
}

/// A client from the in-cluster service account, or from `KUBECONFIG` / `~/.kube/config`.
pub async fn connect() -> Result<Client, OperatorError> {
    Client::try_default()
        .await
        .map_err(OperatorError::NoCluster)
}

/// Fails early, with a fix, when Pipelines cannot be listed.
pub async fn check_crd(client: &Client, namespace: Option<&str>) -> Result<(), OperatorError> {
    let pipelines: Api<Pipeline> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    pipelines
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(OperatorError::CrdMissing)?;
    Ok(())
}

/// Runs until `shutdown`: campaigns for the Lease and runs the controllers while leading.
pub async fn run(
    client: Client,
    config: OperatorConfig,
    backends: BackendFactory,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<(), OperatorError> {
    check_crd(&client, config.namespace.as_deref()).await?;
    match config.election.clone() {
        None => {
            metrics.leader.set(1);
            run_controllers(client, config, backends, metrics.clone(), shutdown).await;
            metrics.leader.set(0);
        }
        Some(election) => {
            let leases = Api::namespaced(client.clone(), &election.namespace);
            let elector = LeaderElector::new(leases, election.lease);
            let gauge = metrics.leader.clone();
            elector
                .run(
                    shutdown,
                    move |leading| {
                        run_controllers(
                            client.clone(),
                            config.clone(),
                            backends.clone(),
                            metrics.clone(),
                            leading,
                        )
                    },
                    move |leading| {
                        gauge.set(i64::from(leading));
                    },
                )
                .await;
        }
    }
    Ok(())
}

/// The controller and, when enabled, the scaler loops, until `stop`.
pub async fn run_controllers(
    client: Client,
    config: OperatorConfig,
    backends: BackendFactory,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let scope = Scope {
        namespace: config.namespace.clone(),
    };
    let built = controller::controller(&client, &scope);
    let (refresh, refreshes) = mpsc::channel(REFRESH_QUEUE);
    let reports = ScaleReports::default();
    let reporter = Reporter {
        controller: controller::FIELD_MANAGER.to_owned(),
        instance: config.instance.clone(),
    };
    let scalers: Arc<dyn ScalerControl> = if config.autoscaling {
        let recorder = kube::runtime::events::Recorder::new(client.clone(), reporter.clone());
        Arc::new(Scalers::new(
            ScalerShared {
                client: client.clone(),
                recorder,
                reports: reports.clone(),
                backends,
                store: built.store(),
                refresh,
                metrics: metrics.clone(),
            },
            stop.clone(),
        ))
    } else {
        Arc::new(NoScalers)
    };
    let ctx = Context::new(
        client,
        reporter,
        WorkerDefaults {
            image: config.worker_image.clone(),
        },
        reports,
        scalers,
    )
    .with_metrics(metrics);
    info!(namespace = ?config.namespace, autoscaling = config.autoscaling, "Pipeline controller starting");
    controller::run(built, refreshes, Arc::new(ctx), stop).await;
    info!("Pipeline controller stopped");
}
