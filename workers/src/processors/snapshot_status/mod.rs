//! `snapshotStatus` (seed 002): tracks snapshot-sender collections in DynamoDB as the original
//! status checker did — counts received files, marks collections `Received` and `Success`,
//! tells the export-state FIFO queue, records the data product status and notifies monitoring
//! when a whole run succeeded — but per message, with an idempotent file count.
//!
//! `input` reads messages, `state` decides, `store` talks to the tables, `payloads` builds
//! what is sent, `metrics` and `pushgateway` report.
//!
//! Where this differs from the original, on purpose:
//! - A file is counted with one conditional update that also remembers it (`ProcessedFiles`,
//!   a string set of `file:<name>` or, for unnamed files, `message:<id>`), so redelivered and
//!   concurrent deliveries never count twice. The delivery that moves a collection to
//!   `Received`/`Success` is recorded (`ReceivedBy`/`SucceededBy`); only its redelivery
//!   repeats the notifications, in case the first attempt's outputs were never delivered.
//! - Failures are per message: table errors are transient (retried), invalid input is
//!   permanent naming the field (the original skipped such messages silently, so without a
//!   dead-letter sink they are dropped with a metric). Every message of a payload is
//!   validated before anything is written.
//! - The success file's read is consistent; the processing time is a Histogram (no Summary in
//!   prometheus-client); a finished run's series are dropped from memory after the scrape
//!   interval, as its pushgateway group is.

pub mod input;
pub mod metrics;
pub mod payloads;
pub mod pushgateway;
pub mod state;
pub mod store;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use wharf_crds::pipeline::SnapshotStatusProcessor;
use wharf_crds::{PipelineSpec, ProcessorKind};

use self::input::SnapshotMessage;
use self::metrics::{FileLabels, SnapshotMetrics};
use self::payloads::ProductStatus;
use self::pushgateway::Pushgateway;
use self::state::{
    Counting, ExportStatus, FileStep, SuccessStep, all_collections_in, attr, received_statuses,
    success_statuses,
};
use self::store::{CollectionKey, SnapshotTables, StoreError};
use super::{BuildError, MessageContext, Outcome, Output, Processor};
use crate::envelope::Payload;
use crate::io::Backend;

/// Builds the processor for `spec.processor.snapshotStatus`; it needs the backend's tables.
pub fn build(
    spec: &PipelineSpec,
    backend: Option<&Arc<dyn Backend>>,
) -> Result<Arc<dyn Processor>, BuildError> {
    let config = spec
        .processor
        .snapshot_status
        .as_ref()
        .ok_or(BuildError::NoProcessor)?;
    let backend = backend.ok_or(BuildError::NeedsBackend {
        kind: ProcessorKind::SnapshotStatus,
        what: "its DynamoDB tables (export status and product status)",
        fix: "run it with a backend, e.g. `wharf invoke --endpoint-url URL` against an \
              AWS-compatible endpoint, or `wharf run` on the embedded backend",
    })?;
    let tables = SnapshotTables {
        export_status: backend.table(&config.export_status_table),
        product_status: backend.table(&config.product_status_table),
    };
    Ok(Arc::new(SnapshotStatusTracker::new(config, tables)))
}

/// The snapshot status processor.
#[derive(Debug)]
pub struct SnapshotStatusTracker {
    tables: SnapshotTables,
    export_state_sink: String,
    monitoring_sink: String,
    metrics: SnapshotMetrics,
    pushgateway: Option<Pushgateway>,
}

/// What one message led to.
#[derive(Debug, Default)]
struct Handled {
    outputs: Vec<Output>,
    /// Every collection of the run has succeeded (the run is over).
    run_complete: bool,
}

impl SnapshotStatusTracker {
    pub fn new(config: &SnapshotStatusProcessor, tables: SnapshotTables) -> Self {
        let pushgateway =
            config
                .pushgateway
                .as_ref()
                .and_then(|gateway| match Pushgateway::new(&gateway.url) {
                    Ok(client) => Some(client),
                    Err(error) => {
                        tracing::warn!(%error, "snapshotStatus: metrics will not be pushed");
                        None
                    }
                });
        Self {
            tables,
            export_state_sink: config.export_state_sink.clone(),
            monitoring_sink: config.monitoring_sink.clone(),
            metrics: SnapshotMetrics::default(),
            pushgateway,
        }
    }

    /// The processor's metrics (shared with what `register_metrics` registers).
    pub fn metrics(&self) -> &SnapshotMetrics {
        &self.metrics
    }

    async fn handle(
        &self,
        message: &SnapshotMessage,
        marker: Option<&str>,
    ) -> Result<Handled, HandleError> {
        let key = CollectionKey {
            correlation_id: message.correlation_id.clone(),
            collection_name: message.collection_name.clone(),
        };
        let labels = FileLabels::of(message);
        if message.is_success_file {
            self.handle_success_file(message, &key, marker, &labels)
                .await
        } else {
            self.handle_data_file(message, &key, marker, &labels).await
        }
    }

