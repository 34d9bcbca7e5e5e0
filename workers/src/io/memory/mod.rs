//! The embedded backend: queues, topics, streams, buckets and tables in process memory, keeping
//! the AWS semantics the runtime depends on (visibility timeouts, receive counts, redrive, FIFO
//! groups, batch limits, per-entry failures, conditional updates). `wharf run` uses it by default
//! and the runtime tests run on it, so it is strict wherever AWS is strict.

mod item_update;
mod object_store;
mod queue;
mod queue_port;
mod queue_registry;
mod registry;
mod stream;
mod table;
mod topic;

use std::sync::Arc;

use crate::io::{
    Backend, IoError, Item, ObjectStore, OutgoingMessage, Queue, StoredObject, Stream, Table, Topic,
};

pub use queue::QueuedMessage;
pub use stream::StreamedRecord;

/// All resources of one embedded backend. Clones share them, so a test or `wharf run` can keep a
/// clone to seed and inspect while the runtime uses another.
///
/// Handles ([`Backend`]) can be taken for resources that do not exist; their calls fail with
/// [`IoErrorKind::NotFound`](crate::io::IoErrorKind::NotFound), as AWS's would, until the
/// resource is created with the `create_*` methods.
#[derive(Clone, Debug, Default)]
pub struct MemoryBackend {
    queues: Arc<queue_registry::Queues>,
    topics: Arc<topic::Topics>,
    streams: Arc<stream::Streams>,
    buckets: Arc<object_store::Buckets>,
    tables: Arc<table::Tables>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a queue; a URL ending in `.fifo` makes a FIFO queue. Creating twice is a no-op.
    pub fn create_queue(&self, url: &str) {
        self.queues.create(url);
    }

    /// Moves messages of `source_url` received `max_receives` times to `dead_letter_url` instead
    /// of delivering them again (an SQS redrive policy). Fails with NotFound unless both queues
    /// exist, and with Rejected for a FIFO/standard mix, a queue redriving to itself or a
    /// `max_receives` outside 1..=1000.
    pub fn configure_redrive(
        &self,
        source_url: &str,
        dead_letter_url: &str,
        max_receives: u32,
    ) -> Result<(), IoError> {
        self.queues
            .configure_redrive(source_url, dead_letter_url, max_receives)
    }

    /// Sends one message without going through a [`Queue`] handle (seeding tests and runs);
    /// returns its message id. What SQS would refuse for the entry is a Rejected error.
    pub fn send_message(&self, url: &str, message: OutgoingMessage) -> Result<String, IoError> {
        self.queues.send(url, &message)
    }

    /// Creates a topic; an ARN ending in `.fifo` makes a FIFO topic. Creating twice is a no-op.
    pub fn create_topic(&self, arn: &str) {
        self.topics.create(arn);
    }

    /// Creates a stream with `shards` shards (at least one). Creating twice is a no-op.
    pub fn create_stream(&self, name: &str, shards: usize) {
        self.streams.create(name, shards);
    }

    /// Creates a bucket. Creating twice is a no-op.
    pub fn create_bucket(&self, bucket: &str) {
        self.buckets.create(bucket);
    }

    /// Creates a table keyed by `hash_key` (and `range_key`). Creating twice is a no-op, even
    /// with another key schema.
    pub fn create_table(&self, name: &str, hash_key: &str, range_key: Option<&str>) {
        self.tables.create(name, hash_key, range_key);
    }

    /// Every message still in the queue, visible or in flight, in send order.
    pub fn queue_messages(&self, url: &str) -> Vec<QueuedMessage> {
        self.queues.messages(url)
    }

    /// Every record of the stream, by shard then sequence number.
    pub fn stream_records(&self, name: &str) -> Vec<StreamedRecord> {
        self.streams.records(name)
    }

    /// Everything published to the topic, in publish order.
    pub fn published_messages(&self, arn: &str) -> Vec<OutgoingMessage> {
        self.topics.published(arn)
    }

    /// Every object in the bucket, by key.
    pub fn objects(&self, bucket: &str) -> Vec<StoredObject> {
        self.buckets.objects(bucket)
    }

    /// Every item of the table, by key.
    pub fn table_items(&self, name: &str) -> Vec<Item> {
        self.tables.items(name)
    }
}

impl Backend for MemoryBackend {
    fn queue(&self, url: &str) -> Arc<dyn Queue> {
        Arc::new(queue_port::MemoryQueue::new(url, Arc::clone(&self.queues)))
    }

    fn topic(&self, arn: &str) -> Arc<dyn Topic> {
        Arc::new(topic::MemoryTopic::new(arn, Arc::clone(&self.topics)))
    }

    fn stream(&self, name: &str) -> Arc<dyn Stream> {
        Arc::new(stream::MemoryStream::new(name, Arc::clone(&self.streams)))
    }

