//! [`ObjectStore`] on Amazon S3: whole-object puts and gets (the body is read to the end).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::errors::{io_error, redact_credentials};
use crate::io::{IoError, IoErrorKind, ObjectStore, StoredObject};

/// An S3 bucket; the client must use path-style addressing on custom endpoints
/// (see [`super::config::s3_client`]).
#[derive(Clone, Debug)]
pub struct S3Bucket {
    client: Client,
    bucket: String,
}

impl S3Bucket {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// `bucket/key`, the resource named in errors.
    fn resource(&self, key: &str) -> String {
        format!("{}/{key}", self.bucket)
    }
}

#[async_trait]
impl ObjectStore for S3Bucket {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, object: &StoredObject) -> Result<(), IoError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&object.key)
            .body(ByteStream::from(object.body.clone()))
            .set_content_type(object.content_type.clone())
            .send()
            .await
            .map_err(|e| io_error("PutObject", &self.resource(&object.key), e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, IoError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| io_error("GetObject", &self.resource(key), e))?;
        let body = output.body.collect().await.map_err(|e| {
            // The connection broke while the body was streaming: reading again may work.
            IoError::new(
                "GetObject",
                self.resource(key),
                IoErrorKind::Transient,
                redact_credentials(&format!("reading the object body failed: {e}")),
            )
        })?;
        Ok(body.into_bytes().to_vec())
    }
}
