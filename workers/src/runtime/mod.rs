//! The worker runtime on actix: a poller that fills free slots, message workers (one per
//! arbiter), batching actors for sinks, deletes and dead letters, and a visibility heartbeat.
//! Actix stays inside this module: callers get a [`RunningPipeline`] with plain async methods.
//!
//! The message contract it implements is in DESIGN.md: poll only into free slots; unwrap,
//! process, deliver in batches retrying only failed entries; delete only after every output is
//! durable; dead-letter permanent failures with the reason; back off transient ones through
//! visibility; renew visibility while processing; drain on shutdown; a panic fails one message.

mod backoff;
mod batcher;
mod handler;
mod heartbeat;
mod ledger;
mod poller;
mod settings;
mod sinks;
mod stats;
mod targets;
mod worker;

pub use batcher::DeliveryError;
pub use handler::{FAILURE_REASON_ATTRIBUTE, SOURCE_MESSAGE_ID_ATTRIBUTE};
pub use settings::{RetrySettings, RuntimeSettings, SettingsError};
pub use sinks::{SinkDescription, describe as describe_sinks};
pub use stats::{MessageOutcome, RuntimeStats, StatsSnapshot};

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::timeout;
use tracing::{info, warn};
use wharf_crds::PipelineSpec;

use crate::io::Backend;
use crate::processors::Processor;
use handler::MessageHandler;
use heartbeat::VisibilityHeartbeat;
use ledger::InFlightLedger;
use poller::SqsPoller;
use sinks::{SinkSet, start_batcher};
use targets::{DeleteTarget, QueueSendTarget};
use worker::{DrainSignals, MessageWorker};

/// How long releasing still-running messages may take once the grace period is over.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(10);

/// A Pipeline running in this process.
pub struct RunningPipeline {
    settings: Arc<RuntimeSettings>,
    ledger: Arc<InFlightLedger>,
    stats: RuntimeStats,
    signals: DrainSignals,
    poller_stopped: Option<oneshot::Receiver<()>>,
    arbiters: Vec<Arbiter>,
}

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainReport {
    /// Every in-flight message finished within the grace period.
    Finished,
    /// The grace period ran out; this many messages were released unfinished.
    Abandoned(usize),
}

impl RunningPipeline {
    /// Starts the runtime for `spec`. Must be called from inside a running actix `System`.
    pub fn start(
        spec: &PipelineSpec,
        settings: RuntimeSettings,
        processor: Arc<dyn Processor>,
        backend: Arc<dyn Backend>,
        stats: RuntimeStats,
    ) -> Result<Self, SettingsError> {
        let sqs = spec.sqs().ok_or(SettingsError::NoSqsSource)?;
        let settings = Arc::new(settings);
        let source = backend.queue(&sqs.queue_url);
        let ledger = Arc::new(InFlightLedger::new(
            settings.max_in_flight,
            settings.visibility_timeout,
            settings.max_processing,
        ));
        let signals = DrainSignals::default();
        let here = Arbiter::current();

        let sinks = SinkSet::start(
            &settings.pipeline,
            spec,
            backend.as_ref(),
            settings.batch_linger,
            &here,
        );
        let deleter = start_batcher(DeleteTarget(source.clone()), settings.batch_linger, &here);
        let dead_letter = spec.dead_letter.as_ref().map(|dlq| {
            let queue = backend.queue(&dlq.sqs.queue_url);
            let fifo = queue.url().ends_with(".fifo");
            start_batcher(
                QueueSendTarget { queue, fifo },
                settings.batch_linger,
                &here,
            )
        });
        let handler = Arc::new(MessageHandler {
            settings: settings.clone(),
            processor,
            source: source.clone(),
            sinks,
            deleter,
            dead_letter,
            stats: stats.clone(),
        });

        let slots = Arc::new(Semaphore::new(settings.concurrency));
        let arbiters: Vec<Arbiter> = (0..settings.arbiters.max(1))
            .map(|_| Arbiter::new())
            .collect();
        let workers = arbiters
            .iter()
            .map(|arbiter| {
                let worker = MessageWorker {
                    handler: handler.clone(),
                    ledger: ledger.clone(),
                    slots: slots.clone(),
                    signals: signals.clone(),
                };
                MessageWorker::start_in_arbiter(&arbiter.handle(), move |_| worker)
            })
            .collect();

        VisibilityHeartbeat::new(
            source.clone(),
            ledger.clone(),
            settings.visibility_timeout,
            stats.clone(),
        )
        .start();
        let (stopped, poller_stopped) = oneshot::channel();
        SqsPoller {
            settings: settings.clone(),
            source,
            ledger: ledger.clone(),
            workers,
            signals: signals.clone(),
            stats: stats.clone(),
            stopped: Some(stopped),
        }
        .start();
        info!(
            pipeline = %settings.pipeline,
            queue = %sqs.queue_url,
            concurrency = settings.concurrency,
            max_in_flight = settings.max_in_flight,
            arbiters = settings.arbiters,
            "polling"
        );
        Ok(Self {
            settings,
            ledger,
            stats,
            signals,
            poller_stopped: Some(poller_stopped),
            arbiters,
        })
    }

    pub fn stats(&self) -> &RuntimeStats {
        &self.stats
    }

    /// Messages held now (received, not yet deleted or released).
    pub fn held(&self) -> usize {
        self.ledger.held()
    }

    /// A handle that reports [`Self::held`], for tasks that outlive a borrow of the pipeline.
    pub fn held_counter(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let ledger = self.ledger.clone();
        move || ledger.held()
    }

    /// Messages being processed now.
    pub fn processing(&self) -> usize {
        self.ledger.processing()
    }

    /// Stops polling, lets in-flight messages finish within `grace`, releases everything else
    /// at once (visible again), then stops the worker threads.
    pub async fn drain(mut self, grace: Duration) -> DrainReport {
        self.signals.stop_intake.cancel();
        if let Some(stopped) = self.poller_stopped.take() {
            let _ = stopped.await;
        }
        let report = if timeout(grace, self.ledger.wait_until_empty()).await.is_ok() {
            DrainReport::Finished
        } else {
            let unfinished = self.ledger.held();
            warn!(
                pipeline = %self.settings.pipeline,
                unfinished,
                grace_seconds = grace.as_secs(),
                "grace period over; releasing unfinished messages"
            );
            self.signals.abandon.cancel();
            let _ = timeout(ABANDON_TIMEOUT, self.ledger.wait_until_empty()).await;
            DrainReport::Abandoned(unfinished)
        };
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        info!(pipeline = %self.settings.pipeline, ?report, "drained");
        report
    }
}
