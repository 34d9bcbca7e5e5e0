//! The message workers: one actor per arbiter (core). Each takes messages from the poller and
//! runs them through the handler, at most `worker.concurrency` at a time across all workers.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::handler::{MessageHandler, change_visibility};
use super::ledger::{InFlightLedger, Ticket};
use super::stats::MessageOutcome;
use crate::io::ReceivedMessage;

/// Mailbox bound: the poller's `send().await` waits when a worker falls behind.
const MAILBOX_CAPACITY: usize = 64;

/// A received message for a worker.
pub struct Process {
    pub ticket: Ticket,
    pub message: ReceivedMessage,
}

impl Message for Process {
    type Result = ();
}

/// Signals the drain follows: first stop taking new work, then (after the grace period)
/// abandon what is still running.
#[derive(Clone, Debug, Default)]
pub struct DrainSignals {
    /// Stop polling; release messages not yet started.
    pub stop_intake: CancellationToken,
    /// The grace period is over: release messages still being processed.
    pub abandon: CancellationToken,
}

pub struct MessageWorker {
    pub handler: Arc<MessageHandler>,
    pub ledger: Arc<InFlightLedger>,
    pub slots: Arc<Semaphore>,
    pub signals: DrainSignals,
}

impl Actor for MessageWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

impl Handler<Process> for MessageWorker {
    type Result = ();

    /// Returns at once (so the poller is not held up) and runs the message in the background
    /// of this actor's arbiter.
    fn handle(&mut self, Process { ticket, message }: Process, ctx: &mut Self::Context) {
        let handler = self.handler.clone();
        let ledger = self.ledger.clone();
        let slots = self.slots.clone();
        let signals = self.signals.clone();
        let work = async move {
            let permit = tokio::select! {
                biased;
                _ = signals.stop_intake.cancelled() => None,
                permit = slots.acquire_owned() => permit.ok(),
            };
            let outcome = match permit {
                Some(_permit) => {
                    ledger.start_processing(ticket);
                    tokio::select! {
                        outcome = handler.handle(&message) => Some(outcome),
                        _ = signals.abandon.cancelled() => None,
                    }
                }
                None => None,
            };
            if outcome.is_none() {
                // Not started, or abandoned at the end of the grace period: visible again now.
                change_visibility(
                    handler.source.as_ref(),
                    &message.receipt_handle,
                    std::time::Duration::ZERO,
                )
                .await;
                handler.stats.record(MessageOutcome::Released);
            }
            ledger.release(ticket);
            handler.stats.in_flight.set(ledger.held() as i64);
        };
        ctx.spawn(work.into_actor(self));
    }
}
