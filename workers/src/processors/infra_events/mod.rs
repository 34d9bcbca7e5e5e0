//! `infraEvents`: S3 "recorder started" and ECS "video/coverage processing failed"
//! notifications become participant events on one sink, with the `name`/`version` message
//! attributes the participant-events consumers dispatch on (the original `dpnt-infra-events`).
//!
//! A payload is all or nothing: if any record in it cannot be classified or read, nothing is
//! emitted and the payload fails permanently, as the original's invocation failed.

pub mod classify;
pub mod event;
pub mod metrics;
pub mod shapes;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use wharf_crds::{PipelineSpec, ProcessorKind};

use self::classify::{UNIDENTIFIED_EVENT, classify};
use self::event::{EVENT_VERSION, FieldError, ParticipantEvent};
use self::metrics::InfraEventMetrics;
use self::shapes::{ShapeError, location};
use super::{BuildError, MessageContext, Outcome, Output, OutputRecord, Processor};
use crate::envelope::Payload;

/// Builds the processor from `spec.processor.infraEvents`.
pub fn build(spec: &PipelineSpec) -> Result<Arc<dyn Processor>, BuildError> {
    let config = spec
        .processor
        .infra_events
        .as_ref()
        .ok_or(BuildError::NoProcessor)?;
    Ok(Arc::new(InfraEventsRouter::new(config.sink.clone())))
}

/// Why a payload produced no participant events.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InfraEventError {
    /// The original's error; the sentence stands alone when the payload held one event, and
    /// follows the record's location when it held several.
    #[error("{}{UNIDENTIFIED_EVENT}", at_prefix(.location))]
    Unidentified { location: Option<String> },
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error(transparent)]
    Field(#[from] FieldError),
}

fn at_prefix(location: &Option<String>) -> String {
    location
        .as_ref()
        .map(|l| format!("{l}: "))
        .unwrap_or_default()
}

/// Every participant event a payload body carries, in order, stamped `now_millis`.
pub fn participant_events(
    body: &str,
    now_millis: i64,
) -> Result<Vec<ParticipantEvent>, InfraEventError> {
    let messages = shapes::messages(body)?;
    let several_messages = messages.len() > 1;
    let mut records = Vec::new();
    for message in &messages {
        let unidentified = || InfraEventError::Unidentified {
            location: several_messages.then(|| location(&[&message.origin])),
        };
        match shapes::records(message) {
            // The original read `Records[0]`: no record at all was its failure to classify.
            Ok(found) if found.is_empty() => return Err(unidentified()),
            Ok(found) => records.extend(found.into_iter().map(|record| (message, record))),
            // The original tested the markers before parsing: a text without them is
            // unidentified, whatever its shape.
            Err(_) if classify(&message.text).is_none() => return Err(unidentified()),
            Err(error) => return Err(error.into()),
        }
    }
    let several_records = records.len() > 1;
    records
        .iter()
        .map(|(message, record)| {
            let record_location = location(&[&message.origin, &record.origin]);
            let kind = classify(&record.text).ok_or_else(|| InfraEventError::Unidentified {
                location: several_records.then(|| record_location.clone()),
            })?;
            let path = if message.origin.is_empty() && record.origin.is_empty() {
                String::new()
            } else {
                record_location
            };
            Ok(ParticipantEvent::from_record(
                kind,
                &record.value,
                &path,
                now_millis,
            )?)
        })
        .collect()
}

/// The participant event as an output for `sink`.
pub fn to_output(event: &ParticipantEvent, sink: &str) -> Result<Output, serde_json::Error> {
    let attributes = [
        ("name".to_owned(), event.kind().event_name().to_owned()),
        ("version".to_owned(), EVENT_VERSION.to_owned()),
    ]
    .into_iter()
    .collect();
    Ok(Output {
        sink: sink.to_owned(),
        record: OutputRecord {
            body: event.body()?,
            attributes,
            ..OutputRecord::default()
        },
    })
}

/// Routes infrastructure events to the participant-events sink.
#[derive(Debug)]
pub struct InfraEventsRouter {
    sink: String,
    metrics: InfraEventMetrics,
}

impl InfraEventsRouter {
    pub fn new(sink: String) -> Self {
        Self {
            sink,
            metrics: InfraEventMetrics::default(),
        }
    }

    /// Participant events carry the time they are sent, as the original's did.
    fn now_millis() -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}

#[async_trait]
impl Processor for InfraEventsRouter {
    fn kind(&self) -> ProcessorKind {
        ProcessorKind::InfraEvents
    }

    async fn process(&self, payload: &Payload, context: &MessageContext) -> Outcome {
        let events = match participant_events(&payload.body, Self::now_millis()) {
            Ok(events) => events,
            Err(error) => {
                if matches!(error, InfraEventError::Unidentified { .. }) {
                    self.metrics.record_unidentified();
                }
                tracing::warn!(
                    message_id = %context.message_id,
                    origin = %payload.origin,
                    %error,
                    "infrastructure event refused"
                );
                return Outcome::Permanent(error.to_string());
            }
        };
        let mut outputs = Vec::with_capacity(events.len());
        for event in &events {
            tracing::info!(
                message_id = %context.message_id,
                name = event.kind().event_name(),
                participant = event.participant(),
                "participant event"
            );
            match to_output(event, &self.sink) {
                Ok(output) => outputs.push(output),
                Err(error) => {
                    return Outcome::Permanent(format!(
                        "the {} event could not be written as JSON: {error}",
                        event.kind()
                    ));
                }
            }
        }
        for event in &events {
            self.metrics.record_emitted(event.kind());
        }
        Outcome::Ok(outputs)
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry);
    }
}
