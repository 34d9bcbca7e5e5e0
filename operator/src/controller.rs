//! The Pipeline controller: validate, apply the owned ConfigMap and Deployment, write the whole
//! status as observed, publish Events on transitions. Every write is a server-side apply by
//! one field manager, so reconcile is idempotent and never assumes what it did last time.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wharf_crds::pipeline::PipelineStatus;
use wharf_crds::{Pipeline, Validate, problem};

use crate::conditions::{self, DEGRADED, Observed, READY, SCALING, reason};
use crate::metrics::{Metrics, pipeline_labels};
use crate::resources::{self, WorkerDefaults};
use crate::scale_reports::{ScaleReport, ScaleReports};

/// The one field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "wharf-operator";
/// How often a healthy Pipeline is looked at again even without a change.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How often an invalid Pipeline is looked at again: its spec changing triggers a reconcile
/// anyway, so this only bounds how stale its status can get.
pub const INVALID_RESYNC: Duration = Duration::from_secs(900);
/// Wait after a failed reconcile (API server unreachable, conflict, ...).
pub const ERROR_RETRY: Duration = Duration::from_secs(30);

/// Starts and stops the per-Pipeline autoscaler loops; the controller says which should run.
pub trait ScalerControl: Send + Sync {
    /// Runs (or keeps running, or restarts after a spec change) the Pipeline's scaler.
    fn ensure_running(&self, pipeline: &Pipeline);
    /// Stops the Pipeline's scaler, if one runs.
    fn stop(&self, pipeline: &ObjectRef<Pipeline>);
}

/// For a controller without autoscaler loops (tests, `--no-autoscaler`).
#[derive(Debug, Default)]
pub struct NoScalers;

impl ScalerControl for NoScalers {
    fn ensure_running(&self, _pipeline: &Pipeline) {}
    fn stop(&self, _pipeline: &ObjectRef<Pipeline>) {}
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub defaults: WorkerDefaults,
    pub reports: ScaleReports,
    pub scalers: Arc<dyn ScalerControl>,
    pub metrics: Metrics,
}

impl Context {
    pub fn new(
        client: Client,
        reporter: Reporter,
        defaults: WorkerDefaults,
        reports: ScaleReports,
        scalers: Arc<dyn ScalerControl>,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            defaults,
            reports,
            scalers,
            metrics: Metrics::default(),
        }
    }

    /// Counts into `metrics` (registered by the caller) instead of private series.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

/// Why a reconcile failed; it is retried after [`ERROR_RETRY`].
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Pipeline `{0}` has no namespace; Pipelines are namespaced")]
    MissingNamespace(String),
    #[error(transparent)]
    Resources(#[from] resources::ResourceError),
    #[error("Pipeline `{pipeline}`: {action} failed: {source}")]
    Kube {
        pipeline: String,
        action: &'static str,
        #[source]
        source: kube::Error,
    },
}

fn kube_error(pipeline: &str, action: &'static str) -> impl FnOnce(kube::Error) -> ReconcileError {
    let pipeline = pipeline.to_owned();
    move |source| ReconcileError::Kube {
        pipeline,
        action,
        source,
    }
}

/// Brings one Pipeline's objects and status in line with its spec.
pub async fn reconcile(
    pipeline: Arc<Pipeline>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let name = pipeline.name_any();
    let namespace = pipeline
        .namespace()
        .ok_or_else(|| ReconcileError::MissingNamespace(name.clone()))?;
    let problems = pipeline.validate();
    if !problems.is_empty() {
        return report_invalid(&pipeline, &ctx, &namespace, &problems).await;
    }

    let params = PatchParams::apply(FIELD_MANAGER).force();
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let config_map = resources::config_map(&pipeline)?;
    config_maps
        .patch(
            &resources::worker_name(&pipeline),
            &params,
            &Patch::Apply(&config_map),
        )
        .await
        .map_err(kube_error(&name, "applying the worker ConfigMap"))?;

    let report = ctx.reports.get(&ObjectRef::from_obj(pipeline.as_ref()));
    let replicas = desired_replicas(&pipeline, report.as_ref());
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let deployment = resources::deployment(&pipeline, replicas, &ctx.defaults)?;
    let applied = deployments
        .patch(
            &resources::worker_name(&pipeline),
            &params,
            &Patch::Apply(&deployment),
        )
        .await
        .map_err(kube_error(&name, "applying the worker Deployment"))?;

    if pipeline.spec.scaling.is_some() {
        ctx.scalers.ensure_running(&pipeline);
    } else {
        ctx.scalers.stop(&ObjectRef::from_obj(pipeline.as_ref()));
    }

    let previous = pipeline.status.clone().unwrap_or_default();
    let observed = observe(&pipeline, replicas, &applied, report.as_ref());
    let status = PipelineStatus {
        observed_generation: pipeline.metadata.generation,
        conditions: conditions::build(
            &observed,
            &previous.conditions,
            pipeline.metadata.generation,
            Timestamp::now(),
        ),
        processor: pipeline.spec.processor.kind().map(|k| k.to_string()),
        replicas: applied
            .status
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0),
        ready_replicas: applied
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        desired_replicas: Some(replicas),
        backlog: report
            .as_ref()
            .and_then(|r| r.backlog.clone())
            .or(previous.backlog.clone()),
        last_scale: report
            .as_ref()
            .and_then(|r| r.last_scale.clone())
            .or(previous.last_scale.clone()),
        processed: None,
        failed: None,
        dead_lettered: None,
        selector: Some(resources::selector_string(&name)),
    };
    apply_status(&ctx, &pipeline, &namespace, &status).await?;
    publish_transitions(&ctx, &pipeline, &observed, &previous.conditions).await;
    let labels = pipeline_labels(&namespace, &name);
    ctx.metrics.reconciliations.get_or_create(&labels).inc();
    ctx.metrics
        .desired_replicas
        .get_or_create(&labels)
        .set(i64::from(replicas));
    debug!(pipeline = %name, %namespace, replicas, "reconciled");
    Ok(Action::requeue(RESYNC))
}

