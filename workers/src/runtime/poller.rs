//! The poller: asks the source queue for messages only when there are free slots, and hands
//! each to a message worker with `send().await` (bounded mailboxes).

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::warn;

use super::backoff::Backoff;
use super::handler::change_visibility;
use super::ledger::InFlightLedger;
use super::settings::RuntimeSettings;
use super::stats::{MessageOutcome, RuntimeStats};
use super::worker::{DrainSignals, MessageWorker, Process};
use crate::io::Queue;

pub struct SqsPoller {
    pub settings: Arc<RuntimeSettings>,
    pub source: Arc<dyn Queue>,
    pub ledger: Arc<InFlightLedger>,
    pub workers: Vec<Addr<MessageWorker>>,
    pub signals: DrainSignals,
    pub stats: RuntimeStats,
    /// Told when polling has stopped for good.
    pub stopped: Option<oneshot::Sender<()>>,
}

impl Actor for SqsPoller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let poll = poll_until_stopped(
            self.settings.clone(),
            self.source.clone(),
            self.ledger.clone(),
            self.workers.clone(),
            self.signals.clone(),
            self.stats.clone(),
        );
        let stopped = self.stopped.take();
        ctx.spawn(poll.into_actor(self).map(move |(), _, ctx| {
            if let Some(stopped) = stopped {
                let _ = stopped.send(());
            }
            ctx.stop();
        }));
    }
}

async fn poll_until_stopped(
    settings: Arc<RuntimeSettings>,
    source: Arc<dyn Queue>,
    ledger: Arc<InFlightLedger>,
    workers: Vec<Addr<MessageWorker>>,
    signals: DrainSignals,
    stats: RuntimeStats,
) {
    let mut errors = Backoff::new(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(20),
    );
    let mut next_worker = 0usize;
    loop {
        let free = tokio::select! {
            free = ledger.wait_for_free_slots() => free,
            _ = signals.stop_intake.cancelled() => return,
        };
        let wanted = u32::try_from(free)
            .unwrap_or(u32::MAX)
            .min(settings.batch_size);
        // A receive in progress is allowed to finish (at most waitTimeSeconds) rather than
        // being dropped, which could strand messages until their visibility ran out — unless
        // the queue says dropping it is safe.
        let receive = source.receive(wanted, settings.wait_time, settings.visibility_timeout);
        let received = if source.receive_is_cancel_safe() {
            tokio::select! {
                received = receive => received,
                _ = signals.stop_intake.cancelled() => return,
            }
        } else {
            receive.await
        };
        let messages = match received {
            Ok(messages) => {
                errors.reset();
                messages
            }
            Err(error) => {
                stats.poll_errors.inc();
                let delay = errors.next_delay();
                warn!(%error, attempt = errors.attempts(), retry_in_ms = delay.as_millis() as u64, "receive failed");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = signals.stop_intake.cancelled() => return,
                }
            }
        };
        for message in messages {
            stats.received.inc();
            if signals.stop_intake.is_cancelled() || workers.is_empty() {
                change_visibility(
                    source.as_ref(),
                    &message.receipt_handle,
                    std::time::Duration::ZERO,
                )
                .await;
                stats.record(MessageOutcome::Released);
                continue;
            }
            let ticket = ledger.admit(&message.receipt_handle);
            stats.in_flight.set(ledger.held() as i64);
            let worker = &workers[next_worker % workers.len()];
            next_worker = next_worker.wrapping_add(1);
            let receipt = message.receipt_handle.clone();
            if let Err(error) = worker.send(Process { ticket, message }).await {
                warn!(%error, "a message worker is gone; releasing the message");
                change_visibility(source.as_ref(), &receipt, std::time::Duration::ZERO).await;
                stats.record(MessageOutcome::Released);
                ledger.release(ticket);
            }
        }
    }
}
