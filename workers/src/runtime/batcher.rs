//! One batching actor for every batched call: sink deliveries (Kinesis PutRecords ≤500, SQS
//! and SNS batches ≤10, S3 puts one by one), dead-letter sends and message deletes.
//!
//! Callers `send(Submit(entries)).await` and get an answer once all their entries are durable
//! (or one of them failed for good). Entries from many callers share batches; a batch goes out
//! when it is full or has waited `linger`; only the failed entries of a partially failed batch
//! are retried, with backoff, a bounded number of times.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::io::{BatchFailures, EntryFailure, IoError};

/// How many times one entry is sent before its caller is told it failed.
pub const MAX_ENTRY_ATTEMPTS: u32 = 5;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3);

/// What one batch call gives back: the entries it was given (so the failed ones can be
/// retried) and which of them failed, or why the whole call failed.
pub type BatchCall<E> = BoxFuture<'static, (Vec<E>, Result<BatchFailures, IoError>)>;

/// A destination that accepts entries in batches.
pub trait BatchTarget: Send + Sync + 'static {
    type Entry: Send + Unpin + 'static;

    /// What the target is (a stream name, a queue URL), for errors and logs.
    fn name(&self) -> &str;
    /// Most entries in one call.
    fn max_entries(&self) -> usize;
    /// Most bytes in one call (`usize::MAX` when the target has no such limit).
    fn max_bytes(&self) -> usize;
    fn entry_bytes(&self, entry: &Self::Entry) -> usize;
    /// Calls that may be in flight at once; 1 keeps entries in order (Kinesis, FIFO queues).
    fn max_concurrent_calls(&self) -> usize;
    /// Sends one batch; returns the entries with the result so they can be retried.
    fn send(&self, entries: Vec<Self::Entry>) -> BatchCall<Self::Entry>;
}

/// Entries that could not be made durable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {reason}")]
pub struct DeliveryError {
    pub target: String,
    pub reason: String,
    /// Whether trying the whole message again later may succeed.
    pub retryable: bool,
}

/// Entries to make durable; answered when they all are.
pub struct Submit<E>(pub Vec<E>);

impl<E: Send + 'static> Message for Submit<E> {
    type Result = Result<(), DeliveryError>;
}

/// Tracks one `Submit`'s entries until all are durable or one fails.
struct Waiter {
    remaining: usize,
    reply: Option<oneshot::Sender<Result<(), DeliveryError>>>,
}

impl Waiter {
    fn succeeded(&mut self) {
        self.remaining = self.remaining.saturating_sub(1);
        if self.remaining == 0
            && let Some(reply) = self.reply.take()
        {
            let _ = reply.send(Ok(()));
        }
    }

    fn failed(&mut self, error: DeliveryError) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(error));
        }
    }
}

struct Pending<E> {
    entry: E,
    waiter: Rc<RefCell<Waiter>>,
    attempts: u32,
    enqueued_at: Instant,
    ready_at: Instant,
}

/// The batching actor for one target.
pub struct Batcher<T: BatchTarget> {
    target: Arc<T>,
    linger: Duration,
    pending: VecDeque<Pending<T::Entry>>,
    calls_in_flight: usize,
    wake_at: Option<Instant>,
}

impl<T: BatchTarget> Batcher<T> {
    pub fn new(target: Arc<T>, linger: Duration) -> Self {
        Self {
            target,
            linger,
            pending: VecDeque::new(),
            calls_in_flight: 0,
            wake_at: None,
        }
    }

