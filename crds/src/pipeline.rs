//! The `Pipeline` resource: a queue, a processor, the sinks its results go to, and how the
//! workers that run it are sized and scaled.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::AwsSettings;
use crate::{defaults, rules};

/// A queue-driven workload: where messages come from, what processes them, where the results
/// go, and how the worker pods that run it are sized and scaled.
// Several `printcolumn(...)` entries repeat keys such as `type_` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "wharf.dev",
    version = "v1alpha1",
    kind = "Pipeline",
    namespaced,
    status = "PipelineStatus",
    derive = "PartialEq",
    shortname = "pl",
    category = "wharf",
    doc = "A queue-driven workload run by Wharf worker pods, scaled on queue depth.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the pipeline's workers are running as specified"
    ),
    printcolumn(
        name = "Processor",
        type_ = "string",
        json_path = ".status.processor",
        description = "The processor the workers run"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Worker pods"
    ),
    printcolumn(
        name = "Backlog",
        type_ = "integer",
        json_path = ".status.backlog.visible",
        description = "Messages waiting in the source queue"
    ),
    printcolumn(
        name = "In-Flight",
        type_ = "integer",
        json_path = ".status.backlog.inFlight",
        description = "Messages received and not yet deleted"
    ),
    printcolumn(
        name = "DLQ",
        type_ = "integer",
        json_path = ".status.backlog.deadLetter",
        description = "Messages in the dead-letter queue"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = rules::TELEMETRY_SINK_DECLARED)]
#[x_kube(validation = rules::INFRA_EVENTS_SINK_DECLARED)]
#[x_kube(validation = rules::TRANSCODE_SINK_DECLARED)]
#[x_kube(validation = rules::SNAPSHOT_STATUS_SINKS_DECLARED)]
#[x_kube(validation = rules::VISIBILITY_ALLOWS_HEARTBEAT)]
#[x_kube(validation = rules::IN_FLIGHT_COVERS_CONCURRENCY)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// Where messages come from. Exactly one kind of source.
    pub source: Source,
    /// What runs on each message. Exactly one processor.
    pub processor: Processor,
    /// Named destinations for the processor's outputs; processors refer to them by name.
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = rules::UNIQUE_SINK_NAMES)]
    pub sinks: Vec<Sink>,
    /// Where messages that can never succeed go, with the reason. Unset: they are left to the
    /// source queue's own redrive policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    /// How transient failures are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Queue-depth autoscaling. Unset: `replicas` (and `kubectl scale`) decide the pod count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingPolicy>,
    /// Worker pods to run when `scaling` is unset; the scale subresource writes here.
    #[serde(default = "defaults::replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// How each worker pod runs.
    #[serde(default)]
    pub worker: WorkerSpec,
    /// AWS region, endpoint and credentials source for the source, sinks and tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
}

/// Where messages come from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = rules::EXACTLY_ONE_SOURCE)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// An SQS queue, long-polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsSource>,
}

/// An SQS queue that workers long-poll.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqsSource {
    /// URL of the queue, e.g. `https://sqs.eu-west-2.amazonaws.com/123456789012/submissions`.
    #[schemars(regex(pattern = r"^https?://[^\s/]+/\S+$"), length(max = 2048))]
    pub queue_url: String,
    /// Most messages asked for in one receive call (SQS allows 1 to 10).
    #[serde(default = "defaults::batch_size")]
    #[schemars(range(min = 1, max = 10))]
    pub batch_size: i32,
    /// Long-poll wait of one receive call, in seconds (SQS allows 0 to 20).
    #[serde(default = "defaults::wait_time_seconds")]
    #[schemars(range(min = 0, max = 20))]
    pub wait_time_seconds: i32,
    /// How long a received message stays invisible to other consumers, in seconds. The worker
    /// renews it at half this while the message is still being processed.
    #[serde(default = "defaults::visibility_timeout_seconds")]
    #[schemars(range(min = 1, max = 43200))]
    pub visibility_timeout_seconds: i32,
    /// Most messages one worker holds at once (received and not yet deleted). The worker only
    /// polls when it has room, so back-pressure never burns receive counts.
    #[serde(default = "defaults::max_in_flight")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_in_flight: i32,
    /// How message bodies are wrapped.
    #[serde(default)]
    pub envelope: Envelope,
}

/// How a message body is wrapped around the payload the processor wants.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Envelope {
    /// Detect SNS notifications, S3 event notifications, Lambda-style `Records` and base64.
    #[default]
    Auto,
    /// Hand the body to the processor as it is.
    Raw,
    /// The body is an SNS notification; the processor gets its `Message`.
    Sns,
    /// The body is an S3 event notification; the processor gets each record.
    S3,
    /// The body holds Lambda-style `Records`; the processor gets each record's body.
    Lambda,
}

