//! [`Queue`] on Amazon SQS: long-polled receives with the system attributes the runtime needs
//! (receive count, sent time, FIFO group), batch delete / change-visibility / send with
//! per-entry failures, and depth from the approximate counters.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};

use super::errors::{batch_entry_failure, build_error, check_batch_size, io_error};
use crate::io::{
    BatchFailures, IoError, MessageAttributes, OutgoingMessage, Queue, QueueDepth, ReceivedMessage,
    SQS_BATCH_LIMIT,
};

const OPERATION_SEND: &str = "SendMessageBatch";

/// Longest long poll SQS allows.
const MAX_WAIT_SECONDS: u64 = 20;
/// Longest visibility timeout SQS allows (12 hours).
const MAX_VISIBILITY_SECONDS: u64 = 43_200;

/// An SQS queue, named by its URL.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Turns the `Failed` entries of a batch response into [`crate::io::EntryFailure`]s.
    fn failures(
        &self,
        operation: &'static str,
        entries: usize,
        failed: &[BatchResultErrorEntry],
    ) -> Result<BatchFailures, IoError> {
        failed
            .iter()
            .map(|f| {
                batch_entry_failure(
                    operation,
                    &self.url,
                    entries,
                    f.id(),
                    f.code(),
                    f.message(),
                    f.sender_fault(),
                )
            })
            .collect()
    }
}

/// Whole seconds of `duration`, capped at `max`, as the SDK's `i32`.
fn seconds(duration: Duration, max: u64) -> i32 {
    // The caps are far below i32::MAX, so the conversion cannot fail.
    i32::try_from(duration.as_secs().min(max)).unwrap_or(i32::MAX)
}

/// A received SQS message in port terms; `None` when SQS left out the id or receipt handle
/// (the message cannot be acknowledged, so it is left to come back after its visibility).
fn received_message(message: &Message) -> Option<ReceivedMessage> {
    let system = message.attributes();
    let system_attribute =
        |name: MessageSystemAttributeName| system.and_then(|attributes| attributes.get(&name));
    let receive_count = system_attribute(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|count| count.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let sent_at = system_attribute(MessageSystemAttributeName::SentTimestamp)
        .and_then(|millis| millis.parse::<u64>().ok())
        .map(|millis| SystemTime::UNIX_EPOCH + Duration::from_millis(millis));
    Some(ReceivedMessage {
        message_id: message.message_id()?.to_owned(),
        receipt_handle: message.receipt_handle()?.to_owned(),
        body: message.body().unwrap_or_default().to_owned(),
        attributes: string_attributes(message),
        receive_count,
        sent_at,
        group_id: system_attribute(MessageSystemAttributeName::MessageGroupId).cloned(),
    })
}

/// The String and Number message attributes (custom subtypes such as `String.json` included);
/// Binary attributes have no string form and are left out.
fn string_attributes(message: &Message) -> MessageAttributes {
    message
        .message_attributes()
        .into_iter()
        .flatten()
        .filter(|(_, value)| {
            let data_type = value.data_type();
            data_type.starts_with("String") || data_type.starts_with("Number")
        })
        .filter_map(|(name, value)| Some((name.clone(), value.string_value()?.to_owned())))
        .collect()
}

fn send_entry(
    index: usize,
    message: &OutgoingMessage,
    url: &str,
) -> Result<SendMessageBatchRequestEntry, IoError> {
    let mut entry = SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&message.body)
        .set_message_group_id(message.group_id.clone())
        .set_message_deduplication_id(message.deduplication_id.clone());
    for (name, value) in &message.attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|e| build_error(OPERATION_SEND, url, e))?;
        entry = entry.message_attributes(name, value);
    }
    entry
        .build()
        .map_err(|e| build_error(OPERATION_SEND, url, e))
}

#[async_trait]
impl Queue for SqsQueue {
    fn url(&self) -> &str {
        &self.url
    }

