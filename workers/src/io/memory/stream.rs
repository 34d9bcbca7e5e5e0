//! Kinesis-like streams: a record goes to the shard that owns the hash of its partition key, and
//! gets a sequence number that grows within the shard, so records with one partition key keep
//! their order. PutRecords' count, size and key limits apply.

use std::sync::Arc;

use async_trait::async_trait;

use super::registry::Registry;
use crate::io::{
    BatchFailures, IoError, IoErrorKind, KINESIS_BATCH_BYTES, KINESIS_BATCH_LIMIT, Stream,
    StreamRecord,
};

/// Largest data blob of one record.
const RECORD_BYTES: usize = 1024 * 1024;
/// Longest partition key, in characters.
const PARTITION_KEY_CHARS: usize = 256;

/// A record as stored in a stream, for inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamedRecord {
    /// `shardId-000000000000` and so on, as Kinesis names shards.
    pub shard_id: String,
    /// Zero-padded decimal, so it orders as text the way it orders as a number.
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// One stream's shards, each holding its records in sequence order.
#[derive(Debug)]
struct StreamState {
    shards: Vec<Vec<StreamedRecord>>,
    next_sequence: u64,
}

impl StreamState {
    fn new(shards: usize) -> Self {
        Self {
            shards: vec![Vec::new(); shards.max(1)],
            next_sequence: 0,
        }
    }

    fn append(&mut self, record: &StreamRecord) {
        let shard = shard_for(&record.partition_key, self.shards.len());
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.shards[shard].push(StreamedRecord {
            shard_id: format!("shardId-{shard:012}"),
            sequence_number: format!("{sequence:020}"),
            partition_key: record.partition_key.clone(),
            data: record.data.clone(),
        });
    }
}

/// The shard owning `partition_key` among `shards` equal slices of the hash range, like
/// Kinesis does with MD5. A fixed hash rather than std's seeded one: the same key must land on
/// the same shard in every run. FNV-1a alone leaves the high bits of short, similar keys
/// (`key-1`, `key-2`) nearly equal, so a 64-bit finaliser (MurmurHash3's fmix64) spreads them.
fn shard_for(partition_key: &str, shards: usize) -> usize {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = partition_key.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    // hash * shards / 2^64 is below `shards` for every hash, so the slices cover the range.
    ((u128::from(hash) * shards as u128) >> 64) as usize
}

/// Every stream of a backend, by name.
#[derive(Debug, Default)]
pub(super) struct Streams {
    registry: Registry<StreamState>,
}

impl Streams {
    pub(super) fn create(&self, name: &str, shards: usize) {
        self.registry.create(name, || StreamState::new(shards));
    }

    /// Every record of `name`, by shard then sequence (empty for an unknown stream).
    pub(super) fn records(&self, name: &str) -> Vec<StreamedRecord> {
        self.registry
            .with(name, |stream| stream.shards.concat())
            .unwrap_or_default()
    }
}

/// A handle on one stream; it may name a stream that does not exist (yet).
#[derive(Debug)]
pub(super) struct MemoryStream {
    name: String,
    streams: Arc<Streams>,
}

impl MemoryStream {
    pub(super) fn new(name: &str, streams: Arc<Streams>) -> Self {
        Self {
            name: name.to_owned(),
            streams,
        }
    }

