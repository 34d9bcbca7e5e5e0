//! Fault injection at the ports, for failures an emulator cannot produce on demand: a stream
//! whose PutRecords partially fails the way Kinesis does under throttling.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use wharf_workers::io::{
    Backend, BatchFailures, EntryFailure, IoError, ObjectStore, Queue, Stream, StreamRecord, Table,
    Topic,
};

/// Fails every `nth` record of each PutRecords call with `ProvisionedThroughputExceeded` —
/// each distinct record at most once — and forwards the rest to the real stream.
pub struct ThrottlingStream {
    inner: Arc<dyn Stream>,
    nth: usize,
    already_failed: Mutex<HashSet<Vec<u8>>>,
    calls: AtomicUsize,
    entries_sent: AtomicUsize,
    entries_failed: AtomicUsize,
}

impl ThrottlingStream {
    pub fn new(inner: Arc<dyn Stream>, nth: usize) -> Self {
        Self {
            inner,
            nth: nth.max(1),
            already_failed: Mutex::default(),
            calls: AtomicUsize::new(0),
            entries_sent: AtomicUsize::new(0),
            entries_failed: AtomicUsize::new(0),
        }
    }

    /// PutRecords calls made.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Records handed to PutRecords, retries included.
    pub fn entries_sent(&self) -> usize {
        self.entries_sent.load(Ordering::SeqCst)
    }

    /// Records this decorator failed.
    pub fn entries_failed(&self) -> usize {
        self.entries_failed.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for ThrottlingStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottlingStream")
            .field("stream", &self.inner.name())
            .field("nth", &self.nth)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Stream for ThrottlingStream {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn put_records(&self, records: &[StreamRecord]) -> Result<BatchFailures, IoError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.entries_sent.fetch_add(records.len(), Ordering::SeqCst);
        let mut failures = Vec::new();
        let mut forwarded = Vec::new();
        let mut forwarded_index = Vec::new();
        {
            let mut already_failed = self
                .already_failed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (index, record) in records.iter().enumerate() {
                if index % self.nth == 0 && already_failed.insert(record.data.clone()) {
                    failures.push(EntryFailure {
                        index,
                        code: "ProvisionedThroughputExceededException".to_owned(),
                        message: "Rate exceeded for shard (injected)".to_owned(),
                        retryable: true,
                    });
                } else {
                    forwarded.push(record.clone());
                    forwarded_index.push(index);
                }
            }
        }
        self.entries_failed
            .fetch_add(failures.len(), Ordering::SeqCst);
        if !forwarded.is_empty() {
            for failure in self.inner.put_records(&forwarded).await? {
                failures.push(EntryFailure {
                    index: forwarded_index[failure.index],
                    ..failure
                });
            }
        }
        failures.sort_by_key(|f| f.index);
        Ok(failures)
    }
}

/// A backend whose streams are [`ThrottlingStream`]s over another backend's; everything else
/// is the other backend's own.
#[derive(Debug)]
pub struct ThrottlingBackend {
    inner: Arc<dyn Backend>,
    nth: usize,
    streams: Mutex<Vec<Arc<ThrottlingStream>>>,
}

impl ThrottlingBackend {
    pub fn new(inner: Arc<dyn Backend>, nth: usize) -> Self {
        Self {
            inner,
            nth,
            streams: Mutex::default(),
        }
    }

    /// The decorated stream called `name`, once the runtime has asked for it.
    pub fn stream_named(&self, name: &str) -> Option<Arc<ThrottlingStream>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|s| s.name() == name)
            .cloned()
    }
}

impl Backend for ThrottlingBackend {
    fn queue(&self, url: &str) -> Arc<dyn Queue> {
        self.inner.queue(url)
    }

    fn topic(&self, arn: &str) -> Arc<dyn Topic> {
        self.inner.topic(arn)
    }

    fn stream(&self, name: &str) -> Arc<dyn Stream> {
        let stream = Arc::new(ThrottlingStream::new(self.inner.stream(name), self.nth));
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(stream.clone());
        stream
    }

    fn object_store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.inner.object_store(bucket)
    }

    fn table(&self, name: &str) -> Arc<dyn Table> {
        self.inner.table(name)
    }
}