/// The processor each message runs through. Exactly one must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = rules::EXACTLY_ONE_PROCESSOR)]
#[serde(rename_all = "camelCase")]
pub struct Processor {
    /// Sensor submissions (base64 or plain JSON) into one record per event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetryProcessor>,
    /// S3 "recorder started" and ECS "processing failed" events into participant events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infra_events: Option<InfraEventsProcessor>,
    /// ffmpeg renditions of uploaded videos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcode: Option<TranscodeProcessor>,
    /// The snapshot-sender status state machine on DynamoDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_status: Option<SnapshotStatusProcessor>,
}

/// Maps sensor submissions to one record per event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryProcessor {
    /// Name of the sink (usually a Kinesis stream) the event records go to.
    #[schemars(length(min = 1, max = 63))]
    pub sink: String,
    /// What the records are partitioned by. `submission` (the default) keeps each
    /// submission's events in order on one shard.
    #[serde(default)]
    pub partition_key: PartitionKey,
}

/// The partition key of telemetry records.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PartitionKey {
    /// Each event's own id (the original service's choice; no ordering across shards).
    Event,
    /// The submission id: a submission's events stay in order.
    #[default]
    Submission,
    /// The device id: all of a device's events stay in order.
    Device,
}

/// Classifies infrastructure events and emits participant events.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfraEventsProcessor {
    /// Name of the sink (usually the participant-events SQS queue) the events go to.
    #[schemars(length(min = 1, max = 63))]
    pub sink: String,
}

/// Transcodes uploaded videos with ffmpeg.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscodeProcessor {
    /// Bucket the renditions are written to.
    #[schemars(length(min = 3, max = 63))]
    pub output_bucket: String,
    /// Key prefix of the renditions; each goes to `<prefix><mentor>/<question>/<name>`.
    #[serde(default = "defaults::transcode_output_prefix")]
    #[schemars(length(max = 512))]
    pub output_prefix: String,
    /// Renditions to produce.
    #[serde(default = "Rendition::all")]
    #[schemars(length(min = 1, max = 4))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub renditions: Vec<Rendition>,
    /// Name of the sink that receives task status updates (QUEUED, IN_PROGRESS, DONE, FAILED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub status_sink: Option<String>,
}

/// One output of the transcode processor.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Rendition {
    /// At most 720p, 16:9.
    Web,
    /// 480×480, centre crop.
    Mobile,
    /// One frame as a JPEG.
    Thumbnail,
    /// The audio track as MP3.
    Audio,
}

impl Rendition {
    pub fn all() -> Vec<Rendition> {
        vec![Self::Web, Self::Mobile, Self::Thumbnail, Self::Audio]
    }
}

/// Tracks snapshot-sender collection status in DynamoDB and notifies when a run completes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStatusProcessor {
    /// DynamoDB table holding per-collection export status (key `CorrelationId` + `CollectionName`).
    #[serde(default = "defaults::export_status_table")]
    #[schemars(length(min = 3, max = 255))]
    pub export_status_table: String,
    /// DynamoDB table holding the data product status (key `Correlation_Id` + `DataProduct`).
    #[serde(default = "defaults::product_status_table")]
    #[schemars(length(min = 3, max = 255))]
    pub product_status_table: String,
    /// Name of the sink (a FIFO SQS queue) told when a collection has been received.
    #[schemars(length(min = 1, max = 63))]
    pub export_state_sink: String,
    /// Name of the sink (an SNS topic) told when every collection of a run succeeded.
    #[schemars(length(min = 1, max = 63))]
    pub monitoring_sink: String,
    /// Optional Prometheus pushgateway that also receives the metrics, for users who keep one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushgateway: Option<Pushgateway>,
}

/// A Prometheus pushgateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pushgateway {
    /// Base URL of the gateway, e.g. `http://pushgateway:9091`.
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/.*)?$"), length(max = 2048))]
    pub url: String,
}

/// A named destination for outputs. Exactly one kind must be set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = rules::EXACTLY_ONE_SINK_KIND)]
#[serde(rename_all = "camelCase")]
pub struct Sink {
    /// Name that processors use to refer to this sink (lower-case letters, digits and `-`).
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub name: String,
    /// A Kinesis data stream (PutRecords, up to 500 records a call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis: Option<KinesisSink>,
    /// An SQS queue (SendMessageBatch, up to 10 messages a call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsSink>,
    /// An SNS topic (PublishBatch, up to 10 messages a call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns: Option<SnsSink>,
    /// An S3 bucket (one object per output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Sink>,
}

/// A Kinesis data stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KinesisSink {
    /// Name of the stream.
    #[schemars(length(min = 1, max = 128))]
    pub stream_name: String,
}

