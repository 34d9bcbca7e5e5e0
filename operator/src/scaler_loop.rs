//! One autoscaler loop per autoscaled Pipeline: every `pollIntervalSeconds` it reads the queue
//! depth, asks [`crate::autoscaler::decide`] for a replica count, patches the Deployment's
//! replicas when that changes (with an Event saying why), and records what it saw in
//! [`ScaleReports`] before asking the controller to refresh the status. A queue that cannot be
//! read marks the Pipeline `Degraded` and leaves the replicas alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wharf_crds::pipeline::{Backlog, ScaleChange, ScalingPolicy};
use wharf_crds::{AwsSettings, Pipeline};
use wharf_workers::io::{Backend, IoError, Queue};

use crate::autoscaler::{BacklogObservation, ScalerState, decide};
use crate::controller::{FIELD_MANAGER, ScalerControl};
use crate::metrics::{Metrics, ScaleLabels};
use crate::resources;
use crate::scale_reports::ScaleReports;

/// Longest wait for one queue-depth read; a slower queue counts as unreachable this poll.
pub const DEPTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the backend (AWS, an AWS-compatible endpoint, or the embedded one) for a Pipeline's
/// `spec.aws` settings.
pub type BackendFactory =
    Arc<dyn Fn(Option<AwsSettings>) -> BoxFuture<'static, Arc<dyn Backend>> + Send + Sync>;

/// What a scaler loop needs to know of its Pipeline; a change restarts the loop.
#[derive(Clone, Debug, PartialEq)]
struct ScalerSpec {
    policy: ScalingPolicy,
    queue_url: String,
    dead_letter_url: Option<String>,
    aws: Option<AwsSettings>,
}

impl ScalerSpec {
    fn of(pipeline: &Pipeline) -> Option<Self> {
        Some(Self {
            policy: pipeline.spec.scaling.clone()?,
            queue_url: pipeline.spec.sqs()?.queue_url.clone(),
            dead_letter_url: pipeline
                .spec
                .dead_letter
                .as_ref()
                .map(|d| d.sqs.queue_url.clone()),
            aws: pipeline.spec.aws.clone(),
        })
    }
}

/// Shared by every scaler loop.
#[derive(Clone)]
pub struct ScalerShared {
    pub client: Client,
    pub recorder: Recorder,
    pub reports: ScaleReports,
    pub backends: BackendFactory,
    /// The controller's cache: a Pipeline gone from it is deleted, and its loop ends.
    pub store: Store<Pipeline>,
    /// Asks the controller to reconcile a Pipeline (and so to write its status).
    pub refresh: mpsc::Sender<ObjectRef<Pipeline>>,
    pub metrics: Metrics,
}

struct Running {
    spec: ScalerSpec,
    stop: CancellationToken,
}

/// The running loops, started and stopped by the controller.
pub struct Scalers {
    shared: ScalerShared,
    running: Mutex<HashMap<ObjectRef<Pipeline>, Running>>,
    shutdown: CancellationToken,
}

impl Scalers {
    /// Loops end on `shutdown` (losing leadership, SIGTERM) as well as on `stop`.
    pub fn new(shared: ScalerShared, shutdown: CancellationToken) -> Self {
        Self {
            shared,
            running: Mutex::new(HashMap::new()),
            shutdown,
        }
    }
}

impl Scalers {
    /// Whether a loop is running for the Pipeline.
    pub fn is_running(&self, pipeline: &ObjectRef<Pipeline>) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(pipeline)
            .is_some_and(|r| !r.stop.is_cancelled())
    }
}

impl ScalerControl for Scalers {
    fn ensure_running(&self, pipeline: &Pipeline) {
        let key = ObjectRef::from_obj(pipeline);
        let Some(spec) = ScalerSpec::of(pipeline) else {
            self.stop(&key);
            return;
        };
        // A reconcile that lands while the operator shuts down must not start loops that
        // would be cancelled at once.
        if self.shutdown.is_cancelled() {
            return;
        }
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = running.get(&key) {
            if current.spec == spec && !current.stop.is_cancelled() {
                return;
            }
            current.stop.cancel();
        }
        let stop = self.shutdown.child_token();
        info!(pipeline = %key.name, queue = %spec.queue_url, "starting autoscaler");
        tokio::spawn(run(
            self.shared.clone(),
            key.clone(),
            spec.clone(),
            stop.clone(),
        ));
        running.insert(key, Running { spec, stop });
    }

    fn stop(&self, pipeline: &ObjectRef<Pipeline>) {
        let removed = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pipeline);
        if let Some(running) = removed {
            info!(pipeline = %pipeline.name, "stopping autoscaler");
            running.stop.cancel();
            self.shared.reports.remove(pipeline);
        }
    }
}