    async fn receive(
        &self,
        max_messages: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, IoError> {
        let max_messages = i32::try_from(max_messages.clamp(1, SQS_BATCH_LIMIT as u32))
            .unwrap_or(SQS_BATCH_LIMIT as i32);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max_messages)
            .wait_time_seconds(seconds(wait, MAX_WAIT_SECONDS))
            .visibility_timeout(seconds(visibility, MAX_VISIBILITY_SECONDS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| io_error("ReceiveMessage", &self.url, e))?;
        Ok(output
            .messages()
            .iter()
            .filter_map(|message| {
                let received = received_message(message);
                if received.is_none() {
                    tracing::warn!(
                        queue = %self.url,
                        "received a message without an id or receipt handle; it will be \
                         redelivered after its visibility timeout"
                    );
                }
                received
            })
            .collect())
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<BatchFailures, IoError> {
        const OPERATION: &str = "DeleteMessageBatch";
        if receipt_handles.is_empty() {
            return Ok(Vec::new());
        }
        check_batch_size(OPERATION, &self.url, receipt_handles.len(), SQS_BATCH_LIMIT)?;
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(index, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| build_error(OPERATION, &self.url, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| io_error(OPERATION, &self.url, e))?;
        self.failures(OPERATION, receipt_handles.len(), output.failed())
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchFailures, IoError> {
        const OPERATION: &str = "ChangeMessageVisibilityBatch";
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        check_batch_size(OPERATION, &self.url, entries.len(), SQS_BATCH_LIMIT)?;
        let request_entries = entries
            .iter()
            .enumerate()
            .map(|(index, (handle, visibility))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(seconds(*visibility, MAX_VISIBILITY_SECONDS))
                    .build()
                    .map_err(|e| build_error(OPERATION, &self.url, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(request_entries))
            .send()
            .await
            .map_err(|e| io_error(OPERATION, &self.url, e))?;
        self.failures(OPERATION, entries.len(), output.failed())
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchFailures, IoError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        check_batch_size(OPERATION_SEND, &self.url, messages.len(), SQS_BATCH_LIMIT)?;
        let entries = messages
            .iter()
            .enumerate()
            .map(|(index, message)| send_entry(index, message, &self.url))
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| io_error(OPERATION_SEND, &self.url, e))?;
        self.failures(OPERATION_SEND, messages.len(), output.failed())
    }

    async fn depth(&self) -> Result<QueueDepth, IoError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| io_error("GetQueueAttributes", &self.url, e))?;
        let count = |name: QueueAttributeName| {
            output
                .attributes()
                .and_then(|attributes| attributes.get(&name))
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_message_attributes_become_port_fields() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh-1")
            .body("hello")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000123")
            .attributes(MessageSystemAttributeName::MessageGroupId, "g-1")
            .message_attributes(
                "name",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("recorder")
                    .build()
                    .expect("valid attribute"),
            )
            .message_attributes(
                "version",
                MessageAttributeValue::builder()
                    .data_type("Number")
                    .string_value("2")
                    .build()
                    .expect("valid attribute"),
            )
            .message_attributes(
                "blob",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(aws_sdk_sqs::primitives::Blob::new(b"x".to_vec()))
                    .build()
                    .expect("valid attribute"),
            )
            .build();
        let received = received_message(&message).expect("complete message");
        assert_eq!(received.message_id, "m-1");
        assert_eq!(received.receipt_handle, "rh-1");
        assert_eq!(received.body, "hello");
        assert_eq!(received.receive_count, 3);
        assert_eq!(
            received.sent_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        assert_eq!(received.group_id.as_deref(), Some("g-1"));
        assert_eq!(
            received.attributes,
            MessageAttributes::from([
                ("name".to_owned(), "recorder".to_owned()),
                ("version".to_owned(), "2".to_owned()),
            ])
        );
    }

    #[test]
    fn a_message_without_a_receipt_handle_is_skipped() {
        let message = Message::builder().message_id("m-1").body("x").build();
        assert_eq!(received_message(&message), None);
    }

    #[test]
    fn durations_are_capped_at_the_service_limits() {
        assert_eq!(seconds(Duration::from_secs(60), MAX_WAIT_SECONDS), 20);
        assert_eq!(seconds(Duration::from_millis(1500), MAX_WAIT_SECONDS), 1);
        assert_eq!(
            seconds(Duration::from_secs(u64::MAX), MAX_VISIBILITY_SECONDS),
            43_200
        );
    }
}
