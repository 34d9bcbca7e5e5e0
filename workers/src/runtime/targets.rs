//! The batch targets: each port's batched call, with its limits.

use std::sync::Arc;

use super::batcher::{BatchCall, BatchTarget};
use crate::io::{
    KINESIS_BATCH_BYTES, KINESIS_BATCH_LIMIT, ObjectStore, OutgoingMessage, Queue, SQS_BATCH_LIMIT,
    SQS_MESSAGE_BYTES, StoredObject, Stream, StreamRecord, Topic,
};

/// Calls in flight at once where entry order does not matter.
const PARALLEL_CALLS: usize = 4;

/// Records for a Kinesis stream. One call at a time keeps each partition key's records in
/// order (absent partial failures, whose retries land later).
#[derive(Debug)]
pub struct StreamTarget(pub Arc<dyn Stream>);

impl BatchTarget for StreamTarget {
    type Entry = StreamRecord;

    fn name(&self) -> &str {
        self.0.name()
    }
    fn max_entries(&self) -> usize {
        KINESIS_BATCH_LIMIT
    }
    fn max_bytes(&self) -> usize {
        KINESIS_BATCH_BYTES
    }
    fn entry_bytes(&self, entry: &StreamRecord) -> usize {
        entry.data.len() + entry.partition_key.len()
    }
    fn max_concurrent_calls(&self) -> usize {
        1
    }
    fn send(&self, entries: Vec<StreamRecord>) -> BatchCall<StreamRecord> {
        let stream = self.0.clone();
        Box::pin(async move {
            let result = stream.put_records(&entries).await;
            (entries, result)
        })
    }
}

/// Messages for an SQS queue (a sink or the dead-letter queue).
#[derive(Debug)]
pub struct QueueSendTarget {
    pub queue: Arc<dyn Queue>,
    /// FIFO queues get one call at a time so each group stays in order.
    pub fifo: bool,
}

impl BatchTarget for QueueSendTarget {
    type Entry = OutgoingMessage;

    fn name(&self) -> &str {
        self.queue.url()
    }
    fn max_entries(&self) -> usize {
        SQS_BATCH_LIMIT
    }
    fn max_bytes(&self) -> usize {
        SQS_MESSAGE_BYTES
    }
    fn entry_bytes(&self, entry: &OutgoingMessage) -> usize {
        message_bytes(entry)
    }
    fn max_concurrent_calls(&self) -> usize {
        if self.fifo { 1 } else { PARALLEL_CALLS }
    }
    fn send(&self, entries: Vec<OutgoingMessage>) -> BatchCall<OutgoingMessage> {
        let queue = self.queue.clone();
        Box::pin(async move {
            let result = queue.send_batch(&entries).await;
            (entries, result)
        })
    }
}

/// Messages for an SNS topic.
#[derive(Debug)]
pub struct TopicTarget(pub Arc<dyn Topic>);

impl BatchTarget for TopicTarget {
    type Entry = OutgoingMessage;

    fn name(&self) -> &str {
        self.0.arn()
    }
    fn max_entries(&self) -> usize {
        SQS_BATCH_LIMIT
    }
    fn max_bytes(&self) -> usize {
        SQS_MESSAGE_BYTES
    }
    fn entry_bytes(&self, entry: &OutgoingMessage) -> usize {
        message_bytes(entry)
    }
    fn max_concurrent_calls(&self) -> usize {
        PARALLEL_CALLS
    }
    fn send(&self, entries: Vec<OutgoingMessage>) -> BatchCall<OutgoingMessage> {
        let topic = self.0.clone();
        Box::pin(async move {
            let result = topic.publish_batch(&entries).await;
            (entries, result)
        })
    }
}

/// Objects for a bucket: S3 has no batch put, so each "batch" is one object.
#[derive(Debug)]
pub struct ObjectTarget(pub Arc<dyn ObjectStore>);

impl BatchTarget for ObjectTarget {
    type Entry = StoredObject;

    fn name(&self) -> &str {
        self.0.bucket()
    }
    fn max_entries(&self) -> usize {
        1
    }
    fn max_bytes(&self) -> usize {
        usize::MAX
    }
    fn entry_bytes(&self, entry: &StoredObject) -> usize {
        entry.body.len()
    }
    fn max_concurrent_calls(&self) -> usize {
        2 * PARALLEL_CALLS
    }
    fn send(&self, entries: Vec<StoredObject>) -> BatchCall<StoredObject> {
        let store = self.0.clone();
        Box::pin(async move {
            let mut result = Ok(Vec::new());
            for object in &entries {
                if let Err(error) = store.put(object).await {
                    result = Err(error);
                    break;
                }
            }
            (entries, result)
        })
    }
}

/// Deletes from the source queue, by receipt handle.
#[derive(Debug)]
pub struct DeleteTarget(pub Arc<dyn Queue>);

impl BatchTarget for DeleteTarget {
    type Entry = String;

    fn name(&self) -> &str {
        self.0.url()
    }
    fn max_entries(&self) -> usize {
        SQS_BATCH_LIMIT
    }
    fn max_bytes(&self) -> usize {
        usize::MAX
    }
    fn entry_bytes(&self, entry: &String) -> usize {
        entry.len()
    }
    fn max_concurrent_calls(&self) -> usize {
        PARALLEL_CALLS
    }
    fn send(&self, entries: Vec<String>) -> BatchCall<String> {
        let queue = self.0.clone();
        Box::pin(async move {
            let result = queue.delete_batch(&entries).await;
            (entries, result)
        })
    }
}

fn message_bytes(message: &OutgoingMessage) -> usize {
    message.body.len()
        + message
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + "String".len())
            .sum::<usize>()
}
