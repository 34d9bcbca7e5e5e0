//! [`Topic`] on Amazon SNS: `PublishBatch` with FIFO group / deduplication ids and String
//! message attributes, per-entry failures located by the entry's index.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::errors::{batch_entry_failure, build_error, check_batch_size, io_error};
use crate::io::{BatchFailures, IoError, OutgoingMessage, SQS_BATCH_LIMIT, Topic};

const OPERATION: &str = "PublishBatch";

/// An SNS topic, named by its ARN.
#[derive(Clone, Debug)]
pub struct SnsTopic {
    client: Client,
    arn: String,
}

impl SnsTopic {
    pub fn new(client: Client, arn: impl Into<String>) -> Self {
        Self {
            client,
            arn: arn.into(),
        }
    }

    fn entry(
        &self,
        index: usize,
        message: &OutgoingMessage,
    ) -> Result<PublishBatchRequestEntry, IoError> {
        let mut entry = PublishBatchRequestEntry::builder()
            .id(index.to_string())
            .message(&message.body)
            .set_message_group_id(message.group_id.clone())
            .set_message_deduplication_id(message.deduplication_id.clone());
        for (name, value) in &message.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| build_error(OPERATION, &self.arn, e))?;
            entry = entry.message_attributes(name, value);
        }
        entry
            .build()
            .map_err(|e| build_error(OPERATION, &self.arn, e))
    }
}

#[async_trait]
impl Topic for SnsTopic {
    fn arn(&self) -> &str {
        &self.arn
    }

    async fn publish_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchFailures, IoError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        // SNS batches have SQS's limit of ten entries.
        check_batch_size(OPERATION, &self.arn, messages.len(), SQS_BATCH_LIMIT)?;
        let entries = messages
            .iter()
            .enumerate()
            .map(|(index, message)| self.entry(index, message))
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .publish_batch()
            .topic_arn(&self.arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| io_error(OPERATION, &self.arn, e))?;
        output
            .failed()
            .iter()
            .map(|f| {
                batch_entry_failure(
                    OPERATION,
                    &self.arn,
                    messages.len(),
                    f.id(),
                    f.code(),
                    f.message(),
                    f.sender_fault(),
                )
            })
            .collect()
    }
}
