//! Adapters from the ports to the AWS SDK, one file per service, for AWS and AWS-compatible
//! endpoints (LocalStack, moto). Every SDK error becomes an [`crate::io::IoError`] whose kind
//! decides retries (see `errors`).

pub mod config;
mod dynamodb;
mod errors;
mod kinesis;
mod s3;
mod sns;
mod sqs;

use std::sync::Arc;

pub use config::{AwsOverrides, AwsSetupError, check_ready, sdk_config};
pub use dynamodb::DynamoTable;
pub use kinesis::KinesisStream;
pub use s3::S3Bucket;
pub use sns::SnsTopic;
pub use sqs::SqsQueue;

use crate::io::{Backend, ObjectStore, Queue, Stream, Table, Topic};

/// The AWS backend: one SDK client per service, built once and shared (they pool connections)
/// by every adapter it hands out.
#[derive(Clone, Debug)]
pub struct AwsBackend {
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
    kinesis: aws_sdk_kinesis::Client,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl AwsBackend {
    /// Clients for `config`, typically from [`sdk_config`].
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            kinesis: aws_sdk_kinesis::Client::new(config),
            s3: config::s3_client(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
        }
    }
}

impl Backend for AwsBackend {
    fn queue(&self, url: &str) -> Arc<dyn Queue> {
        Arc::new(SqsQueue::new(self.sqs.clone(), url))
    }

    fn topic(&self, arn: &str) -> Arc<dyn Topic> {
        Arc::new(SnsTopic::new(self.sns.clone(), arn))
    }

    fn stream(&self, name: &str) -> Arc<dyn Stream> {
        Arc::new(KinesisStream::new(self.kinesis.clone(), name))
    }

    fn object_store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(S3Bucket::new(self.s3.clone(), bucket))
    }

    fn table(&self, name: &str) -> Arc<dyn Table> {
        Arc::new(DynamoTable::new(self.dynamodb.clone(), name))
    }
}
