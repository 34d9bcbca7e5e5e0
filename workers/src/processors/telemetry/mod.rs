//! The telemetry mapper (seed service 003): sensor submissions, base64 or plain JSON, become
//! one stream record per event with the original service's record body. Invalid submissions
//! are permanent failures naming the offending field; a submission without events succeeds
//! with nothing to publish.

mod mapping;
mod submission;
mod validate;

use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use wharf_crds::pipeline::PartitionKey;
use wharf_crds::{PipelineSpec, ProcessorKind};

pub use mapping::{ClockStamper, Stamp, Stamper};

use super::{BuildError, MessageContext, Outcome, Output, OutputRecord, Processor};
use crate::envelope::Payload;

/// Builds the mapper for `spec.processor.telemetry`.
pub fn build(spec: &PipelineSpec) -> Result<Arc<dyn Processor>, BuildError> {
    let settings = spec
        .processor
        .telemetry
        .as_ref()
        .ok_or(BuildError::NoProcessor)?;
    Ok(Arc::new(TelemetryMapper::new(
        settings.sink.clone(),
        settings.partition_key,
    )))
}

/// Why a payload produced no records; always permanent (the input will not improve).
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("invalid submission: {0}")]
    Unreadable(#[from] submission::SubmissionError),
    #[error("invalid submission: {origin}: {invalid}")]
    Invalid {
        origin: String,
        invalid: validate::InvalidField,
    },
    #[error("{origin}: the event record could not be serialised: {source}")]
    Serialise {
        origin: String,
        source: serde_json::Error,
    },
}

/// Maps submissions to event records for one sink.
#[derive(Debug)]
pub struct TelemetryMapper {
    sink: String,
    partition_key: PartitionKey,
    stamper: Box<dyn Stamper>,
    metrics: TelemetryMetrics,
}

impl TelemetryMapper {
    /// A mapper stamping events with version 1 UUIDs and the system clock.
    pub fn new(sink: String, partition_key: PartitionKey) -> Self {
        Self::with_stamper(sink, partition_key, Box::new(ClockStamper::new()))
    }

    /// A mapper with its own source of event ids and processing times.
    pub fn with_stamper(
        sink: String,
        partition_key: PartitionKey,
        stamper: Box<dyn Stamper>,
    ) -> Self {
        Self {
            sink,
            partition_key,
            stamper,
            metrics: TelemetryMetrics::default(),
        }
    }

    /// The outputs for one payload: every submission in it (one, or one per message of an SQS
    /// batch shape), each submission's events in order. All or nothing: one invalid
    /// submission fails the payload.
    pub fn map(&self, payload: &str) -> Result<Vec<Output>, MappingError> {
        let result = self.map_all(payload);
        self.metrics.count(&result);
        result
    }

    fn map_all(&self, payload: &str) -> Result<Vec<Output>, MappingError> {
        let mut outputs = Vec::new();
        for text in submission::submission_texts(payload)? {
            let parsed = text.parse()?;
            let valid = validate::validate(&parsed).map_err(|invalid| MappingError::Invalid {
                origin: text.origin.clone(),
                invalid,
            })?;
            let records = mapping::map_submission(&valid, self.partition_key, &*self.stamper)
                .map_err(|source| MappingError::Serialise {
                    origin: text.origin.clone(),
                    source,
                })?;
            self.metrics.count_events(&valid);
            outputs.extend(records.into_iter().map(|record| Output {
                sink: self.sink.clone(),
                record: OutputRecord {
                    body: record.body,
                    partition_key: Some(record.partition_key),
                    ..OutputRecord::default()
                },
            }));
        }
        Ok(outputs)
    }
}

#[async_trait]
impl Processor for TelemetryMapper {
    fn kind(&self) -> ProcessorKind {
        ProcessorKind::Telemetry
    }

    async fn process(&self, payload: &Payload, _context: &MessageContext) -> Outcome {
        match self.map(&payload.body) {
            Ok(outputs) => Outcome::Ok(outputs),
            Err(error) => Outcome::Permanent(error.to_string()),
        }
    }

    /// The original service logged and dropped submissions it could not map.
    fn drops_invalid_without_dead_letter(&self) -> bool {
        true
    }

    fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }
}

type Labels = Vec<(&'static str, &'static str)>;

/// What the original's README asked to measure: valid and invalid submissions, events by type.
#[derive(Debug)]
struct TelemetryMetrics {
    submissions: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    mapped: Counter,
    invalid: Counter,
    new_process: Counter,
    network_connection: Counter,
}

impl Default for TelemetryMetrics {
    fn default() -> Self {
        let submissions = Family::<Labels, Counter>::default();
        let events = Family::<Labels, Counter>::default();
        let mapped = submissions
            .get_or_create(&vec![("result", "mapped")])
            .clone();
        let invalid = submissions
            .get_or_create(&vec![("result", "invalid")])
            .clone();
        let new_process = events.get_or_create(&vec![("type", "new_process")]).clone();
        let network_connection = events
            .get_or_create(&vec![("type", "network_connection")])
            .clone();
        Self {
            submissions,
            events,
            mapped,
            invalid,
            new_process,
            network_connection,
        }
    }
}

impl TelemetryMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "telemetry_submissions",
            "Telemetry payloads (a submission, or an SQS batch of them) by result: mapped, or invalid",
            self.submissions.clone(),
        );
        registry.register(
            "telemetry_events",
            "Telemetry events mapped to records, by type",
            self.events.clone(),
        );
    }

    fn count(&self, result: &Result<Vec<Output>, MappingError>) {
        match result {
            Ok(_) => self.mapped.inc(),
            Err(_) => self.invalid.inc(),
        };
    }

    fn count_events(&self, valid: &validate::ValidSubmission<'_>) {
        for event in &valid.events {
            match event {
                validate::TelemetryEvent::NewProcess { .. } => self.new_process.inc(),
                validate::TelemetryEvent::NetworkConnection { .. } => self.network_connection.inc(),
            };
        }
    }
}

#[cfg(test)]
mod tests;