    /// Sends every batch that is due, within the concurrency limit, and arranges to be woken
    /// for the next one.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.calls_in_flight < self.target.max_concurrent_calls().max(1) {
            let now = Instant::now();
            let ready: Vec<usize> = (0..self.pending.len())
                .filter(|&i| self.pending[i].ready_at <= now)
                .collect();
            let Some(oldest) = ready.iter().map(|&i| self.pending[i].enqueued_at).min() else {
                if let Some(next) = self.pending.iter().map(|p| p.ready_at).min() {
                    self.wake(ctx, next);
                }
                return;
            };
            let full = ready.len() >= self.target.max_entries()
                || ready
                    .iter()
                    .map(|&i| self.target.entry_bytes(&self.pending[i].entry))
                    .sum::<usize>()
                    >= self.target.max_bytes();
            if !full && now < oldest + self.linger {
                self.wake(ctx, oldest + self.linger);
                return;
            }
            let batch = self.take_batch(&ready);
            self.call(batch, ctx);
        }
    }

    fn take_batch(&mut self, ready: &[usize]) -> Vec<Pending<T::Entry>> {
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        for &i in ready {
            let size = self.target.entry_bytes(&self.pending[i].entry);
            if chosen.len() == self.target.max_entries()
                || (!chosen.is_empty() && bytes + size > self.target.max_bytes())
            {
                break;
            }
            bytes += size;
            chosen.push(i);
        }
        // Remove from the back so earlier indexes stay valid, then restore order.
        let mut batch: Vec<Pending<T::Entry>> = chosen
            .iter()
            .rev()
            .filter_map(|&i| self.pending.remove(i))
            .collect();
        batch.reverse();
        batch
    }

    fn wake(&mut self, ctx: &mut Context<Self>, at: Instant) {
        if self.wake_at.is_some_and(|scheduled| scheduled <= at) {
            return;
        }
        self.wake_at = Some(at);
        ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| {
            act.wake_at = None;
            act.pump(ctx);
        });
    }

    fn call(&mut self, batch: Vec<Pending<T::Entry>>, ctx: &mut Context<Self>) {
        self.calls_in_flight += 1;
        let mut entries = Vec::with_capacity(batch.len());
        let mut bookkeeping = Vec::with_capacity(batch.len());
        for pending in batch {
            entries.push(pending.entry);
            bookkeeping.push((pending.waiter, pending.attempts + 1, pending.enqueued_at));
        }
        let call = self.target.send(entries);
        ctx.spawn(
            call.into_actor(self)
                .map(move |(entries, result), act, ctx| {
                    act.calls_in_flight -= 1;
                    act.settle(entries, bookkeeping, result);
                    act.pump(ctx);
                }),
        );
    }

    /// Answers callers whose entries are done and requeues the retryable failures.
    fn settle(
        &mut self,
        entries: Vec<T::Entry>,
        bookkeeping: Vec<(Rc<RefCell<Waiter>>, u32, Instant)>,
        result: Result<BatchFailures, IoError>,
    ) {
        let failures: Vec<Option<EntryFailure>> = match result {
            Ok(failures) => {
                let mut by_index = vec![None; entries.len()];
                for failure in failures {
                    if let Some(slot) = by_index.get_mut(failure.index) {
                        *slot = Some(failure);
                    }
                }
                by_index
            }
            Err(error) => {
                let retryable = error.is_retryable();
                (0..entries.len())
                    .map(|index| {
                        Some(EntryFailure {
                            index,
                            code: format!("{:?}", error.kind),
                            message: error.to_string(),
                            retryable,
                        })
                    })
                    .collect()
            }
        };
        let now = Instant::now();
        let mut retries = Vec::new();
        for ((entry, (waiter, attempts, enqueued_at)), failure) in
            entries.into_iter().zip(bookkeeping).zip(failures)
        {
            match failure {
                None => waiter.borrow_mut().succeeded(),
                Some(failure) if failure.retryable && attempts < MAX_ENTRY_ATTEMPTS => {
                    tracing::debug!(target = self.target.name(), code = %failure.code, attempts, "retrying a failed batch entry");
                    retries.push(Pending {
                        entry,
                        waiter,
                        attempts,
                        enqueued_at,
                        ready_at: now + retry_delay(attempts),
                    });
                }
                Some(failure) => waiter.borrow_mut().failed(DeliveryError {
                    target: self.target.name().to_owned(),
                    reason: if failure.retryable {
                        format!(
                            "gave up after {attempts} attempts: {}: {}",
                            failure.code, failure.message
                        )
                    } else {
                        format!("{}: {}", failure.code, failure.message)
                    },
                    retryable: failure.retryable,
                }),
            }
        }
        // Retried entries go first: they are the oldest.
        for pending in retries.into_iter().rev() {
            self.pending.push_front(pending);
        }
    }
}

fn retry_delay(attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
    FIRST_RETRY_DELAY
        .saturating_mul(factor)
        .min(MAX_RETRY_DELAY)
}

impl<T: BatchTarget> Actor for Batcher<T> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl<T: BatchTarget> Handler<Submit<T::Entry>> for Batcher<T> {
    type Result = ResponseFuture<Result<(), DeliveryError>>;

    fn handle(
        &mut self,
        Submit(entries): Submit<T::Entry>,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if entries.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let (reply, answer) = oneshot::channel();
        let waiter = Rc::new(RefCell::new(Waiter {
            remaining: entries.len(),
            reply: Some(reply),
        }));
        let now = Instant::now();
        self.pending
            .extend(entries.into_iter().map(|entry| Pending {
                entry,
                waiter: waiter.clone(),
                attempts: 0,
                enqueued_at: now,
                ready_at: now,
            }));
        self.pump(ctx);
        let target = self.target.name().to_owned();
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                Err(DeliveryError {
                    target,
                    reason: "the delivery actor stopped before the entries were sent".to_owned(),
                    retryable: true,
                })
            })
        })
    }
}