    /// Kinesis validates the whole request before writing any of it.
    fn validate(&self, records: &[StreamRecord]) -> Result<(), String> {
        if records.is_empty() {
            return Err("ValidationException: PutRecords needs at least one record".to_owned());
        }
        if records.len() > KINESIS_BATCH_LIMIT {
            return Err(format!(
                "ValidationException: {} records; at most {KINESIS_BATCH_LIMIT} per call",
                records.len()
            ));
        }
        let bytes: usize = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        if bytes > KINESIS_BATCH_BYTES {
            return Err(format!(
                "ValidationException: {bytes} bytes of data and partition keys; at most \
                 {KINESIS_BATCH_BYTES} per call"
            ));
        }
        for (index, record) in records.iter().enumerate() {
            let key_chars = record.partition_key.chars().count();
            if !(1..=PARTITION_KEY_CHARS).contains(&key_chars) {
                return Err(format!(
                    "ValidationException: record {index}: the partition key has {key_chars} \
                     characters; it needs 1 to {PARTITION_KEY_CHARS}"
                ));
            }
            if record.data.len() > RECORD_BYTES {
                return Err(format!(
                    "ValidationException: record {index}: {} bytes of data; at most \
                     {RECORD_BYTES} per record",
                    record.data.len()
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Stream for MemoryStream {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put_records(&self, records: &[StreamRecord]) -> Result<BatchFailures, IoError> {
        const OPERATION: &str = "PutRecords";
        self.validate(records).map_err(|message| {
            IoError::new(OPERATION, &self.name, IoErrorKind::Rejected, message)
        })?;
        self.streams
            .registry
            .with(&self.name, |stream| {
                for record in records {
                    stream.append(record);
                }
                Vec::new()
            })
            .ok_or_else(|| {
                IoError::new(
                    OPERATION,
                    &self.name,
                    IoErrorKind::NotFound,
                    "ResourceNotFoundException: the stream does not exist; create it first (list \
                     it in the pipeline's sinks, or MemoryBackend::create_stream)",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, data: &str) -> StreamRecord {
        StreamRecord {
            partition_key: key.to_owned(),
            data: data.as_bytes().to_vec(),
        }
    }

    fn stream(shards: usize) -> (Arc<Streams>, MemoryStream) {
        let streams = Arc::new(Streams::default());
        streams.create("s", shards);
        (Arc::clone(&streams), MemoryStream::new("s", streams))
    }

    #[test]
    fn shard_assignment_is_stable_and_spreads_keys() {
        assert_eq!(shard_for("submission-1", 4), shard_for("submission-1", 4));
        assert_eq!(shard_for("anything", 1), 0);
        let mut used = [0usize; 4];
        for i in 0..400 {
            used[shard_for(&format!("key-{i}"), 4)] += 1;
        }
        assert!(
            used.iter().all(|&n| n > 50),
            "every shard gets a share: {used:?}"
        );
        // Pinned: a change of hash would move keys between shards across releases.
        let pinned: Vec<usize> = ["", "a", "b", "submission-1"]
            .iter()
            .map(|key| shard_for(key, 4))
            .collect();
        assert_eq!(pinned, [3, 2, 1, 3]);
    }

    #[tokio::test]
    async fn records_with_one_partition_key_keep_their_order_on_one_shard() {
        let (streams, port) = stream(2);
        let batch: Vec<StreamRecord> = (0..20)
            .map(|i| record(if i % 2 == 0 { "even" } else { "odd" }, &i.to_string()))
            .collect();
        assert!(port.put_records(&batch).await.expect("put").is_empty());
        port.put_records(&[record("even", "20")])
            .await
            .expect("put");

        let stored = streams.records("s");
        assert_eq!(stored.len(), 21);
        let evens: Vec<&StreamedRecord> = stored
            .iter()
            .filter(|r| r.partition_key == "even")
            .collect();
        let data: Vec<&[u8]> = evens.iter().map(|r| r.data.as_slice()).collect();
        let expected: Vec<String> = (0..=20).step_by(2).map(|i: i32| i.to_string()).collect();
        assert_eq!(
            data,
            expected.iter().map(|s| s.as_bytes()).collect::<Vec<_>>()
        );
        assert!(evens.iter().all(|r| r.shard_id == evens[0].shard_id));
        assert!(
            evens
                .windows(2)
                .all(|w| w[0].sequence_number < w[1].sequence_number)
        );
    }

    #[tokio::test]
    async fn inspection_orders_by_shard_then_sequence() {
        let (streams, port) = stream(4);
        let batch: Vec<StreamRecord> = (0..50).map(|i| record(&format!("k{i}"), "x")).collect();
        port.put_records(&batch).await.expect("put");
        let stored = streams.records("s");
        assert!(stored.windows(2).all(|w| {
            (&w[0].shard_id, &w[0].sequence_number) < (&w[1].shard_id, &w[1].sequence_number)
        }));
        assert!(stored[0].shard_id.starts_with("shardId-0000"));
    }

    #[tokio::test]
    async fn over_500_records_or_5_mib_is_rejected_and_nothing_is_written() {
        let (streams, port) = stream(1);
        let many: Vec<StreamRecord> = (0..501).map(|_| record("k", "x")).collect();
        let error = port.put_records(&many).await.expect_err("501 records");
        assert_eq!(error.kind, IoErrorKind::Rejected);
        port.put_records(&many[..500]).await.expect("500 is fine");

        let chunk = "x".repeat(RECORD_BYTES - 1);
        let heavy: Vec<StreamRecord> = (0..6).map(|_| record("k", &chunk)).collect();
        let error = port.put_records(&heavy).await.expect_err("over 5 MiB");
        assert_eq!(error.kind, IoErrorKind::Rejected);
        assert!(error.message.contains("bytes"), "{error}");
        assert_eq!(streams.records("s").len(), 500);
    }

    #[tokio::test]
    async fn bad_partition_keys_oversized_records_and_empty_calls_are_rejected() {
        let (_, port) = stream(1);
        for bad in [
            vec![record("", "x")],
            vec![record(&"k".repeat(257), "x")],
            vec![StreamRecord {
                partition_key: "k".to_owned(),
                data: vec![0; RECORD_BYTES + 1],
            }],
            vec![],
        ] {
            let error = port.put_records(&bad).await.expect_err("invalid");
            assert_eq!(error.kind, IoErrorKind::Rejected, "{error}");
        }
    }

    #[tokio::test]
    async fn a_missing_stream_is_not_found_and_inspects_empty() {
        let streams = Arc::new(Streams::default());
        let port = MemoryStream::new("nope", Arc::clone(&streams));
        let error = port
            .put_records(&[record("k", "x")])
            .await
            .expect_err("missing");
        assert_eq!(error.kind, IoErrorKind::NotFound);
        assert!(streams.records("nope").is_empty());
    }
}
