//! The original service's metrics, under their original names and labels, plus the text
//! pushed to a Prometheus pushgateway for one run (a correlation id).
//!
//! The original's processing-time metric was a label-less Summary; prometheus-client has no
//! Summary, so it is a Histogram of the same name (its `_sum` and `_count` are the Summary's).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::input::SnapshotMessage;

pub const PROCESSING_TIME: &str = "snapshot_sender_status_checker_message_processing_time";
pub const COLLECTIONS_RECEIVED: &str = "snapshot_sender_status_checker_collections_received";
pub const COLLECTIONS_SUCCESSFUL: &str = "snapshot_sender_status_checker_collections_successful";
pub const ALL_COLLECTIONS_RECEIVED: &str =
    "snapshot_sender_status_checker_all_collections_received";
/// Spelt as in the original.
pub const ALL_COLLECTIONS_SUCCESSFUL: &str =
    "snapshot_sender_status_checker_all_collections_succesful";
pub const FILES_RECEIVED: &str = "snapshot_sender_status_checker_files_received";
/// Not in the original: deliveries recognised as already counted.
pub const DUPLICATE_FILES: &str = "wharf_snapshot_status_duplicate_files";

/// Labels of the per-run counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub correlation_id: String,
    pub export_date: String,
    pub snapshot_type: String,
}

/// Labels of the files-received counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabels {
    pub correlation_id: String,
    pub export_date: String,
    pub snapshot_type: String,
    pub collection_name: String,
}

impl FileLabels {
    pub fn of(message: &SnapshotMessage) -> Self {
        Self {
            correlation_id: message.correlation_id.clone(),
            export_date: message.export_date.clone(),
            snapshot_type: message.snapshot_type.clone(),
            collection_name: message.collection_name.clone(),
        }
    }

    fn run(&self) -> RunLabels {
        RunLabels {
            correlation_id: self.correlation_id.clone(),
            export_date: self.export_date.clone(),
            snapshot_type: self.snapshot_type.clone(),
        }
    }
}

/// The processor's metrics. Clones share the same series.
#[derive(Clone, Debug)]
pub struct SnapshotMetrics {
    pub processing_time: Histogram,
    pub collections_received: Family<RunLabels, Counter>,
    pub collections_successful: Family<RunLabels, Counter>,
    pub all_collections_received: Family<RunLabels, Counter>,
    pub all_collections_successful: Family<RunLabels, Counter>,
    pub files_received: Family<FileLabels, Counter>,
    pub duplicate_files: Counter,
    /// Label sets seen per correlation id, so a finished run's series can be dropped (a
    /// worker outlives many runs; the original's Lambda did not).
    seen: Arc<Mutex<HashMap<String, HashSet<FileLabels>>>>,
}

impl Default for SnapshotMetrics {
    fn default() -> Self {
        Self {
            // 5 ms .. ~41 s: from a cached DynamoDB round trip to a throttled retry.
            processing_time: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            collections_received: Family::default(),
            collections_successful: Family::default(),
            all_collections_received: Family::default(),
            all_collections_successful: Family::default(),
            files_received: Family::default(),
            duplicate_files: Counter::default(),
            seen: Arc::default(),
        }
    }
}

impl SnapshotMetrics {
    /// Adds every metric to `registry` under its original name.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            PROCESSING_TIME,
            "The time for snapshot sender process checker to process a message",
            self.processing_time.clone(),
        );
        registry.register(
            COLLECTIONS_RECEIVED,
            "The number of received collections",
            self.collections_received.clone(),
        );
        registry.register(
            COLLECTIONS_SUCCESSFUL,
            "The number of successful collections",
            self.collections_successful.clone(),
        );
        registry.register(
            ALL_COLLECTIONS_RECEIVED,
            "The number of runs where all collections were received",
            self.all_collections_received.clone(),
        );
        registry.register(
            ALL_COLLECTIONS_SUCCESSFUL,
            "The number of runs where all collections were successful",
            self.all_collections_successful.clone(),
        );
        registry.register(
            FILES_RECEIVED,
            "The number of files received by NiFi",
            self.files_received.clone(),
        );
        registry.register(
            DUPLICATE_FILES,
            "Redelivered file notifications that were already counted and not counted again",
            self.duplicate_files.clone(),
        );
    }

    pub fn observe_processing(&self, elapsed: Duration) {
        self.processing_time.observe(elapsed.as_secs_f64());
    }

    pub fn file_received(&self, labels: &FileLabels) {
        self.remember(labels);
        self.files_received.get_or_create(labels).inc();
    }

    pub fn collection_received(&self, labels: &FileLabels) {
        self.remember(labels);
        self.collections_received.get_or_create(&labels.run()).inc();
    }

    pub fn collection_successful(&self, labels: &FileLabels) {
        self.remember(labels);
        self.collections_successful
            .get_or_create(&labels.run())
            .inc();
    }

    pub fn all_received(&self, labels: &FileLabels) {
        self.remember(labels);
        self.all_collections_received
            .get_or_create(&labels.run())
            .inc();
    }

    pub fn all_successful(&self, labels: &FileLabels) {
        self.remember(labels);
        self.all_collections_successful
            .get_or_create(&labels.run())
            .inc();
    }

    /// Drops every series of a finished run.
    pub fn forget_run(&self, correlation_id: &str) {
        let labels = match self.seen.lock() {
            Ok(mut seen) => seen.remove(correlation_id).unwrap_or_default(),
            Err(_) => return,
        };
        for file in labels {
            let run = file.run();
            self.files_received.remove(&file);
            self.collections_received.remove(&run);
            self.collections_successful.remove(&run);
            self.all_collections_received.remove(&run);
            self.all_collections_successful.remove(&run);
        }
    }

    fn remember(&self, labels: &FileLabels) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.entry(labels.correlation_id.clone())
                .or_default()
                .insert(labels.clone());
        }
    }

    /// The metrics of one run in the Prometheus text format a pushgateway accepts: the
    /// label-less processing time and every series labelled with this correlation id.
    pub fn push_text(&self, correlation_id: &str) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        let mut open_metrics = String::new();
        if prometheus_client::encoding::text::encode(&mut open_metrics, &registry).is_err() {
            return String::new();
        }
        to_prometheus_text(&open_metrics, correlation_id)
    }
}

