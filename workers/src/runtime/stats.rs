//! What the runtime counts, as Prometheus metrics (`wharf_*`) that also serve `wharf run`'s
//! progress line and summary.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// How one receive of a message ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: MessageOutcome,
}

/// The fates of a received message.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelValue,
)]
pub enum MessageOutcome {
    /// Outputs delivered, message deleted.
    Processed,
    /// Sent to the dead-letter sink with its reason, then deleted.
    DeadLettered,
    /// Invalid, no dead-letter sink, and the processor drops invalid input: deleted.
    Dropped,
    /// Failed transiently: visible again after a backoff.
    Retried,
    /// Failed permanently with no dead-letter sink: left to the queue's redrive policy.
    LeftForRedrive,
    /// Made visible again unprocessed (shutdown).
    Released,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
}

/// The runtime's counters. Cheap to clone (the metrics are shared handles).
#[derive(Clone, Debug)]
pub struct RuntimeStats {
    pub received: Counter,
    pub outcomes: Family<OutcomeLabels, Counter>,
    pub outputs: Family<SinkLabels, Counter>,
    pub delete_failures: Counter,
    pub poll_errors: Counter,
    pub visibility_renewals: Counter,
    pub processor_panics: Counter,
    pub in_flight: Gauge,
    pub processing_seconds: Histogram,
}

impl Default for RuntimeStats {
    fn default() -> Self {
        Self {
            received: Counter::default(),
            outcomes: Family::default(),
            outputs: Family::default(),
            delete_failures: Counter::default(),
            poll_errors: Counter::default(),
            visibility_renewals: Counter::default(),
            processor_panics: Counter::default(),
            in_flight: Gauge::default(),
            processing_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 10)),
        }
    }
}

/// Totals at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub received: u64,
    pub processed: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    /// Transient failures (each is retried later).
    pub failed: u64,
    pub left_for_redrive: u64,
    pub released: u64,
    pub outputs: BTreeMap<String, u64>,
}

impl RuntimeStats {
    /// Registers every metric under `registry` (whose prefix and labels the caller chooses).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "messages_received",
            "Messages received from the source queue",
            self.received.clone(),
        );
        registry.register(
            "messages",
            "Received messages by how their processing ended",
            self.outcomes.clone(),
        );
        registry.register(
            "outputs_delivered",
            "Outputs made durable, by sink",
            self.outputs.clone(),
        );
        registry.register(
            "delete_failures",
            "Deletes that failed (the message will be processed again)",
            self.delete_failures.clone(),
        );
        registry.register(
            "poll_errors",
            "Failed receive calls",
            self.poll_errors.clone(),
        );
        registry.register(
            "visibility_renewals",
            "Visibility timeout extensions by the heartbeat",
            self.visibility_renewals.clone(),
        );
        registry.register(
            "processor_panics",
            "Processor panics (each fails one message)",
            self.processor_panics.clone(),
        );
        registry.register(
            "messages_in_flight",
            "Messages held by this worker",
            self.in_flight.clone(),
        );
        registry.register(
            "processing_seconds",
            "Time from receipt to the message's outcome",
            self.processing_seconds.clone(),
        );
    }

    pub fn record(&self, outcome: MessageOutcome) {
        self.outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn count(&self, outcome: MessageOutcome) -> u64 {
        self.outcomes
            .get(&OutcomeLabels { outcome })
            .map_or(0, |c| c.get())
    }

    pub fn add_outputs(&self, sink: &str, n: u64) {
        self.outputs
            .get_or_create(&SinkLabels {
                sink: sink.to_owned(),
            })
            .inc_by(n);
    }

    /// Totals now; `sinks` lists the sinks to report (zero when nothing went to one).
    pub fn snapshot<'a>(&self, sinks: impl IntoIterator<Item = &'a str>) -> StatsSnapshot {
        StatsSnapshot {
            received: self.received.get(),
            processed: self.count(MessageOutcome::Processed),
            dead_lettered: self.count(MessageOutcome::DeadLettered),
            dropped: self.count(MessageOutcome::Dropped),
            failed: self.count(MessageOutcome::Retried),
            left_for_redrive: self.count(MessageOutcome::LeftForRedrive),
            released: self.count(MessageOutcome::Released),
            outputs: sinks
                .into_iter()
                .map(|sink| {
                    let n = self
                        .outputs
                        .get(&SinkLabels {
                            sink: sink.to_owned(),
                        })
                        .map_or(0, |c| c.get());
                    (sink.to_owned(), n)
                })
                .collect(),
        }
    }
}