/// An SQS queue. FIFO queues (`.fifo`) get a message group id from the processor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SqsSink {
    /// URL of the queue.
    #[schemars(regex(pattern = r"^https?://[^\s/]+/\S+$"), length(max = 2048))]
    pub queue_url: String,
}

/// An SNS topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnsSink {
    /// ARN of the topic, e.g. `arn:aws:sns:eu-west-2:123456789012:monitoring`.
    #[schemars(
        regex(pattern = r"^arn:[^:\s]+:sns:[^:\s]*:[^:\s]*:[^:\s]+$"),
        length(max = 1024)
    )]
    pub topic_arn: String,
}

/// An S3 bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Sink {
    /// Name of the bucket.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Prefix for keys the processor does not choose itself (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub prefix: Option<String>,
}

/// Where permanently failing messages go.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// An SQS queue; each message keeps its body and attributes and gains `wharf-failure-reason`.
    pub sqs: SqsSink,
}

/// How transient failures are retried: the message becomes visible again after a backoff that
/// doubles with each receive, and after `maxAttempts` receives it is dead-lettered.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = rules::MAX_BACKOFF_AT_LEAST_INITIAL)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Receives of one message before a transient failure counts as permanent.
    #[serde(default = "defaults::max_attempts")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: i32,
    /// Backoff after the first failure, in seconds.
    #[serde(default = "defaults::initial_backoff_seconds")]
    #[schemars(range(min = 1, max = 43200))]
    pub initial_backoff_seconds: i32,
    /// Longest backoff, in seconds (SQS caps visibility at 43200).
    #[serde(default = "defaults::max_backoff_seconds")]
    #[schemars(range(min = 1, max = 43200))]
    pub max_backoff_seconds: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: defaults::MAX_ATTEMPTS,
            initial_backoff_seconds: defaults::INITIAL_BACKOFF_SECONDS,
            max_backoff_seconds: defaults::MAX_BACKOFF_SECONDS,
        }
    }
}

/// Queue-depth autoscaling of the worker pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = rules::MAX_REPLICAS_AT_LEAST_MIN)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// Fewest worker pods; 0 lets the pipeline scale to zero when the queue is empty.
    #[serde(default = "defaults::min_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,
    /// Most worker pods.
    #[serde(default = "defaults::max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Backlog one pod is expected to handle: desired = ceil(backlog / this).
    #[serde(default = "defaults::target_backlog_per_replica")]
    #[schemars(range(min = 1, max = 1000000))]
    pub target_backlog_per_replica: i32,
    /// Backlog that must be exceeded on two consecutive polls to scale up from zero.
    #[serde(default = "defaults::activation_backlog")]
    #[schemars(range(min = 0, max = 1000000))]
    pub activation_backlog: i32,
    /// Seconds between queue-depth polls.
    #[serde(default = "defaults::poll_interval_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub poll_interval_seconds: i32,
    /// Seconds a lower desired count must persist before pods are removed.
    #[serde(default = "defaults::scale_down_stabilization_seconds")]
    #[schemars(range(min = 0, max = 86400))]
    pub scale_down_stabilization_seconds: i32,
    /// Count messages being processed (in flight) as backlog.
    #[serde(default = "defaults::yes")]
    pub include_in_flight: bool,
    /// Count delayed messages as backlog.
    #[serde(default)]
    pub include_delayed: bool,
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        Self {
            min_replicas: defaults::MIN_REPLICAS,
            max_replicas: defaults::MAX_REPLICAS,
            target_backlog_per_replica: defaults::TARGET_BACKLOG_PER_REPLICA,
            activation_backlog: defaults::ACTIVATION_BACKLOG,
            poll_interval_seconds: defaults::POLL_INTERVAL_SECONDS,
            scale_down_stabilization_seconds: defaults::SCALE_DOWN_STABILIZATION_SECONDS,
            include_in_flight: true,
            include_delayed: false,
        }
    }
}

/// How each worker pod runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Messages processed at the same time in one pod.
    #[serde(default = "defaults::concurrency")]
    #[schemars(range(min = 1, max = 1024))]
    pub concurrency: i32,
    /// Longest a message may be processed, in seconds; the visibility heartbeat stops here and
    /// the pod's termination grace period is derived from it.
    #[serde(default = "defaults::max_processing_seconds")]
    #[schemars(range(min = 1, max = 43200))]
    pub max_processing_seconds: i32,
    /// CPU and memory for the worker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Service account of the worker pods (for IRSA / workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// Extra environment variables for the worker container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Worker image. Unset: the operator's default worker image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,
    /// Port of the worker's `/metrics` and `/healthz` endpoints.
    #[serde(default = "defaults::metrics_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub metrics_port: i32,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            concurrency: defaults::CONCURRENCY,
            max_processing_seconds: defaults::MAX_PROCESSING_SECONDS,
            resources: None,
            service_account_name: None,
            env: Vec::new(),
            image: None,
            metrics_port: defaults::METRICS_PORT,
        }
    }
}

