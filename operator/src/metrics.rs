//! The operator's Prometheus metrics: how often it reconciles and fails, whether this replica
//! leads, and every scaling decision it carries out.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels naming a Pipeline.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabels {
    pub namespace: String,
    pub pipeline: String,
}

/// Labels of a scaling change.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScaleLabels {
    pub namespace: String,
    pub pipeline: String,
    /// `up` or `down`.
    pub direction: String,
}

/// Cheap to clone; clones share the series.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub reconciliations: Family<PipelineLabels, Counter>,
    pub reconcile_failures: Family<PipelineLabels, Counter>,
    pub scale_changes: Family<ScaleLabels, Counter>,
    pub desired_replicas: Family<PipelineLabels, Gauge>,
    pub leader: Gauge,
}

impl Metrics {
    /// Registers every series under the `wharf_operator_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("wharf_operator");
        sub.register(
            "reconciliations",
            "Pipeline reconciles that completed",
            self.reconciliations.clone(),
        );
        sub.register(
            "reconcile_failures",
            "Pipeline reconciles that failed and were retried",
            self.reconcile_failures.clone(),
        );
        sub.register(
            "scale_changes",
            "Replica count changes made by the autoscaler",
            self.scale_changes.clone(),
        );
        sub.register(
            "desired_replicas",
            "Replicas the operator last applied to a Pipeline's workers",
            self.desired_replicas.clone(),
        );
        sub.register(
            "leader",
            "1 while this replica holds the leader Lease",
            self.leader.clone(),
        );
    }
}

/// Labels of a Pipeline.
pub fn pipeline_labels(namespace: &str, pipeline: &str) -> PipelineLabels {
    PipelineLabels {
        namespace: namespace.to_owned(),
        pipeline: pipeline.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_wharf_operator_prefix() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics
            .reconciliations
            .get_or_create(&pipeline_labels("data", "telemetry"))
            .inc();
        metrics.leader.set(1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                "wharf_operator_reconciliations_total{namespace=\"data\",pipeline=\"telemetry\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("wharf_operator_leader 1"), "{text}");
    }
}
