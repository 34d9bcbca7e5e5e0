//! S3-like buckets: objects by key; a later put replaces the object, a get of a key never put
//! is NotFound (S3's NoSuchKey), as is any call on a bucket that does not exist.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::registry::Registry;
use crate::io::{IoError, IoErrorKind, ObjectStore, StoredObject};

/// Every bucket of a backend, by name, each with its objects by key.
#[derive(Debug, Default)]
pub(super) struct Buckets {
    registry: Registry<BTreeMap<String, StoredObject>>,
}

impl Buckets {
    pub(super) fn create(&self, bucket: &str) {
        self.registry.create(bucket, BTreeMap::new);
    }

    /// Every object in `bucket`, by key (empty for an unknown bucket).
    pub(super) fn objects(&self, bucket: &str) -> Vec<StoredObject> {
        self.registry
            .with(bucket, |objects| objects.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn no_such_bucket(operation: &'static str, bucket: &str) -> IoError {
    IoError::new(
        operation,
        bucket,
        IoErrorKind::NotFound,
        "NoSuchBucket: the bucket does not exist; create it first (list it in the pipeline's \
         sinks, or MemoryBackend::create_bucket)",
    )
}

/// A handle on one bucket; it may name a bucket that does not exist (yet).
#[derive(Debug)]
pub(super) struct MemoryObjectStore {
    bucket: String,
    buckets: Arc<Buckets>,
}

impl MemoryObjectStore {
    pub(super) fn new(bucket: &str, buckets: Arc<Buckets>) -> Self {
        Self {
            bucket: bucket.to_owned(),
            buckets,
        }
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, object: &StoredObject) -> Result<(), IoError> {
        const OPERATION: &str = "PutObject";
        if object.key.is_empty() {
            return Err(IoError::new(
                OPERATION,
                &self.bucket,
                IoErrorKind::Rejected,
                "an object key must not be empty",
            ));
        }
        self.buckets
            .registry
            .with(&self.bucket, |objects| {
                objects.insert(object.key.clone(), object.clone());
            })
            .ok_or_else(|| no_such_bucket(OPERATION, &self.bucket))
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, IoError> {
        const OPERATION: &str = "GetObject";
        self.buckets
            .registry
            .with(&self.bucket, |objects| {
                objects.get(key).map(|o| o.body.clone())
            })
            .ok_or_else(|| no_such_bucket(OPERATION, &self.bucket))?
            .ok_or_else(|| {
                IoError::new(
                    OPERATION,
                    format!("{}/{key}", self.bucket),
                    IoErrorKind::NotFound,
                    "NoSuchKey: no object has this key",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, body: &str) -> StoredObject {
        StoredObject {
            key: key.to_owned(),
            body: body.as_bytes().to_vec(),
            content_type: Some("text/plain".to_owned()),
        }
    }

    fn store() -> (Arc<Buckets>, MemoryObjectStore) {
        let buckets = Arc::new(Buckets::default());
        buckets.create("b");
        (Arc::clone(&buckets), MemoryObjectStore::new("b", buckets))
    }

    #[tokio::test]
    async fn a_put_object_reads_back_and_a_second_put_replaces_it() {
        let (buckets, port) = store();
        port.put(&object("z/1", "first")).await.expect("put");
        port.put(&object("a/1", "other")).await.expect("put");
        port.put(&object("z/1", "second")).await.expect("put");
        assert_eq!(port.get("z/1").await.expect("get"), b"second");
        let keys: Vec<String> = buckets.objects("b").into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["a/1", "z/1"], "by key");
        assert_eq!(
            buckets.objects("b")[1].content_type.as_deref(),
            Some("text/plain")
        );
    }

    #[tokio::test]
    async fn a_missing_key_or_bucket_is_not_found() {
        let (buckets, port) = store();
        let error = port.get("nope").await.expect_err("missing key");
        assert_eq!(error.kind, IoErrorKind::NotFound);
        assert!(error.message.contains("NoSuchKey"), "{error}");

        let missing = MemoryObjectStore::new("absent", Arc::clone(&buckets));
        assert_eq!(
            missing
                .put(&object("k", "v"))
                .await
                .expect_err("no bucket")
                .kind,
            IoErrorKind::NotFound
        );
        assert_eq!(
            missing.get("k").await.expect_err("no bucket").kind,
            IoErrorKind::NotFound
        );
        assert!(buckets.objects("absent").is_empty());
    }

    #[tokio::test]
    async fn an_empty_key_is_rejected() {
        let (_, port) = store();
        assert_eq!(
            port.put(&object("", "v"))
                .await
                .expect_err("empty key")
                .kind,
            IoErrorKind::Rejected
        );
    }
}
