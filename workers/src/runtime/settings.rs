//! The runtime's settings, resolved once from a Pipeline spec.

use std::time::Duration;

use wharf_crds::PipelineSpec;
use wharf_crds::pipeline::Envelope;

/// How transient failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySettings {
    /// Receives of one message before a transient failure counts as permanent.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// Everything the runtime needs to know about how to poll and process.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeSettings {
    /// Pipeline name, for logs, metrics and default FIFO group ids.
    pub pipeline: String,
    pub batch_size: u32,
    pub wait_time: Duration,
    pub visibility_timeout: Duration,
    pub max_in_flight: usize,
    pub envelope: Envelope,
    pub concurrency: usize,
    pub max_processing: Duration,
    pub retry: RetrySettings,
    /// How long a SIGTERM drain waits for in-flight messages before releasing them.
    pub drain_timeout: Duration,
    /// Arbiters (threads) running message workers; one per core by default.
    pub arbiters: usize,
    /// How long a sink batch waits to fill before it is sent anyway.
    pub batch_linger: Duration,
}

/// A spec the runtime cannot run (validation would have said so too).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("spec.source.sqs is not set: the runtime needs an SQS source")]
    NoSqsSource,
}

fn seconds(value: i32) -> Duration {
    Duration::from_secs(u64::try_from(value).unwrap_or(0))
}

fn count(value: i32) -> usize {
    usize::try_from(value).unwrap_or(1).max(1)
}

impl RuntimeSettings {
    pub fn from_spec(pipeline: &str, spec: &PipelineSpec) -> Result<Self, SettingsError> {
        let sqs = spec.sqs().ok_or(SettingsError::NoSqsSource)?;
        let max_processing = seconds(spec.worker.max_processing_seconds);
        Ok(Self {
            pipeline: pipeline.to_owned(),
            batch_size: u32::try_from(sqs.batch_size).unwrap_or(10).clamp(1, 10),
            wait_time: seconds(sqs.wait_time_seconds),
            visibility_timeout: seconds(sqs.visibility_timeout_seconds).max(Duration::from_secs(1)),
            max_in_flight: count(sqs.max_in_flight),
            envelope: sqs.envelope,
            concurrency: count(spec.worker.concurrency),
            max_processing,
            retry: RetrySettings {
                max_attempts: u32::try_from(spec.retry.max_attempts).unwrap_or(1).max(1),
                initial_backoff: seconds(spec.retry.initial_backoff_seconds),
                max_backoff: seconds(spec.retry.max_backoff_seconds),
            },
            drain_timeout: max_processing,
            arbiters: std::thread::available_parallelism().map_or(1, usize::from),
            batch_linger: Duration::from_millis(10),
        })
    }
}
