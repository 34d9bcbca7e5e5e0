//! A backend decorator that counts table calls by operation. DynamoDB bills and throttles per
//! request, so round trips per message is the figure that matters when comparing designs; the
//! snapshot-status benchmark and tests read it from here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::{
    AttributeValue, Backend, IoError, Item, ItemUpdate, ObjectStore, Queue, Stream, Table, Topic,
    UpdateOutcome,
};

/// Table calls made so far, by operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableCalls {
    pub get: usize,
    pub query: usize,
    pub update: usize,
    pub put: usize,
}

impl TableCalls {
    pub fn total(&self) -> usize {
        self.get + self.query + self.update + self.put
    }
}

#[derive(Debug, Default)]
struct Counters {
    get: AtomicUsize,
    query: AtomicUsize,
    update: AtomicUsize,
    put: AtomicUsize,
}

impl Counters {
    fn all(&self) -> [&AtomicUsize; 4] {
        [&self.get, &self.query, &self.update, &self.put]
    }
}

/// Wraps a backend; every table it hands out counts its calls in one shared tally.
#[derive(Debug)]
pub struct CountingBackend {
    inner: Arc<dyn Backend>,
    counters: Arc<Counters>,
}

impl CountingBackend {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            counters: Arc::default(),
        }
    }

    /// The wrapped backend, for calls that should not be counted (test setup, inspection).
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    /// The calls counted since creation or the last [`reset`](Self::reset).
    pub fn table_calls(&self) -> TableCalls {
        let [get, query, update, put] = self.counters.all().map(|c| c.load(Ordering::SeqCst));
        TableCalls {
            get,
            query,
            update,
            put,
        }
    }

    pub fn reset(&self) {
        for counter in self.counters.all() {
            counter.store(0, Ordering::SeqCst);
        }
    }
}

impl Backend for CountingBackend {
    fn queue(&self, url: &str) -> Arc<dyn Queue> {
        self.inner.queue(url)
    }
    fn topic(&self, arn: &str) -> Arc<dyn Topic> {
        self.inner.topic(arn)
    }
    fn stream(&self, name: &str) -> Arc<dyn Stream> {
        self.inner.stream(name)
    }
    fn object_store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.inner.object_store(bucket)
    }
    fn table(&self, name: &str) -> Arc<dyn Table> {
        Arc::new(CountingTable {
            inner: self.inner.table(name),
            counters: Arc::clone(&self.counters),
        })
    }
}

#[derive(Debug)]
struct CountingTable {
    inner: Arc<dyn Table>,
    counters: Arc<Counters>,
}

#[async_trait]
impl Table for CountingTable {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn get(&self, key: &Item, consistent: bool) -> Result<Option<Item>, IoError> {
        self.counters.get.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key, consistent).await
    }

    async fn query(
        &self,
        partition_attribute: &str,
        value: &AttributeValue,
        consistent: bool,
    ) -> Result<Vec<Item>, IoError> {
        self.counters.query.fetch_add(1, Ordering::SeqCst);
        self.inner
            .query(partition_attribute, value, consistent)
            .await
    }

    async fn update(&self, key: &Item, update: &ItemUpdate) -> Result<UpdateOutcome, IoError> {
        self.counters.update.fetch_add(1, Ordering::SeqCst);
        self.inner.update(key, update).await
    }

    async fn put(&self, item: &Item) -> Result<(), IoError> {
        self.counters.put.fetch_add(1, Ordering::SeqCst);
        self.inner.put(item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::memory::MemoryBackend;

    #[tokio::test]
    async fn counts_each_table_call_once_and_resets() {
        let memory = MemoryBackend::new();
        memory.create_table("t", "id", None);
        let counting = CountingBackend::new(Arc::new(memory));
        let table = counting.table("t");
        let key: Item = [("id".to_owned(), AttributeValue::S("a".into()))].into();
        table.put(&key).await.expect("put");
        table.get(&key, true).await.expect("get");
        table.get(&key, false).await.expect("get");
        table
            .query("id", &AttributeValue::S("a".into()), true)
            .await
            .expect("query");
        assert_eq!(
            counting.table_calls(),
            TableCalls {
                get: 2,
                query: 1,
                update: 0,
                put: 1
            }
        );
        assert_eq!(counting.table_calls().total(), 4);
        counting.reset();
        assert_eq!(counting.table_calls(), TableCalls::default());
    }
}