/// An invalid spec: `Ready=False` with every problem in the message, a Warning Event on the
/// transition, the scaler stopped and the workers left exactly as they are.
async fn report_invalid(
    pipeline: &Pipeline,
    ctx: &Context,
    namespace: &str,
    problems: &[wharf_crds::Problem],
) -> Result<Action, ReconcileError> {
    let name = pipeline.name_any();
    // A condition message holds at most 32 KiB.
    let message = truncate(&problem::render(problems), 32 * 1024 - 8);
    info!(pipeline = %name, %namespace, %message, "invalid Pipeline; leaving its workers alone");
    ctx.scalers.stop(&ObjectRef::from_obj(pipeline));
    let observed = [
        Observed::new(READY, false, reason::INVALID_SPEC, message),
        Observed::new(
            SCALING,
            false,
            reason::INVALID_SPEC,
            "not scaled while the spec is invalid",
        ),
        Observed::new(
            DEGRADED,
            false,
            reason::INVALID_SPEC,
            "workers are left as they are until the spec is fixed",
        ),
    ];
    let previous = pipeline.status.clone().unwrap_or_default();
    let status = PipelineStatus {
        observed_generation: pipeline.metadata.generation,
        conditions: conditions::build(
            &observed,
            &previous.conditions,
            pipeline.metadata.generation,
            Timestamp::now(),
        ),
        processor: pipeline.spec.processor.kind().map(|k| k.to_string()),
        selector: Some(resources::selector_string(&name)),
        // Not observed this time: what was last seen stays, and nothing owned by others.
        processed: None,
        failed: None,
        dead_lettered: None,
        ..previous.clone()
    };
    apply_status(ctx, pipeline, namespace, &status).await?;
    publish_transitions(ctx, pipeline, &observed, &previous.conditions).await;
    Ok(Action::requeue(INVALID_RESYNC))
}

/// The replica count the Deployment is applied with: `spec.replicas` without autoscaling;
/// with it, the autoscaler's latest wish (from this process, or from the status a previous
/// leader wrote), else `minReplicas`, always within the policy's bounds.
pub fn desired_replicas(pipeline: &Pipeline, report: Option<&ScaleReport>) -> i32 {
    match &pipeline.spec.scaling {
        None => pipeline.spec.replicas.max(0),
        Some(policy) => {
            let min = policy.min_replicas.max(0);
            let max = policy.max_replicas.max(min);
            report
                .and_then(|r| r.desired_replicas)
                .or_else(|| pipeline.status.as_ref().and_then(|s| s.desired_replicas))
                .unwrap_or(min)
                .max(min)
                .min(max)
        }
    }
}