/// What the operator and the workers observe of a pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Scaling` and `Degraded`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The processor the workers run (`telemetry`, `infraEvents`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<String>,
    /// Worker pods that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Worker pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Worker pods the autoscaler (or `spec.replicas`) asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// The last queue-depth observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<Backlog>,
    /// The last change of the replica count, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<ScaleChange>,
    /// Messages processed successfully by the running workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<i64>,
    /// Messages whose processing failed transiently (and will be retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,
    /// Messages sent to the dead-letter sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered: Option<i64>,
    /// Label selector of the worker pods, for the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// Queue depth as last observed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backlog {
    /// Messages available for retrieval.
    pub visible: i64,
    /// Messages received by a worker and not yet deleted.
    pub in_flight: i64,
    /// Messages delayed before they become visible.
    pub delayed: i64,
    /// Messages waiting in the dead-letter queue, when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<i64>,
    /// When the queue was polled.
    pub observed_at: Time,
}

/// One change of the replica count.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleChange {
    /// When the change was made.
    pub time: Time,
    /// Replicas before.
    pub from: i32,
    /// Replicas after.
    pub to: i32,
    /// Why, e.g. `backlog 230 > 4 × 50 → 5 replicas`.
    pub reason: String,
}

/// The processor a spec selects, by its field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcessorKind {
    Telemetry,
    InfraEvents,
    Transcode,
    SnapshotStatus,
}

impl ProcessorKind {
    /// The field name in `spec.processor`.
    pub fn field_name(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::InfraEvents => "infraEvents",
            Self::Transcode => "transcode",
            Self::SnapshotStatus => "snapshotStatus",
        }
    }
}

impl std::fmt::Display for ProcessorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.field_name())
    }
}

impl Processor {
    /// Every processor that is set; a valid spec has exactly one.
    pub fn kinds(&self) -> Vec<ProcessorKind> {
        let mut kinds = Vec::new();
        if self.telemetry.is_some() {
            kinds.push(ProcessorKind::Telemetry);
        }
        if self.infra_events.is_some() {
            kinds.push(ProcessorKind::InfraEvents);
        }
        if self.transcode.is_some() {
            kinds.push(ProcessorKind::Transcode);
        }
        if self.snapshot_status.is_some() {
            kinds.push(ProcessorKind::SnapshotStatus);
        }
        kinds
    }

    /// The one processor that is set, if exactly one is.
    pub fn kind(&self) -> Option<ProcessorKind> {
        match self.kinds().as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// Sink references made by the processor: (field path under `spec.processor`, sink name).
    pub fn sink_references(&self) -> Vec<(String, &str)> {
        let mut refs = Vec::new();
        if let Some(p) = &self.telemetry {
            refs.push(("telemetry.sink".to_owned(), p.sink.as_str()));
        }
        if let Some(p) = &self.infra_events {
            refs.push(("infraEvents.sink".to_owned(), p.sink.as_str()));
        }
        if let Some(p) = &self.transcode
            && let Some(sink) = &p.status_sink
        {
            refs.push(("transcode.statusSink".to_owned(), sink.as_str()));
        }
        if let Some(p) = &self.snapshot_status {
            refs.push((
                "snapshotStatus.exportStateSink".to_owned(),
                p.export_state_sink.as_str(),
            ));
            refs.push((
                "snapshotStatus.monitoringSink".to_owned(),
                p.monitoring_sink.as_str(),
            ));
        }
        refs
    }
}

/// The kind of a sink, by its field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Kinesis,
    Sqs,
    Sns,
    S3,
}

impl Sink {
    /// Every kind that is set; a valid sink has exactly one.
    pub fn kinds(&self) -> Vec<SinkKind> {
        let mut kinds = Vec::new();
        if self.kinesis.is_some() {
            kinds.push(SinkKind::Kinesis);
        }
        if self.sqs.is_some() {
            kinds.push(SinkKind::Sqs);
        }
        if self.sns.is_some() {
            kinds.push(SinkKind::Sns);
        }
        if self.s3.is_some() {
            kinds.push(SinkKind::S3);
        }
        kinds
    }
}

impl PipelineSpec {
    /// The SQS source; `None` only for a spec that fails validation.
    pub fn sqs(&self) -> Option<&SqsSource> {
        self.source.sqs.as_ref()
    }

    /// Sinks by name.
    pub fn sinks_by_name(&self) -> BTreeMap<&str, &Sink> {
        self.sinks.iter().map(|s| (s.name.as_str(), s)).collect()
    }
}