    async fn handle_data_file(
        &self,
        message: &SnapshotMessage,
        key: &CollectionKey,
        marker: Option<&str>,
        labels: &FileLabels,
    ) -> Result<Handled, HandleError> {
        let (counting, item) = self.tables.count_file(key, marker).await?;
        match counting {
            Counting::New => self.metrics.file_received(labels),
            Counting::Duplicate => {
                self.metrics.duplicate_files.inc();
                tracing::info!(
                    file_name = %message.file_name,
                    correlation_id = %message.correlation_id,
                    collection_name = %message.collection_name,
                    "file already counted; not counted again"
                );
            }
        }
        let status = ExportStatus::from_item(&item);
        tracing::debug!(
            status = status.status.as_str(),
            files_exported = status.files_exported,
            files_sent = status.files_sent,
            files_received = status.files_received,
            "collection after counting"
        );
        let transition = match state::after_file_counted(&status, counting, marker) {
            FileStep::Wait => return Ok(Handled::default()),
            FileStep::MarkReceived => true,
            FileStep::RepeatReceived => false,
        };
        if transition {
            self.metrics.collection_received(labels);
            self.tables
                .set_status(
                    key,
                    &state::CollectionStatus::Received,
                    marker.map(|m| (attr::RECEIVED_BY, m)),
                )
                .await?;
        }
        let record = payloads::export_state_notification(message)
            .map_err(encoding("export state notification"))?;
        let outputs = vec![Output {
            sink: self.export_state_sink.clone(),
            record,
        }];
        let collections = self.tables.run_collections(&message.correlation_id).await?;
        if all_collections_in(&collections, &received_statuses()) {
            if transition {
                self.metrics.all_received(labels);
            }
            self.tables
                .set_product_status(&message.correlation_id, ProductStatus::Received)
                .await?;
        }
        Ok(Handled {
            outputs,
            run_complete: false,
        })
    }

    async fn handle_success_file(
        &self,
        message: &SnapshotMessage,
        key: &CollectionKey,
        marker: Option<&str>,
        labels: &FileLabels,
    ) -> Result<Handled, HandleError> {
        let item = self.tables.collection(key).await?;
        let status = ExportStatus::from_item(&item);
        let transition = match state::on_success_file(&status, marker) {
            SuccessStep::Ignore => {
                tracing::info!(
                    status = status.status.as_str(),
                    correlation_id = %message.correlation_id,
                    collection_name = %message.collection_name,
                    "success file for a collection that is not sent or received; ignored"
                );
                return Ok(Handled::default());
            }
            SuccessStep::MarkSuccess => true,
            SuccessStep::RepeatSuccess => false,
        };
        if transition {
            self.metrics.collection_successful(labels);
            self.tables
                .set_status(
                    key,
                    &state::CollectionStatus::Success,
                    marker.map(|m| (attr::SUCCEEDED_BY, m)),
                )
                .await?;
        }
        let collections = self.tables.run_collections(&message.correlation_id).await?;
        if !all_collections_in(&collections, &success_statuses()) {
            return Ok(Handled::default());
        }
        let record = payloads::all_collections_successful(message)
            .map_err(encoding("monitoring message"))?;
        if transition {
            self.metrics.all_successful(labels);
        }
        self.tables
            .set_product_status(&message.correlation_id, ProductStatus::Completed)
            .await?;
        Ok(Handled {
            outputs: vec![Output {
                sink: self.monitoring_sink.clone(),
                record,
            }],
            run_complete: true,
        })
    }

    /// Pushes the run's metrics, as the original did after every valid message whatever its
    /// result; once the run is complete, deletes its group (and forgets its series) after the
    /// scrape interval, without holding the message.
    async fn report(&self, correlation_id: &str, run_complete: bool) {
        if let Some(gateway) = &self.pushgateway {
            let text = self.metrics.push_text(correlation_id);
            if let Err(error) = gateway.push_add(correlation_id, text).await {
                tracing::warn!(%error, "pushing snapshot status metrics failed");
            }
        }
        if run_complete {
            let gateway = self.pushgateway.clone();
            let metrics = self.metrics.clone();
            let correlation_id = correlation_id.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(pushgateway::DELETE_AFTER).await;
                if let Some(gateway) = gateway
                    && let Err(error) = gateway.delete(&correlation_id).await
                {
                    tracing::warn!(%error, "deleting snapshot status metrics failed");
                }
                metrics.forget_run(&correlation_id);
            });
        }
    }
}

/// Why a message could not be handled.
#[derive(Debug, thiserror::Error)]
enum HandleError {
    /// A table could not be read or written: retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A notification could not be encoded (a bug, not bad input): retried, then dead-lettered.
    #[error("encoding the {what} failed: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

fn encoding(what: &'static str) -> impl FnOnce(serde_json::Error) -> HandleError {
    move |source| HandleError::Encode { what, source }
}

#[async_trait]
impl Processor for SnapshotStatusTracker {
    fn kind(&self) -> ProcessorKind {
        ProcessorKind::SnapshotStatus
    }

    async fn process(&self, payload: &Payload, context: &MessageContext) -> Outcome {
        let messages = match input::extract(&payload.body) {
            Ok(messages) => messages,
            Err(error) => return Outcome::Permanent(error.to_string()),
        };
        let mut outputs = Vec::new();
        for message in &messages {
            let marker = state::delivery_marker(message, &context.message_id, &payload.origin);
            let started = Instant::now();
            let handled = self.handle(message, marker.as_deref()).await;
            self.metrics.observe_processing(started.elapsed());
            let run_complete = handled.as_ref().is_ok_and(|h| h.run_complete);
            self.report(&message.correlation_id, run_complete).await;
            match handled {
                Ok(mut handled) => outputs.append(&mut handled.outputs),
                Err(error) => {
                    let reason = if messages.len() > 1 {
                        format!("{}: {error}", message.origin)
                    } else {
                        error.to_string()
                    };
                    return Outcome::Transient(reason);
                }
            }
        }
        Outcome::Ok(outputs)
    }

    /// The original logged and skipped messages without the mandatory fields.
    fn drops_invalid_without_dead_letter(&self) -> bool {
        true
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry);
    }
}

#[cfg(test)]
mod tests;