/// Why the source queue's depth could not be read this poll.
#[derive(Debug, thiserror::Error)]
pub enum DepthError {
    #[error(
        "reading the depth of {queue} timed out after {seconds}s; replicas are left as they are"
    )]
    Timeout { queue: String, seconds: u64 },
    #[error("{0}; replicas are left as they are")]
    Queue(#[from] IoError),
}

/// The queues a loop polls.
pub struct PipelineQueues {
    pub source: Arc<dyn Queue>,
    pub dead_letter: Option<Arc<dyn Queue>>,
}

impl PipelineQueues {
    /// Reads the source (and dead-letter) queue depth, each read bounded by [`DEPTH_TIMEOUT`].
    pub async fn observe(&self, now: Timestamp) -> Result<BacklogObservation, DepthError> {
        let source = &self.source;
        let depth = tokio::time::timeout(DEPTH_TIMEOUT, source.depth())
            .await
            .map_err(|_| DepthError::Timeout {
                queue: source.url().to_owned(),
                seconds: DEPTH_TIMEOUT.as_secs(),
            })??;
        // The dead-letter count is informative only: failing to read it never blocks scaling.
        let dead_letter = match &self.dead_letter {
            Some(queue) => match tokio::time::timeout(DEPTH_TIMEOUT, queue.depth()).await {
                Ok(Ok(d)) => Some(d.visible),
                Ok(Err(error)) => {
                    debug!(queue = %queue.url(), %error, "dead-letter depth unavailable");
                    None
                }
                Err(_) => None,
            },
            None => None,
        };
        Ok(BacklogObservation {
            visible: depth.visible,
            in_flight: depth.in_flight,
            delayed: depth.delayed,
            dead_letter,
            observed_at: now,
        })
    }
}

/// One Pipeline's loop: polls until stopped or the Pipeline is gone.
async fn run(
    shared: ScalerShared,
    key: ObjectRef<Pipeline>,
    spec: ScalerSpec,
    stop: CancellationToken,
) {
    let backend = tokio::select! {
        () = stop.cancelled() => return,
        backend = (shared.backends)(spec.aws.clone()) => backend,
    };
    let queues = PipelineQueues {
        source: backend.queue(&spec.queue_url),
        dead_letter: spec
            .dead_letter_url
            .as_deref()
            .map(|url| backend.queue(url)),
    };
    let poll =
        Duration::from_secs(u64::try_from(spec.policy.poll_interval_seconds.max(1)).unwrap_or(1));
    let mut interval = tokio::time::interval(poll);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scaler = PipelineScaler::new(shared.clone(), key.clone(), spec.policy.clone(), queues);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        let Some(pipeline) = shared.store.get(&key) else {
            debug!(pipeline = %key.name, "Pipeline is gone; autoscaler ends");
            break;
        };
        // A poll stuck on an unresponsive API server must not delay a stop.
        tokio::select! {
            () = stop.cancelled() => break,
            _ = scaler.poll(&pipeline, Timestamp::now()) => {}
        }
    }
    // Marks this loop finished, so a Pipeline re-created with the same spec gets a new one.
    stop.cancel();
    shared.reports.remove(&key);
}

/// What one poll did, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// Replicas changed from `from` to `to`.
    Scaled { from: i32, to: i32 },
    /// Replicas left as they are.
    Held { replicas: i32 },
    /// The queue could not be read; replicas left as they are.
    QueueUnreachable,
    /// The Deployment could not be read or patched; nothing changed.
    DeploymentUnavailable,
}

/// The state of one Pipeline's autoscaler between polls.
pub struct PipelineScaler {
    shared: ScalerShared,
    key: ObjectRef<Pipeline>,
    policy: ScalingPolicy,
    queues: PipelineQueues,
    state: Option<ScalerState>,
}

impl PipelineScaler {
    pub fn new(
        shared: ScalerShared,
        key: ObjectRef<Pipeline>,
        policy: ScalingPolicy,
        queues: PipelineQueues,
    ) -> Self {
        Self {
            shared,
            key,
            policy,
            queues,
            state: None,
        }
    }

