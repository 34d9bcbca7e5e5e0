//! Processors: what runs on each message. Pure logic first (mapping, classification, state
//! decisions are plain functions tested without I/O); the ports a processor needs (a table,
//! an object store) are handed in, never created here.
//!
//! A processor sees one [`Payload`] (a message body after envelope unwrapping) and returns an
//! [`Outcome`]: outputs for named sinks, or a permanent or transient failure. The runtime
//! delivers the outputs and only then deletes the message.

pub mod infra_events;
pub mod snapshot_status;
pub mod telemetry;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use wharf_crds::{PipelineSpec, ProcessorKind};

use crate::envelope::Payload;
use crate::io::{Backend, MessageAttributes};

/// The result of processing one payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Done; deliver these outputs (possibly none), then the message may be deleted.
    Ok(Vec<Output>),
    /// Will never succeed (bad input): dead-letter the message with this reason.
    Permanent(String),
    /// May succeed later (a dependency is down): retry after a backoff.
    Transient(String),
}

/// One result for one named sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Output {
    /// Name of a sink in the Pipeline's `spec.sinks`.
    pub sink: String,
    pub record: OutputRecord,
}

/// What is delivered; each sink kind uses the fields that apply to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRecord {
    /// Message body, record data or object content.
    pub body: String,
    /// Kinesis partition key (unset: the runtime uses the message id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// SQS / SNS message attributes.
    #[serde(skip_serializing_if = "MessageAttributes::is_empty")]
    pub attributes: MessageAttributes,
    /// FIFO message group (unset on a FIFO sink: the pipeline name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// FIFO deduplication id (unset: content-based deduplication must be on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplication_id: Option<String>,
    /// S3 object key (unset: `<sink prefix><message id>-<n>.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// S3 content type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// What a processor may know about the message a payload came from.
#[derive(Clone, Debug, Default)]
pub struct MessageContext {
    pub message_id: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub attributes: MessageAttributes,
}

/// Runs on each payload.
#[async_trait]
pub trait Processor: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> ProcessorKind;

    async fn process(&self, payload: &Payload, context: &MessageContext) -> Outcome;

    /// What happens to a permanently failing message when the Pipeline has no dead-letter
    /// sink: `false` (the default) leaves it to the source queue's redrive policy; `true`
    /// deletes it with a warning and a metric, for processors whose original service dropped
    /// invalid input.
    fn drops_invalid_without_dead_letter(&self) -> bool {
        false
    }

    /// Adds the processor's own metrics (if it has any) to the worker's `/metrics`.
    fn register_metrics(&self, _registry: &mut prometheus_client::registry::Registry) {}
}

/// Why a processor could not be built for a spec.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("spec.processor: exactly one processor must be set")]
    NoProcessor,
    #[error("the {0} processor is not available in this build")]
    Unavailable(ProcessorKind),
    #[error("the {kind} processor needs {what}; {fix}")]
    NeedsBackend {
        kind: ProcessorKind,
        what: &'static str,
        fix: &'static str,
    },
}

/// Builds the processor a spec selects. `backend` gives processors with state (tables) their
/// ports; `None` is the no-I/O mode of `wharf invoke`, in which only pure processors can run.
pub fn build(
    spec: &PipelineSpec,
    backend: Option<&Arc<dyn Backend>>,
) -> Result<Arc<dyn Processor>, BuildError> {
    let kind = spec.processor.kind().ok_or(BuildError::NoProcessor)?;
    match kind {
        ProcessorKind::Telemetry => telemetry::build(spec),
        ProcessorKind::InfraEvents => infra_events::build(spec),
        ProcessorKind::SnapshotStatus => snapshot_status::build(spec, backend),
        ProcessorKind::Transcode => Err(BuildError::Unavailable(kind)),
    }
}
