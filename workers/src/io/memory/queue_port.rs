//! The [`Queue`] port on the embedded backend: SQS's request limits and long polling (a receive
//! with nothing visible waits for a send, a release or a visibility timeout running out).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::queue::{MAX_VISIBILITY, Refusal};
use super::queue_registry::{Attempt, Queues};
use crate::io::{
    BatchFailures, IoError, IoErrorKind, OutgoingMessage, Queue, QueueDepth, ReceivedMessage,
    SQS_BATCH_LIMIT,
};

/// Longest long-polling wait SQS accepts.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// A handle on one queue; it may name a queue that does not exist (yet), as an SQS URL can.
#[derive(Debug)]
pub(super) struct MemoryQueue {
    url: String,
    queues: Arc<Queues>,
}

impl MemoryQueue {
    pub(super) fn new(url: &str, queues: Arc<Queues>) -> Self {
        Self {
            url: url.to_owned(),
            queues,
        }
    }

    fn rejected(&self, operation: &'static str, message: String) -> IoError {
        IoError::new(operation, &self.url, IoErrorKind::Rejected, message)
    }

    /// SQS refuses an empty batch or one over 10 entries as a whole.
    fn check_batch(&self, operation: &'static str, len: usize) -> Result<(), IoError> {
        if len == 0 {
            return Err(self.rejected(
                operation,
                "EmptyBatchRequest: a batch needs at least one entry".to_owned(),
            ));
        }
        if len > SQS_BATCH_LIMIT {
            return Err(self.rejected(
                operation,
                format!(
                    "TooManyEntriesInBatchRequest: {len} entries; at most {SQS_BATCH_LIMIT} \
                     per call"
                ),
            ));
        }
        Ok(())
    }
}

fn failures(refusals: Vec<(usize, Refusal)>) -> BatchFailures {
    refusals
        .into_iter()
        .map(|(index, refusal)| refusal.into_failure(index))
        .collect()
}

#[async_trait]
impl Queue for MemoryQueue {
    fn url(&self) -> &str {
        &self.url
    }

    /// Messages are taken only when `receive` returns them; waiting holds nothing.
    fn receive_is_cancel_safe(&self) -> bool {
        true
    }

