//! What the processor counts: how many events it classified as each kind, and how many it
//! could not classify, so an operator sees a new kind of notification arriving (it shows up as
//! `unidentified`) without reading the dead-letter queue.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::classify::EventKind;

/// Label value for events no kind matched.
pub const UNIDENTIFIED_LABEL: &str = "unidentified";

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClassifiedLabels {
    /// The participant event name (`recorderStarted`, ...) or `unidentified`.
    pub name: String,
}

/// Cheap to clone: the counters are shared handles.
#[derive(Clone, Debug, Default)]
pub struct InfraEventMetrics {
    classified: Family<ClassifiedLabels, Counter>,
}

impl InfraEventMetrics {
    /// Counts one payload's events, once it is known that all of them are emitted.
    pub fn record_emitted(&self, kind: EventKind) {
        self.count(kind.event_name());
    }

    pub fn record_unidentified(&self) {
        self.count(UNIDENTIFIED_LABEL);
    }

    fn count(&self, name: &str) {
        self.classified
            .get_or_create(&ClassifiedLabels {
                name: name.to_owned(),
            })
            .inc();
    }

    /// Registers `wharf_infra_events_classified_total{name}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wharf_infra_events_classified",
            "Infrastructure events by the participant event they became, or unidentified",
            self.classified.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exported_by_event_name() {
        let metrics = InfraEventMetrics::default();
        metrics.record_emitted(EventKind::RecorderStarted);
        metrics.record_emitted(EventKind::RecorderStarted);
        metrics.record_unidentified();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"wharf_infra_events_classified_total{name="recorderStarted"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wharf_infra_events_classified_total{name="unidentified"} 1"#),
            "{text}"
        );
    }
}