/// Turns OpenMetrics text into the Prometheus text format (a counter's family named with its
/// `_total` suffix, as Python's client writes it; no `# UNIT`, no `# EOF`), keeping only
/// series that are unlabelled or labelled with `correlation_id`.
pub fn to_prometheus_text(open_metrics: &str, correlation_id: &str) -> String {
    let escaped = correlation_id
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let label = format!("correlation_id=\"{escaped}\"");
    let counters: HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::new();
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = &line[..7];
            if counters.contains(name) {
                let _ = writeln!(out, "{kind}{name}_total {tail}");
            } else {
                let _ = writeln!(out, "{line}");
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let labelled_for_other_run = line.contains("correlation_id=\"")
            && !(line.contains(&format!("{{{label}")) || line.contains(&format!(",{label}")));
        if !labelled_for_other_run {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn labels(correlation_id: &str, collection: &str) -> FileLabels {
        FileLabels {
            correlation_id: correlation_id.into(),
            export_date: "2020-01-01".into(),
            snapshot_type: "full".into(),
            collection_name: collection.into(),
        }
    }

    fn exposition(metrics: &SnapshotMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn counters_carry_the_original_names_and_labels() {
        let metrics = SnapshotMetrics::default();
        metrics.file_received(&labels("c1", "db.a"));
        metrics.collection_received(&labels("c1", "db.a"));
        metrics.all_successful(&labels("c1", "db.a"));
        let text = exposition(&metrics);
        assert!(text.contains(
            "snapshot_sender_status_checker_files_received_total{correlation_id=\"c1\",export_date=\"2020-01-01\",snapshot_type=\"full\",collection_name=\"db.a\"} 1"
        ), "{text}");
        assert!(text.contains(
            "snapshot_sender_status_checker_collections_received_total{correlation_id=\"c1\",export_date=\"2020-01-01\",snapshot_type=\"full\"} 1"
        ), "{text}");
        assert!(text.contains(
            "snapshot_sender_status_checker_all_collections_succesful_total{correlation_id=\"c1\""
        ));
        assert!(
            text.contains(
                "# TYPE snapshot_sender_status_checker_message_processing_time histogram"
            )
        );
    }

    #[test]
    fn push_text_keeps_only_the_run_and_unlabelled_series() {
        let metrics = SnapshotMetrics::default();
        metrics.file_received(&labels("c1", "db.a"));
        metrics.file_received(&labels("c2", "db.a"));
        metrics.observe_processing(Duration::from_millis(20));
        let text = metrics.push_text("c1");
        assert!(text.contains("correlation_id=\"c1\""), "{text}");
        assert!(!text.contains("correlation_id=\"c2\""), "{text}");
        assert!(text.contains("snapshot_sender_status_checker_message_processing_time_count 1"));
        assert!(
            text.contains("# TYPE snapshot_sender_status_checker_files_received_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn forgetting_a_run_drops_its_series_only() {
        let metrics = SnapshotMetrics::default();
        metrics.file_received(&labels("c1", "db.a"));
        metrics.collection_successful(&labels("c1", "db.b"));
        metrics.file_received(&labels("c2", "db.a"));
        metrics.forget_run("c1");
        let text = exposition(&metrics);
        assert!(!text.contains("correlation_id=\"c1\""), "{text}");
        assert!(text.contains("correlation_id=\"c2\""), "{text}");
    }
}