    async fn receive(
        &self,
        max_messages: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, IoError> {
        const OPERATION: &str = "ReceiveMessage";
        if !(1..=SQS_BATCH_LIMIT as u32).contains(&max_messages) {
            return Err(self.rejected(
                OPERATION,
                format!("MaxNumberOfMessages {max_messages} is outside 1..={SQS_BATCH_LIMIT}"),
            ));
        }
        if wait > MAX_WAIT {
            return Err(self.rejected(
                OPERATION,
                format!("WaitTimeSeconds {} is over the 20s limit", wait.as_secs()),
            ));
        }
        if visibility > MAX_VISIBILITY {
            return Err(self.rejected(
                OPERATION,
                format!(
                    "VisibilityTimeout {}s is over the 43200s (12h) limit",
                    visibility.as_secs()
                ),
            ));
        }
        let deadline = Instant::now() + wait;
        loop {
            let attempt = self
                .queues
                .try_receive(&self.url, max_messages as usize, visibility)?;
            let (changed, next_release) = match attempt {
                Attempt::Received(messages) => return Ok(messages),
                Attempt::Empty {
                    changed,
                    next_release,
                } => (changed, next_release),
            };
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            let wake_at = next_release.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<BatchFailures, IoError> {
        const OPERATION: &str = "DeleteMessageBatch";
        self.check_batch(OPERATION, receipt_handles.len())?;
        self.queues
            .delete_batch(&self.url, receipt_handles)
            .map(failures)
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchFailures, IoError> {
        const OPERATION: &str = "ChangeMessageVisibilityBatch";
        self.check_batch(OPERATION, entries.len())?;
        self.queues
            .change_visibility_batch(&self.url, entries)
            .map(failures)
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchFailures, IoError> {
        const OPERATION: &str = "SendMessageBatch";
        self.check_batch(OPERATION, messages.len())?;
        self.queues.send_batch(&self.url, messages).map(failures)
    }

    async fn depth(&self) -> Result<QueueDepth, IoError> {
        self.queues.depth(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://sqs.local/000000000000/q";
    const FIFO: &str = "https://sqs.local/000000000000/q.fifo";
    const VIS: Duration = Duration::from_secs(30);

    fn queue(url: &str) -> (Arc<Queues>, MemoryQueue) {
        let queues = Arc::new(Queues::default());
        queues.create(url);
        let port = MemoryQueue::new(url, Arc::clone(&queues));
        (queues, port)
    }

    fn message(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.to_owned(),
            ..OutgoingMessage::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_received_message_comes_back_after_its_visibility_timeout() {
        let (_, port) = queue(URL);
        port.send_batch(&[message("a")]).await.expect("sent");
        let first = port
            .receive(10, Duration::ZERO, VIS)
            .await
            .expect("receive");
        assert_eq!(first[0].receive_count, 1);

        let started = Instant::now();
        assert!(
            port.receive(10, Duration::ZERO, VIS)
                .await
                .expect("receive")
                .is_empty(),
            "hidden while in flight"
        );
        let depth = port.depth().await.expect("depth");
        assert_eq!((depth.visible, depth.in_flight, depth.delayed), (0, 1, 0));

        // A long poll wakes when the visibility timeout runs out, not at the end of its wait.
        tokio::time::advance(Duration::from_secs(25)).await;
        let again = port
            .receive(10, Duration::from_secs(20), VIS)
            .await
            .expect("receive");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
        assert_eq!(Instant::now() - started, VIS);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_long_poll_takes_nothing() {
        let (_, port) = queue(URL);
        assert!(port.receive_is_cancel_safe());
        let abandoned = tokio::time::timeout(
            Duration::from_secs(1),
            port.receive(10, Duration::from_secs(20), VIS),
        )
        .await;
        assert!(abandoned.is_err(), "the long poll was still waiting");
        port.send_batch(&[message("a")]).await.expect("sent");
        let received = port
            .receive(10, Duration::ZERO, VIS)
            .await
            .expect("receive");
        assert_eq!(received.len(), 1);
        assert_eq!(
            received[0].receive_count, 1,
            "never handed to the abandoned call"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_returns_as_soon_as_a_message_is_sent() {
        let (_, port) = queue(URL);
        let port = Arc::new(port);
        let sender = Arc::clone(&port);
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            sender.send_batch(&[message("late")]).await.expect("sent");
        });
        let got = port
            .receive(10, Duration::from_secs(20), VIS)
            .await
            .expect("receive");
        assert_eq!(got[0].body, "late");
        assert_eq!(Instant::now() - started, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_with_nothing_to_receive_waits_its_full_time() {
        let (_, port) = queue(URL);
        let started = Instant::now();
        let got = port
            .receive(10, Duration::from_secs(5), VIS)
            .await
            .expect("receive");
        assert!(got.is_empty());
        assert_eq!(Instant::now() - started, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_wakes_when_a_fifo_group_is_unblocked_by_a_delete() {
        let (_, port) = queue(FIFO);
        let port = Arc::new(port);
        let grouped = |body: &str| OutgoingMessage {
            body: body.to_owned(),
            group_id: Some("g".to_owned()),
            ..OutgoingMessage::default()
        };
        port.send_batch(&[grouped("1"), grouped("2")])
            .await
            .expect("sent");
        let first = port.receive(1, Duration::ZERO, VIS).await.expect("receive");
        let deleter = Arc::clone(&port);
        let handle = first[0].receipt_handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            deleter.delete_batch(&[handle]).await.expect("deleted");
        });
        let started = Instant::now();
        let second = port
            .receive(10, Duration::from_secs(20), VIS)
            .await
            .expect("receive");
        assert_eq!(second[0].body, "2");
        assert_eq!(Instant::now() - started, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn receive_limits_are_rejected() {
        let (_, port) = queue(URL);
        for (max, wait, visibility) in [
            (0, Duration::ZERO, VIS),
            (11, Duration::ZERO, VIS),
            (1, Duration::from_secs(21), VIS),
            (1, Duration::ZERO, MAX_VISIBILITY + Duration::from_secs(1)),
        ] {
            let error = port
                .receive(max, wait, visibility)
                .await
                .expect_err("over a limit");
            assert_eq!(error.kind, IoErrorKind::Rejected, "{error}");
        }
    }

    #[tokio::test]
    async fn batches_over_ten_or_empty_are_rejected_whole() {
        let (queues, port) = queue(URL);
        let eleven: Vec<OutgoingMessage> = (0..11).map(|i| message(&i.to_string())).collect();
        let error = port.send_batch(&eleven).await.expect_err("11 entries");
        assert_eq!(error.kind, IoErrorKind::Rejected);
        assert!(queues.messages(URL).is_empty(), "nothing of it was sent");
        assert_eq!(
            port.send_batch(&[]).await.expect_err("empty").kind,
            IoErrorKind::Rejected
        );
        let handles: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert_eq!(
            port.delete_batch(&handles).await.expect_err("11").kind,
            IoErrorKind::Rejected
        );
        let entries: Vec<(String, Duration)> =
            handles.into_iter().map(|h| (h, Duration::ZERO)).collect();
        assert_eq!(
            port.change_visibility_batch(&entries)
                .await
                .expect_err("11")
                .kind,
            IoErrorKind::Rejected
        );
        port.send_batch(&eleven[..10]).await.expect("ten is fine");
        assert_eq!(queues.messages(URL).len(), 10);
    }

    #[tokio::test]
    async fn per_entry_failures_name_their_index_and_the_rest_succeed() {
        let (queues, port) = queue(URL);
        let big = message(&"x".repeat(crate::io::SQS_MESSAGE_BYTES + 1));
        let failures = port
            .send_batch(&[message("ok"), big, message("ok too")])
            .await
            .expect("the call succeeds");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 1);
        assert_eq!(failures[0].code, "InvalidParameterValue");
        assert!(!failures[0].retryable);
        assert_eq!(queues.messages(URL).len(), 2);

        let got = port
            .receive(10, Duration::ZERO, VIS)
            .await
            .expect("receive");
        let stale = got[0].receipt_handle.clone();
        port.change_visibility_batch(&[(stale.clone(), Duration::ZERO)])
            .await
            .expect("released");
        port.receive(1, Duration::ZERO, VIS).await.expect("receive");
        let failures = port
            .delete_batch(&[got[1].receipt_handle.clone(), stale])
            .await
            .expect("the call succeeds");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 1);
        assert_eq!(failures[0].code, "ReceiptHandleIsInvalid");
        assert!(!failures[0].retryable);
    }

    #[tokio::test]
    async fn a_handle_for_a_queue_not_created_yet_fails_with_not_found_until_it_is() {
        let queues = Arc::new(Queues::default());
        let port = MemoryQueue::new(URL, Arc::clone(&queues));
        let error = port
            .receive(1, Duration::ZERO, VIS)
            .await
            .expect_err("missing");
        assert_eq!(error.kind, IoErrorKind::NotFound);
        assert_eq!(
            port.send_batch(&[message("a")])
                .await
                .expect_err("missing")
                .kind,
            IoErrorKind::NotFound
        );
        assert_eq!(
            port.depth().await.expect_err("missing").kind,
            IoErrorKind::NotFound
        );
        queues.create(URL);
        port.send_batch(&[message("a")]).await.expect("exists now");
    }
}
