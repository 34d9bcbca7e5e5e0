//! The queues of one backend: creating them, wiring redrive policies, and the operations that
//! span two queues (a receive that moves exhausted messages to the dead-letter queue), done
//! under one lock so a message is always in exactly one queue.

use std::time::Duration;

use tokio::sync::futures::OwnedNotified;
use tokio::time::Instant;

use super::queue::{QueueState, QueuedMessage, RedrivePolicy, Refusal};
use super::registry::Registry;
use crate::io::{IoError, IoErrorKind, OutgoingMessage, QueueDepth, ReceivedMessage};

/// Every queue of a backend, by URL.
#[derive(Debug, Default)]
pub(super) struct Queues {
    registry: Registry<QueueState>,
}

/// The result of one receive attempt.
pub(super) enum Attempt {
    Received(Vec<ReceivedMessage>),
    /// Nothing was visible: `changed` fires on the next send, delete or visibility change, and
    /// `next_release` is when the next in-flight message becomes visible on its own.
    Empty {
        changed: OwnedNotified,
        next_release: Option<Instant>,
    },
}

pub(super) fn missing_queue(operation: &'static str, url: &str) -> IoError {
    IoError::new(
        operation,
        url,
        IoErrorKind::NotFound,
        "AWS.SimpleQueueService.NonExistentQueue: the queue does not exist; create it first \
         (list it in the pipeline, or MemoryBackend::create_queue)",
    )
}

impl Queues {
    pub(super) fn create(&self, url: &str) {
        self.registry.create(url, || QueueState::new(url));
    }

    /// Sends messages received `max_receives` times from `source_url` to `dead_letter_url`
    /// instead of delivering them again. Both queues must exist and be of the same type (FIFO or
    /// standard), as SQS requires.
    pub(super) fn configure_redrive(
        &self,
        source_url: &str,
        dead_letter_url: &str,
        max_receives: u32,
    ) -> Result<(), IoError> {
        const OPERATION: &str = "SetQueueAttributes";
        let mut queues = self.registry.lock();
        let dead_letter_fifo = queues
            .get(dead_letter_url)
            .ok_or_else(|| missing_queue(OPERATION, dead_letter_url))?
            .is_fifo();
        let source = queues
            .get_mut(source_url)
            .ok_or_else(|| missing_queue(OPERATION, source_url))?;
        let rejected =
            |message: String| IoError::new(OPERATION, source_url, IoErrorKind::Rejected, message);
        if source_url == dead_letter_url {
            return Err(rejected(
                "a queue cannot be its own dead-letter queue; name another queue".to_owned(),
            ));
        }
        if source.is_fifo() != dead_letter_fifo {
            return Err(rejected(format!(
                "dead-letter queue {dead_letter_url} must be {} like the source queue",
                if source.is_fifo() { "FIFO" } else { "standard" }
            )));
        }
        if !(1..=1000).contains(&max_receives) {
            return Err(rejected(format!(
                "maxReceiveCount {max_receives} is outside 1..=1000"
            )));
        }
        source.set_redrive(RedrivePolicy {
            dead_letter_url: dead_letter_url.to_owned(),
            max_receives,
        });
        Ok(())
    }

    /// Sends one message; returns its message id.
    pub(super) fn send(&self, url: &str, message: &OutgoingMessage) -> Result<String, IoError> {
        const OPERATION: &str = "SendMessage";
        self.with(OPERATION, url, |queue, now| queue.send(message, now))?
            .map_err(|refusal| refusal.into_error(OPERATION, url))
    }