    fn object_store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(object_store::MemoryObjectStore::new(
            bucket,
            Arc::clone(&self.buckets),
        ))
    }

    fn table(&self, name: &str) -> Arc<dyn Table> {
        Arc::new(table::MemoryTable::new(name, Arc::clone(&self.tables)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::io::{AttributeValue, IoErrorKind, StreamRecord};

    const SOURCE: &str = "https://sqs.local/000000000000/in";
    const DEAD: &str = "https://sqs.local/000000000000/in-dead";

    fn message(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.to_owned(),
            ..OutgoingMessage::default()
        }
    }

    #[tokio::test]
    async fn clones_share_resources_and_handles_see_later_creation() {
        let backend = MemoryBackend::new();
        let queue = backend.queue(SOURCE);
        let stream = backend.stream("s");
        let bucket = backend.object_store("b");
        let table = backend.table("t");
        let topic = backend.topic("arn:aws:sns:us-east-1:000000000000:t");
        assert_eq!(
            queue.depth().await.expect_err("not created").kind,
            IoErrorKind::NotFound
        );

        let clone = backend.clone();
        clone.create_queue(SOURCE);
        clone.create_stream("s", 2);
        clone.create_bucket("b");
        clone.create_table("t", "id", None);
        clone.create_topic("arn:aws:sns:us-east-1:000000000000:t");

        queue.send_batch(&[message("a")]).await.expect("sent");
        stream
            .put_records(&[StreamRecord {
                partition_key: "k".to_owned(),
                data: b"r".to_vec(),
            }])
            .await
            .expect("put");
        bucket
            .put(&StoredObject {
                key: "k".to_owned(),
                body: b"o".to_vec(),
                content_type: None,
            })
            .await
            .expect("put");
        let mut item = Item::new();
        item.insert("id".to_owned(), AttributeValue::S("1".to_owned()));
        table.put(&item).await.expect("put");
        topic
            .publish_batch(&[message("p")])
            .await
            .expect("published");

        assert_eq!(backend.queue_messages(SOURCE)[0].body, "a");
        assert_eq!(backend.stream_records("s")[0].data, b"r");
        assert_eq!(backend.objects("b")[0].body, b"o");
        assert_eq!(backend.table_items("t"), [item]);
        assert_eq!(
            backend.published_messages("arn:aws:sns:us-east-1:000000000000:t")[0].body,
            "p"
        );
    }

    #[test]
    fn inspection_of_unknown_names_is_empty() {
        let backend = MemoryBackend::new();
        assert!(backend.queue_messages("nope").is_empty());
        assert!(backend.stream_records("nope").is_empty());
        assert!(backend.published_messages("nope").is_empty());
        assert!(backend.objects("nope").is_empty());
        assert!(backend.table_items("nope").is_empty());
    }

    #[test]
    fn creating_twice_keeps_what_is_there() {
        let backend = MemoryBackend::new();
        backend.create_queue(SOURCE);
        backend.send_message(SOURCE, message("kept")).expect("sent");
        backend.create_queue(SOURCE);
        assert_eq!(backend.queue_messages(SOURCE).len(), 1);
    }

    #[test]
    fn redrive_configuration_needs_both_queues() {
        let backend = MemoryBackend::new();
        backend.create_queue(SOURCE);
        let error = backend
            .configure_redrive(SOURCE, DEAD, 2)
            .expect_err("no dead-letter queue");
        assert_eq!(error.kind, IoErrorKind::NotFound);
        backend.create_queue(DEAD);
        backend
            .configure_redrive(SOURCE, DEAD, 2)
            .expect("configured");
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_failing_max_receives_times_lands_in_the_dead_letter_queue_intact() {
        let backend = MemoryBackend::new();
        backend.create_queue(SOURCE);
        backend.create_queue(DEAD);
        backend
            .configure_redrive(SOURCE, DEAD, 2)
            .expect("configured");
        let mut poison = message("poison");
        poison
            .attributes
            .insert("name".to_owned(), "event".to_owned());
        let id = backend.send_message(SOURCE, poison.clone()).expect("sent");
        let queue = backend.queue(SOURCE);
        let visibility = Duration::from_secs(1);
        for attempt in 1..=2 {
            let got = queue
                .receive(10, Duration::from_secs(5), visibility)
                .await
                .expect("receive");
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].receive_count, attempt);
        }
        let third = queue
            .receive(10, Duration::from_secs(5), visibility)
            .await
            .expect("receive");
        assert!(third.is_empty(), "moved, not delivered a third time");
        assert!(backend.queue_messages(SOURCE).is_empty());
        let dead = backend.queue_messages(DEAD);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message_id, id);
        assert_eq!(dead[0].body, poison.body);
        assert_eq!(dead[0].attributes, poison.attributes);
        let from_dead = backend
            .queue(DEAD)
            .receive(1, Duration::ZERO, visibility)
            .await
            .expect("receive");
        assert_eq!(from_dead[0].body, "poison");
    }
}
