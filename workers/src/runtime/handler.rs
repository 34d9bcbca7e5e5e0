//! What happens to one received message, start to finish: unwrap, process, deliver, then
//! delete — or dead-letter, drop, or schedule a retry — following the message contract.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::time::{Instant, timeout};
use tracing::{Instrument, info_span, warn};

use super::backoff::{jitter, retry_visibility};
use super::batcher::{Batcher, Submit};
use super::settings::RuntimeSettings;
use super::sinks::SinkSet;
use super::stats::{MessageOutcome, RuntimeStats};
use super::targets::{DeleteTarget, QueueSendTarget};
use crate::io::{OutgoingMessage, Queue, ReceivedMessage};
use crate::processing::process_body;
use crate::processors::{MessageContext, Outcome, Processor};

/// Message attribute carrying why a message was dead-lettered.
pub const FAILURE_REASON_ATTRIBUTE: &str = "wharf-failure-reason";
/// Message attribute carrying the id the message had in the source queue.
pub const SOURCE_MESSAGE_ID_ATTRIBUTE: &str = "wharf-source-message-id";
/// SQS allows at most this many message attributes.
const MAX_ATTRIBUTES: usize = 10;
/// Reasons are cut to this many characters in the attribute (the log line has them whole).
const MAX_REASON_CHARS: usize = 1024;

/// Where processing left a message.
enum Verdict {
    Delivered,
    Permanent(String),
    Transient(String),
}

/// Handles messages for one Pipeline.
pub struct MessageHandler {
    pub settings: Arc<RuntimeSettings>,
    pub processor: Arc<dyn Processor>,
    pub source: Arc<dyn Queue>,
    pub sinks: SinkSet,
    pub deleter: Addr<Batcher<DeleteTarget>>,
    pub dead_letter: Option<Addr<Batcher<QueueSendTarget>>>,
    pub stats: RuntimeStats,
}

impl MessageHandler {
    /// Takes one message to its outcome. Never panics: a panicking processor fails the message.
    pub async fn handle(&self, message: &ReceivedMessage) -> MessageOutcome {
        let span = info_span!(
            "message",
            pipeline = %self.settings.pipeline,
            processor = %self.processor.kind(),
            message_id = %message.message_id,
            receive_count = message.receive_count,
        );
        async {
            let started = Instant::now();
            let verdict = match timeout(self.settings.max_processing, self.run(message)).await {
                Ok(verdict) => verdict,
                Err(_) => Verdict::Transient(format!(
                    "processing took longer than worker.maxProcessingSeconds ({} s)",
                    self.settings.max_processing.as_secs()
                )),
            };
            let outcome = self.settle(message, verdict).await;
            self.stats.record(outcome);
            self.stats
                .processing_seconds
                .observe(started.elapsed().as_secs_f64());
            outcome
        }
        .instrument(span)
        .await
    }

    async fn run(&self, message: &ReceivedMessage) -> Verdict {
        let context = MessageContext {
            message_id: message.message_id.clone(),
            receive_count: message.receive_count,
            attributes: message.attributes.clone(),
        };
        let result = process_body(
            self.processor.as_ref(),
            &message.body,
            self.settings.envelope,
            &context,
        )
        .await;
        if result.panicked {
            self.stats.processor_panics.inc();
        }
        let outputs = match result.outcome {
            Outcome::Ok(outputs) => outputs,
            Outcome::Permanent(reason) => return Verdict::Permanent(reason),
            Outcome::Transient(reason) => return Verdict::Transient(reason),
        };
        let mut per_sink: BTreeMap<String, u64> = BTreeMap::new();
        for output in &outputs {
            *per_sink.entry(output.sink.clone()).or_default() += 1;
        }
        match self.sinks.deliver(&message.message_id, outputs).await {
            Ok(()) => {
                for (sink, n) in per_sink {
                    self.stats.add_outputs(&sink, n);
                }
                Verdict::Delivered
            }
            Err(error) if error.retryable => Verdict::Transient(error.to_string()),
            Err(error) => Verdict::Permanent(error.to_string()),
        }
    }