    /// Sends a batch; per-entry refusals come back as `(index, refusal)`.
    pub(super) fn send_batch(
        &self,
        url: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<(usize, Refusal)>, IoError> {
        self.with("SendMessageBatch", url, |queue, now| {
            messages
                .iter()
                .enumerate()
                .filter_map(|(index, m)| queue.send(m, now).err().map(|r| (index, r)))
                .collect()
        })
    }

    pub(super) fn delete_batch(
        &self,
        url: &str,
        handles: &[String],
    ) -> Result<Vec<(usize, Refusal)>, IoError> {
        self.with("DeleteMessageBatch", url, |queue, _| {
            handles
                .iter()
                .enumerate()
                .filter_map(|(index, h)| queue.delete(h).err().map(|r| (index, r)))
                .collect()
        })
    }

    pub(super) fn change_visibility_batch(
        &self,
        url: &str,
        entries: &[(String, Duration)],
    ) -> Result<Vec<(usize, Refusal)>, IoError> {
        self.with("ChangeMessageVisibilityBatch", url, |queue, now| {
            entries
                .iter()
                .enumerate()
                .filter_map(|(index, (h, timeout))| {
                    queue
                        .change_visibility(h, *timeout, now)
                        .err()
                        .map(|r| (index, r))
                })
                .collect()
        })
    }

    pub(super) fn depth(&self, url: &str) -> Result<QueueDepth, IoError> {
        self.with("GetQueueAttributes", url, |queue, now| queue.depth(now))
    }

    /// Every message still in `url`, in send order (empty for an unknown queue).
    pub(super) fn messages(&self, url: &str) -> Vec<QueuedMessage> {
        let now = Instant::now();
        self.registry
            .with(url, |queue| queue.snapshot(now))
            .unwrap_or_default()
    }

    /// One receive without waiting; messages past their redrive limit move to the dead-letter
    /// queue on the way.
    pub(super) fn try_receive(
        &self,
        url: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Attempt, IoError> {
        let now = Instant::now();
        let mut queues = self.registry.lock();
        let redrive = queues
            .get(url)
            .ok_or_else(|| missing_queue("ReceiveMessage", url))?
            .redrive()
            .cloned()
            // Queues are never removed, so the dead-letter queue checked at configuration is
            // still there; the guard keeps a message from being dropped if that ever changes.
            .filter(|policy| queues.contains_key(&policy.dead_letter_url));
        let source = queues
            .get_mut(url)
            .ok_or_else(|| missing_queue("ReceiveMessage", url))?;
        let receipt = source.receive(
            max,
            visibility,
            redrive.as_ref().map(|p| p.max_receives),
            now,
        );
        let attempt = if receipt.messages.is_empty() {
            Attempt::Empty {
                changed: source.changed().notified_owned(),
                next_release: source.next_release(now),
            }
        } else {
            Attempt::Received(receipt.messages)
        };
        if let Some(policy) = redrive
            && let Some(dead_letter) = queues.get_mut(&policy.dead_letter_url)
        {
            for entry in receipt.dead_letters {
                tracing::debug!(
                    queue = url,
                    dead_letter_queue = %policy.dead_letter_url,
                    max_receives = policy.max_receives,
                    "moving a message to the dead-letter queue"
                );
                dead_letter.accept_moved(entry, now);
            }
        }
        Ok(attempt)
    }

    /// Runs `f` on queue `url` with the current time, or fails with NotFound.
    fn with<R>(
        &self,
        operation: &'static str,
        url: &str,
        f: impl FnOnce(&mut QueueState, Instant) -> R,
    ) -> Result<R, IoError> {
        let now = Instant::now();
        self.registry
            .with(url, |queue| f(queue, now))
            .ok_or_else(|| missing_queue(operation, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "https://sqs.local/000000000000/in";
    const DEAD: &str = "https://sqs.local/000000000000/dead";

    fn message(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.to_owned(),
            ..OutgoingMessage::default()
        }
    }

    fn received(attempt: Attempt) -> Vec<ReceivedMessage> {
        match attempt {
            Attempt::Received(messages) => messages,
            Attempt::Empty { .. } => Vec::new(),
        }
    }

    #[test]
    fn redrive_needs_both_queues_of_the_same_type() {
        let queues = Queues::default();
        queues.create(SOURCE);
        let missing = queues
            .configure_redrive(SOURCE, DEAD, 3)
            .expect_err("no DLQ");
        assert_eq!(missing.kind, IoErrorKind::NotFound);
        assert_eq!(missing.resource, DEAD);
        let missing = queues
            .configure_redrive(DEAD, SOURCE, 3)
            .expect_err("no source");
        assert_eq!(missing.kind, IoErrorKind::NotFound);

        queues.create("https://sqs.local/000000000000/dead.fifo");
        let mixed = queues
            .configure_redrive(SOURCE, "https://sqs.local/000000000000/dead.fifo", 3)
            .expect_err("mixed types");
        assert_eq!(mixed.kind, IoErrorKind::Rejected);
        assert_eq!(
            queues
                .configure_redrive(SOURCE, SOURCE, 3)
                .expect_err("self")
                .kind,
            IoErrorKind::Rejected
        );
        queues.create(DEAD);
        assert_eq!(
            queues
                .configure_redrive(SOURCE, DEAD, 0)
                .expect_err("zero")
                .kind,
            IoErrorKind::Rejected
        );
        queues
            .configure_redrive(SOURCE, DEAD, 3)
            .expect("configured");
    }

    #[test]
    fn an_exhausted_message_moves_to_the_dead_letter_queue_on_the_next_receive() {
        let queues = Queues::default();
        queues.create(SOURCE);
        queues.create(DEAD);
        queues
            .configure_redrive(SOURCE, DEAD, 1)
            .expect("configured");
        let id = queues.send(SOURCE, &message("poison")).expect("sent");

        let first = received(
            queues
                .try_receive(SOURCE, 10, Duration::ZERO)
                .expect("receive"),
        );
        assert_eq!(first.len(), 1);
        let second = received(
            queues
                .try_receive(SOURCE, 10, Duration::ZERO)
                .expect("receive"),
        );
        assert!(
            second.is_empty(),
            "moved instead of delivered a second time"
        );
        assert!(queues.messages(SOURCE).is_empty());
        let dead = queues.messages(DEAD);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message_id, id);
        assert_eq!(dead[0].body, "poison");
    }

    #[test]
    fn operations_on_a_missing_queue_are_not_found_and_inspection_is_empty() {
        let queues = Queues::default();
        let errors = [
            queues.send(SOURCE, &message("x")).expect_err("send"),
            queues
                .send_batch(SOURCE, &[message("x")])
                .expect_err("batch"),
            queues
                .delete_batch(SOURCE, &["h".to_owned()])
                .expect_err("delete"),
            queues
                .change_visibility_batch(SOURCE, &[("h".to_owned(), Duration::ZERO)])
                .expect_err("visibility"),
            queues.depth(SOURCE).expect_err("depth"),
            queues
                .try_receive(SOURCE, 1, Duration::ZERO)
                .err()
                .expect("receive"),
        ];
        for error in errors {
            assert_eq!(error.kind, IoErrorKind::NotFound, "{error}");
            assert_eq!(error.resource, SOURCE);
        }
        assert!(queues.messages(SOURCE).is_empty());
    }

    #[test]
    fn a_synchronous_send_reports_a_refusal_as_rejected() {
        let queues = Queues::default();
        queues.create("https://sqs.local/000000000000/q.fifo");
        let error = queues
            .send(
                "https://sqs.local/000000000000/q.fifo",
                &message("no group"),
            )
            .expect_err("refused");
        assert_eq!(error.kind, IoErrorKind::Rejected);
        assert!(error.message.contains("MissingParameter"), "{error}");
    }
}