/// The three conditions of a valid Pipeline, from its applied Deployment and its scaler.
fn observe(
    pipeline: &Pipeline,
    replicas: i32,
    deployment: &Deployment,
    report: Option<&ScaleReport>,
) -> [Observed; 3] {
    let status = deployment.status.as_ref();
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let ready_condition = if replicas == 0 {
        let why = if pipeline.spec.scaling.is_some() {
            "no messages waiting; workers start when messages arrive"
        } else {
            "spec.replicas is 0"
        };
        Observed::new(READY, true, reason::SCALED_TO_ZERO, why)
    } else if ready >= replicas {
        Observed::new(
            READY,
            true,
            reason::WORKERS_READY,
            format!("{ready} of {replicas} pods ready"),
        )
    } else {
        Observed::new(
            READY,
            false,
            reason::WORKERS_STARTING,
            format!("{ready} of {replicas} pods ready"),
        )
    };

    let scaling_condition = match &pipeline.spec.scaling {
        Some(_) => Observed::new(
            SCALING,
            true,
            reason::AUTOSCALING,
            report
                .and_then(|r| r.last_reason.clone())
                .unwrap_or_else(|| "waiting for the first queue-depth poll".to_owned()),
        ),
        None => Observed::new(
            SCALING,
            false,
            reason::FIXED_REPLICAS,
            format!(
                "spec.scaling is unset; spec.replicas = {}",
                pipeline.spec.replicas
            ),
        ),
    };

    let failing = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| {
            (c.type_ == "ReplicaFailure" && c.status == "True")
                || (c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        });
    let degraded_condition = if let Some(error) = report.and_then(|r| r.queue_error.clone()) {
        Observed::new(DEGRADED, true, reason::QUEUE_UNREACHABLE, error)
    } else if let Some(c) = failing {
        Observed::new(
            DEGRADED,
            true,
            reason::DEPLOYMENT_FAILING,
            c.message.clone().unwrap_or_else(|| c.type_.clone()),
        )
    } else {
        Observed::new(
            DEGRADED,
            false,
            reason::AS_EXPECTED,
            "workers and queue are reachable",
        )
    };
    [ready_condition, scaling_condition, degraded_condition]
}

/// Writes the whole status by server-side apply on the status subresource.
async fn apply_status(
    ctx: &Context,
    pipeline: &Pipeline,
    namespace: &str,
    status: &PipelineStatus,
) -> Result<(), ReconcileError> {
    let name = pipeline.name_any();
    let pipelines: Api<Pipeline> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": Pipeline::api_version(&()),
        "kind": Pipeline::kind(&()),
        "status": status,
    });
    pipelines
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(kube_error(&name, "applying the status"))?;
    Ok(())
}

/// Publishes an Event for each `Ready` transition and each `Degraded` one except the first
/// "all is well". A failed publish is logged, never fails the reconcile.
async fn publish_transitions(
    ctx: &Context,
    pipeline: &Pipeline,
    observed: &[Observed],
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) {
    let reference = pipeline.object_ref(&());
    for change in conditions::transitions(observed, previous) {
        let first = !previous.iter().any(|p| p.type_ == change.type_);
        let wanted = match change.type_ {
            READY => true,
            DEGRADED => change.status || !first,
            _ => false,
        };
        if !wanted {
            continue;
        }
        let warning =
            (change.type_ == READY && !change.status && change.reason == reason::INVALID_SPEC)
                || (change.type_ == DEGRADED && change.status);
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: change.reason.to_owned(),
            note: Some(truncate(&change.message, 1000)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            warn!(pipeline = %pipeline.name_any(), %error, "cannot publish event {}", change.reason);
        }
    }
}

/// At most `max` bytes, cut at a character boundary (Event notes are limited to 1 kB).
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Retry policy after a failed reconcile.
pub fn error_policy(pipeline: Arc<Pipeline>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let labels = pipeline_labels(
        pipeline.namespace().as_deref().unwrap_or_default(),
        &pipeline.name_any(),
    );
    ctx.metrics.reconcile_failures.get_or_create(&labels).inc();
    warn!(pipeline = %pipeline.name_any(), %error, "reconcile failed; retrying in {}s", ERROR_RETRY.as_secs());
    Action::requeue(ERROR_RETRY)
}

/// Where the controller watches.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Only this namespace; `None` watches all.
    pub namespace: Option<String>,
}

/// Builds the Pipeline controller: watches Pipelines and the ConfigMaps and Deployments they
/// own, plus explicit triggers (the scaler loops asking for a status refresh).
pub fn controller(client: &Client, scope: &Scope) -> Controller<Pipeline> {
    let (pipelines, config_maps, deployments): (Api<Pipeline>, Api<ConfigMap>, Api<Deployment>) =
        match &scope.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
        };
    let owned = watcher::Config::default()
        .labels(&format!("app.kubernetes.io/name={}", resources::WORKER_APP));
    Controller::new(pipelines, watcher::Config::default())
        .owns(config_maps, owned.clone())
        .owns(deployments, owned)
}

/// Runs a built controller until `shutdown`, reconciling on `triggers` too.
pub async fn run(
    controller: Controller<Pipeline>,
    triggers: impl Stream<Item = ObjectRef<Pipeline>> + Send + 'static,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) {
    controller
        .reconcile_on(triggers)
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(pipeline = %object.name, "reconciled"),
                Err(error) => warn!(%error, "reconcile error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
