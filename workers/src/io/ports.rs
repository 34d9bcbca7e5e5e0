//! The ports: what the runtime and processors need from queues, topics, streams, object stores
//! and tables, stated without AWS types. `aws/` implements them with the AWS SDK, `memory/`
//! in process; both keep the semantics that matter (visibility, receive counts, batch limits,
//! per-entry failures).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

/// Most entries in one SQS or SNS batch call.
pub const SQS_BATCH_LIMIT: usize = 10;
/// Most records in one Kinesis PutRecords call.
pub const KINESIS_BATCH_LIMIT: usize = 500;
/// Largest Kinesis PutRecords request, in bytes of data plus partition keys.
pub const KINESIS_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Largest SQS message or SNS publish, in bytes.
pub const SQS_MESSAGE_BYTES: usize = 256 * 1024;

/// User message attributes (string-typed), by name.
pub type MessageAttributes = BTreeMap<String, String>;

/// A message as received from a queue.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Handle for delete / change-visibility calls; valid for this receive only.
    pub receipt_handle: String,
    pub body: String,
    pub attributes: MessageAttributes,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// When the message was first sent to the queue.
    pub sent_at: Option<SystemTime>,
    /// FIFO message group.
    pub group_id: Option<String>,
}

/// A message to send to a queue or publish to a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub attributes: MessageAttributes,
    /// Required by FIFO queues and topics.
    pub group_id: Option<String>,
    /// For FIFO queues without content-based deduplication.
    pub deduplication_id: Option<String>,
}

/// A record for a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// An object for a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

/// One failed entry of a batch call; the entries not listed succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFailure {
    /// Position of the entry in the request.
    pub index: usize,
    /// Service error code, e.g. `ProvisionedThroughputExceededException`.
    pub code: String,
    pub message: String,
    /// Whether sending the entry again may succeed.
    pub retryable: bool,
}

/// The failed entries of a batch call (empty: everything succeeded).
pub type BatchFailures = Vec<EntryFailure>;

/// Queue depth as the queue reports it (approximate, as SQS's are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// A failed call to a backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {resource} failed: {message}")]
pub struct IoError {
    /// The API operation, e.g. `ReceiveMessage`.
    pub operation: &'static str,
    /// Queue URL, topic ARN, stream, bucket or table name.
    pub resource: String,
    pub message: String,
    pub kind: IoErrorKind,
}

/// What kind of failure an [`IoError`] is, which decides whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoErrorKind {
    /// Network trouble, throttling, a 5xx: retrying later may succeed.
    Transient,
    /// The resource does not exist.
    NotFound,
    /// The request itself is wrong (too large, invalid): retrying will not help.
    Rejected,
    /// Credentials or permissions.
    AccessDenied,
}

impl IoError {
    pub fn new(
        operation: &'static str,
        resource: impl Into<String>,
        kind: IoErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            operation,
            resource: resource.into(),
            message: message.into(),
            kind,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind == IoErrorKind::Transient
    }
}

/// A queue: the source of messages, a sink, or a dead-letter destination.
#[async_trait]
pub trait Queue: Send + Sync + fmt::Debug {
    /// The queue's URL (its identity in logs and errors).
    fn url(&self) -> &str;

    /// Receives up to `max_messages` (1..=10) messages, waiting up to `wait` for the first, and
    /// hides them from other consumers for `visibility`.
    async fn receive(
        &self,
        max_messages: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, IoError>;

    /// Whether a `receive` may be abandoned midway without stranding messages. An in-process
    /// queue takes messages only at the instant it returns them, so a drain can stop waiting
    /// at once; over HTTP the server may already have hidden messages for a response that
    /// would never be read, so the call is left to finish (at most its wait time).
    fn receive_is_cancel_safe(&self) -> bool {
        false
    }

    /// Deletes up to 10 messages by receipt handle.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Result<BatchFailures, IoError>;

    /// Sets the visibility timeout of up to 10 received messages (0 makes them visible now).
    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchFailures, IoError>;

    /// Sends up to 10 messages.
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchFailures, IoError>;

    /// Current depth.
    async fn depth(&self) -> Result<QueueDepth, IoError>;
}

/// A publish/subscribe topic.
#[async_trait]
pub trait Topic: Send + Sync + fmt::Debug {
    fn arn(&self) -> &str;

    /// Publishes up to 10 messages.
    async fn publish_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchFailures, IoError>;
}

/// An ordered, sharded record stream.
#[async_trait]
pub trait Stream: Send + Sync + fmt::Debug {
    fn name(&self) -> &str;

    /// Puts up to 500 records (at most 5 MiB in all).
    async fn put_records(&self, records: &[StreamRecord]) -> Result<BatchFailures, IoError>;
}

/// A bucket of objects.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    fn bucket(&self) -> &str;

    async fn put(&self, object: &StoredObject) -> Result<(), IoError>;

    async fn get(&self, key: &str) -> Result<Vec<u8>, IoError>;
}

/// A DynamoDB-style attribute value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttributeValue {
    S(String),
    /// Numbers keep DynamoDB's decimal string form.
    N(String),
    Bool(bool),
    /// A string set.
    Ss(BTreeSet<String>),
    Null,
}

impl AttributeValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::S(s) => Some(s),
            _ => None,
        }
    }

    /// The value of a number attribute as an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::N(n) => n.parse().ok(),
            _ => None,
        }
    }
}

/// An item: attribute values by name.
pub type Item = BTreeMap<String, AttributeValue>;

/// One conditional, atomic update of an item.
///
/// Applied in one request: every `set`, then every `increment` (which requires the attribute to
/// exist, like `SET a = a + :n`), then every `add_to_set`. With a `condition`, nothing is
/// applied unless it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemUpdate {
    pub set: Vec<(String, AttributeValue)>,
    pub increment: Vec<(String, i64)>,
    pub add_to_set: Vec<(String, String)>,
    pub condition: Option<UpdateCondition>,
}

/// A precondition of an [`ItemUpdate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateCondition {
    /// The item exists (so an update never creates one).
    ItemExists,
    /// The item exists and the string set attribute does not contain the value.
    NotInSet { attribute: String, value: String },
}

/// What an update did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Applied; the item as it is now.
    Applied(Item),
    /// The condition did not hold; nothing changed.
    ConditionFailed,
}

/// A key-value table with conditional updates and partition queries.
#[async_trait]
pub trait Table: Send + Sync + fmt::Debug {
    fn name(&self) -> &str;

    /// The item with this key (hash and range attributes).
    async fn get(&self, key: &Item, consistent: bool) -> Result<Option<Item>, IoError>;

    /// Every item whose `partition_attribute` equals `value`, all pages.
    async fn query(
        &self,
        partition_attribute: &str,
        value: &AttributeValue,
        consistent: bool,
    ) -> Result<Vec<Item>, IoError>;

    /// Applies `update` to the item with this key, atomically.
    async fn update(&self, key: &Item, update: &ItemUpdate) -> Result<UpdateOutcome, IoError>;

    /// Writes a whole item.
    async fn put(&self, item: &Item) -> Result<(), IoError>;
}

/// Hands out ports for the resources a Pipeline names: the AWS SDK or the in-memory backend.
pub trait Backend: Send + Sync + fmt::Debug {
    fn queue(&self, url: &str) -> Arc<dyn Queue>;
    fn topic(&self, arn: &str) -> Arc<dyn Topic>;
    fn stream(&self, name: &str) -> Arc<dyn Stream>;
    fn object_store(&self, bucket: &str) -> Arc<dyn ObjectStore>;
    fn table(&self, name: &str) -> Arc<dyn Table>;
}