    /// One poll: read the Deployment's replicas and the queue depth, decide, act, report.
    pub async fn poll(&mut self, pipeline: &Pipeline, now: Timestamp) -> PollOutcome {
        let name = resources::worker_name(pipeline);
        let namespace = self.key.namespace.clone().unwrap_or_default();
        let deployments: Api<Deployment> = Api::namespaced(self.shared.client.clone(), &namespace);

        let current = match deployments.get_scale(&name).await {
            Ok(scale) => scale.spec.and_then(|s| s.replicas).unwrap_or(0),
            Err(error) => {
                debug!(pipeline = %self.key.name, %error, "worker Deployment not readable yet");
                return PollOutcome::DeploymentUnavailable;
            }
        };
        // Someone (or a previous leader) may have changed the count: start from what is there.
        let state = match self.state {
            Some(state) => ScalerState {
                current_replicas: current,
                ..state
            },
            None => ScalerState::starting_at(current),
        };

        let observation = match self.queues.observe(now).await {
            Ok(observation) => observation,
            Err(error) => {
                let message = error.to_string();
                let mut changed = false;
                self.shared.reports.update(&self.key, |report| {
                    changed = report.queue_error.as_deref() != Some(message.as_str());
                    report.queue_error = Some(message.clone());
                });
                warn!(pipeline = %self.key.name, %message, "queue depth unavailable; replicas left at {current}");
                if changed {
                    self.refresh();
                }
                return PollOutcome::QueueUnreachable;
            }
        };

        let decision = decide(&self.policy, &observation, &state);
        let mut outcome = PollOutcome::Held { replicas: current };
        let mut scale_change = None;
        if decision.changes(&state) {
            // Recorded first: a reconcile the patch triggers must apply the new count, not
            // the old one (which would undo the patch for a moment and kill pods).
            self.shared.reports.update(&self.key, |report| {
                report.desired_replicas = Some(decision.replicas);
            });
            let patch = Patch::Merge(json!({"spec": {"replicas": decision.replicas}}));
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            if let Err(error) = deployments.patch_scale(&name, &params, &patch).await {
                warn!(pipeline = %self.key.name, %error, "cannot scale {name} to {}", decision.replicas);
                return PollOutcome::DeploymentUnavailable;
            }
            info!(pipeline = %self.key.name, from = current, to = decision.replicas, reason = %decision.reason, "scaled");
            self.publish_scale_event(pipeline, current, decision.replicas, &decision.reason)
                .await;
            scale_change = Some(ScaleChange {
                time: Time(now),
                from: current,
                to: decision.replicas,
                reason: decision.reason.clone(),
            });
            self.shared
                .metrics
                .scale_changes
                .get_or_create(&ScaleLabels {
                    namespace: namespace.clone(),
                    pipeline: self.key.name.clone(),
                    direction: if decision.replicas > current {
                        "up"
                    } else {
                        "down"
                    }
                    .to_owned(),
                })
                .inc();
            outcome = PollOutcome::Scaled {
                from: current,
                to: decision.replicas,
            };
        }
        self.state = Some(decision.next);

        let backlog = Backlog {
            visible: to_i64(observation.visible),
            in_flight: to_i64(observation.in_flight),
            delayed: to_i64(observation.delayed),
            dead_letter: observation.dead_letter.map(to_i64),
            observed_at: Time(observation.observed_at),
        };
        let mut worth_a_status = scale_change.is_some();
        self.shared.reports.update(&self.key, |report| {
            let counts = |b: &Backlog| (b.visible, b.in_flight, b.delayed, b.dead_letter);
            worth_a_status |= report.queue_error.is_some()
                || report.backlog.as_ref().map(counts) != Some(counts(&backlog))
                || report.desired_replicas != Some(decision.replicas)
                || report.last_reason.is_none();
            report.queue_error = None;
            report.backlog = Some(backlog);
            report.desired_replicas = Some(decision.replicas);
            report.last_reason = Some(decision.reason.clone());
            if let Some(change) = scale_change {
                report.last_scale = Some(change);
            }
        });
        if worth_a_status {
            self.refresh();
        }
        outcome
    }

    /// A Normal Event `ScaledUp` / `ScaledDown` whose note is the decision's reason.
    async fn publish_scale_event(&self, pipeline: &Pipeline, from: i32, to: i32, reason: &str) {
        let event = Event {
            type_: EventType::Normal,
            reason: if to > from { "ScaledUp" } else { "ScaledDown" }.to_owned(),
            note: Some(format!("{from} → {to}: {reason}")),
            action: "Scale".to_owned(),
            secondary: None,
        };
        if let Err(error) = self
            .shared
            .recorder
            .publish(&event, &pipeline.object_ref(&()))
            .await
        {
            warn!(pipeline = %pipeline.name_any(), %error, "cannot publish scale event");
        }
    }

    fn refresh(&mut self) {
        // A full channel means a reconcile of some Pipeline is already pending; the status
        // catches up on the next poll that changes something.
        if let Err(error) = self.shared.refresh.try_send(self.key.clone()) {
            debug!(pipeline = %self.key.name, %error, "status refresh not queued");
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
