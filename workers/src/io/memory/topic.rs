//! SNS-like topics: a publish is recorded in order (there are no subscribers in process), with
//! SNS's batch limit, message size limit and FIFO group requirement.

use std::sync::Arc;

use async_trait::async_trait;

use super::registry::Registry;
use crate::io::{
    BatchFailures, EntryFailure, IoError, IoErrorKind, OutgoingMessage, SQS_BATCH_LIMIT,
    SQS_MESSAGE_BYTES, Topic,
};

/// Every topic of a backend, by ARN, with what was published to it.
#[derive(Debug, Default)]
pub(super) struct Topics {
    registry: Registry<Vec<OutgoingMessage>>,
}

impl Topics {
    pub(super) fn create(&self, arn: &str) {
        self.registry.create(arn, Vec::new);
    }

    /// Everything published to `arn`, in order (empty for an unknown topic).
    pub(super) fn published(&self, arn: &str) -> Vec<OutgoingMessage> {
        self.registry
            .with(arn, |published| published.clone())
            .unwrap_or_default()
    }
}

/// A handle on one topic; it may name a topic that does not exist (yet).
#[derive(Debug)]
pub(super) struct MemoryTopic {
    arn: String,
    topics: Arc<Topics>,
}

impl MemoryTopic {
    pub(super) fn new(arn: &str, topics: Arc<Topics>) -> Self {
        Self {
            arn: arn.to_owned(),
            topics,
        }
    }

    /// Why SNS would refuse this entry, if it would.
    fn refusal(&self, index: usize, message: &OutgoingMessage) -> Option<EntryFailure> {
        let failure = |code: &str, text: String| EntryFailure {
            index,
            code: code.to_owned(),
            message: text,
            retryable: false,
        };
        let size = message.body.len()
            + message
                .attributes
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>();
        if size > SQS_MESSAGE_BYTES {
            return Some(failure(
                "InvalidParameter",
                format!("the message is {size} bytes; SNS accepts at most {SQS_MESSAGE_BYTES}"),
            ));
        }
        if self.arn.ends_with(".fifo") && message.group_id.is_none() {
            return Some(failure(
                "InvalidParameter",
                "a FIFO topic needs a message group id on every message".to_owned(),
            ));
        }
        None
    }
}

#[async_trait]
impl Topic for MemoryTopic {
    fn arn(&self) -> &str {
        &self.arn
    }

    async fn publish_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchFailures, IoError> {
        const OPERATION: &str = "PublishBatch";
        let rejected =
            |message: String| IoError::new(OPERATION, &self.arn, IoErrorKind::Rejected, message);
        if messages.is_empty() {
            return Err(rejected(
                "EmptyBatchRequest: a batch needs at least one entry".to_owned(),
            ));
        }
        if messages.len() > SQS_BATCH_LIMIT {
            return Err(rejected(format!(
                "TooManyEntriesInBatchRequest: {} entries; at most {SQS_BATCH_LIMIT} per call",
                messages.len()
            )));
        }
        self.topics
            .registry
            .with(&self.arn, |published| {
                let mut failures = Vec::new();
                for (index, message) in messages.iter().enumerate() {
                    match self.refusal(index, message) {
                        Some(failure) => failures.push(failure),
                        None => published.push(message.clone()),
                    }
                }
                failures
            })
            .ok_or_else(|| {
                IoError::new(
                    OPERATION,
                    &self.arn,
                    IoErrorKind::NotFound,
                    "NotFound: the topic does not exist; create it first (list it in the \
                     pipeline's sinks, or MemoryBackend::create_topic)",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:sns:us-east-1:000000000000:t";
    const FIFO: &str = "arn:aws:sns:us-east-1:000000000000:t.fifo";

    fn message(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.to_owned(),
            ..OutgoingMessage::default()
        }
    }

    fn topic(arn: &str) -> (Arc<Topics>, MemoryTopic) {
        let topics = Arc::new(Topics::default());
        topics.create(arn);
        (Arc::clone(&topics), MemoryTopic::new(arn, topics))
    }

    #[tokio::test]
    async fn published_messages_are_recorded_in_order() {
        let (topics, port) = topic(ARN);
        let failures = port
            .publish_batch(&[message("a"), message("b")])
            .await
            .expect("published");
        assert!(failures.is_empty());
        port.publish_batch(&[message("c")])
            .await
            .expect("published");
        let bodies: Vec<String> = topics.published(ARN).into_iter().map(|m| m.body).collect();
        assert_eq!(bodies, ["a", "b", "c"]);
        topics.create(ARN);
        assert_eq!(topics.published(ARN).len(), 3, "creating twice is a no-op");
    }

    #[tokio::test]
    async fn more_than_ten_or_none_is_rejected() {
        let (topics, port) = topic(ARN);
        let eleven: Vec<OutgoingMessage> = (0..11).map(|i| message(&i.to_string())).collect();
        let error = port.publish_batch(&eleven).await.expect_err("11");
        assert_eq!(error.kind, IoErrorKind::Rejected);
        assert_eq!(
            port.publish_batch(&[]).await.expect_err("empty").kind,
            IoErrorKind::Rejected
        );
        assert!(topics.published(ARN).is_empty());
    }

    #[tokio::test]
    async fn a_fifo_topic_refuses_entries_without_a_group() {
        let (topics, port) = topic(FIFO);
        let grouped = OutgoingMessage {
            group_id: Some("g".to_owned()),
            ..message("grouped")
        };
        let failures = port
            .publish_batch(&[message("loose"), grouped])
            .await
            .expect("the call succeeds");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 0);
        assert!(!failures[0].retryable);
        let published = topics.published(FIFO);
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].body, "grouped");
    }

    #[tokio::test]
    async fn an_oversized_message_fails_alone() {
        let (topics, port) = topic(ARN);
        let failures = port
            .publish_batch(&[message(&"x".repeat(SQS_MESSAGE_BYTES + 1)), message("ok")])
            .await
            .expect("the call succeeds");
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 0);
        assert_eq!(topics.published(ARN).len(), 1);
    }

    #[tokio::test]
    async fn a_missing_topic_is_not_found_and_inspects_empty() {
        let topics = Arc::new(Topics::default());
        let port = MemoryTopic::new(ARN, Arc::clone(&topics));
        let error = port
            .publish_batch(&[message("a")])
            .await
            .expect_err("missing");
        assert_eq!(error.kind, IoErrorKind::NotFound);
        assert!(topics.published(ARN).is_empty());
    }
}