    async fn settle(&self, message: &ReceivedMessage, verdict: Verdict) -> MessageOutcome {
        match verdict {
            Verdict::Delivered => {
                self.delete(message).await;
                MessageOutcome::Processed
            }
            Verdict::Permanent(reason) => self.fail_permanently(message, reason).await,
            Verdict::Transient(reason)
                if message.receive_count >= self.settings.retry.max_attempts =>
            {
                let reason = format!(
                    "gave up after {} attempts (retry.maxAttempts): {reason}",
                    message.receive_count
                );
                self.fail_permanently(message, reason).await
            }
            Verdict::Transient(reason) => {
                let delay = self.backoff(message);
                warn!(%reason, retry_in_seconds = delay.as_secs(), "transient failure; the message will be retried");
                self.make_visible_after(message, delay).await;
                MessageOutcome::Retried
            }
        }
    }

    async fn fail_permanently(&self, message: &ReceivedMessage, reason: String) -> MessageOutcome {
        if let Some(dead_letter) = &self.dead_letter {
            let entry = dead_letter_message(message, &reason);
            match dead_letter.send(Submit(vec![entry])).await {
                Ok(Ok(())) => {
                    warn!(%reason, "dead-lettered");
                    self.delete(message).await;
                    return MessageOutcome::DeadLettered;
                }
                Ok(Err(error)) => {
                    warn!(%reason, %error, "could not dead-letter; the message will be retried")
                }
                Err(error) => {
                    warn!(%reason, %error, "could not dead-letter; the message will be retried")
                }
            }
            // Nothing is lost: the message stays in the source queue and comes back later.
            self.make_visible_after(message, self.backoff(message))
                .await;
            return MessageOutcome::Retried;
        }
        if self.processor.drops_invalid_without_dead_letter() {
            warn!(%reason, "no dead-letter sink is configured: dropping the invalid message");
            self.delete(message).await;
            return MessageOutcome::Dropped;
        }
        warn!(%reason, "no dead-letter sink is configured: leaving the message to the queue's redrive policy");
        self.make_visible_after(message, self.backoff(message))
            .await;
        MessageOutcome::LeftForRedrive
    }

    fn backoff(&self, message: &ReceivedMessage) -> Duration {
        retry_visibility(message.receive_count, &self.settings.retry, jitter())
    }

    async fn delete(&self, message: &ReceivedMessage) {
        let result = self
            .deleter
            .send(Submit(vec![message.receipt_handle.clone()]))
            .await;
        let failure = match result {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(error) => error.to_string(),
        };
        self.stats.delete_failures.inc();
        warn!(error = %failure, "delete failed; the message will be delivered and processed again");
    }

    async fn make_visible_after(&self, message: &ReceivedMessage, delay: Duration) {
        change_visibility(self.source.as_ref(), &message.receipt_handle, delay).await;
    }
}

/// Sets one message's visibility; a failure only delays it until its current lease ends.
pub async fn change_visibility(source: &dyn Queue, receipt_handle: &str, delay: Duration) {
    let entries = [(receipt_handle.to_owned(), delay)];
    match source.change_visibility_batch(&entries).await {
        Ok(failures) if failures.is_empty() => {}
        Ok(failures) => {
            warn!(code = %failures[0].code, message = %failures[0].message, "could not change the message's visibility; it reappears when its lease ends")
        }
        Err(error) => {
            warn!(%error, "could not change the message's visibility; it reappears when its lease ends")
        }
    }
}

/// The dead-letter copy of a message: its body, its attributes, the reason and its id.
pub fn dead_letter_message(message: &ReceivedMessage, reason: &str) -> OutgoingMessage {
    let mut attributes: BTreeMap<String, String> = message
        .attributes
        .iter()
        .filter(|(name, _)| !name.starts_with("wharf-"))
        .take(MAX_ATTRIBUTES - 2)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if attributes.len() < message.attributes.len() {
        warn!(
            kept = attributes.len(),
            of = message.attributes.len(),
            "the dead-letter copy keeps only the message attributes SQS has room for"
        );
    }
    attributes.insert(
        FAILURE_REASON_ATTRIBUTE.to_owned(),
        reason.chars().take(MAX_REASON_CHARS).collect(),
    );
    attributes.insert(
        SOURCE_MESSAGE_ID_ATTRIBUTE.to_owned(),
        message.message_id.clone(),
    );
    OutgoingMessage {
        body: message.body.clone(),
        attributes,
        group_id: message.group_id.clone(),
        deduplication_id: message
            .group_id
            .as_ref()
            .map(|_| message.message_id.clone()),
    }
}
