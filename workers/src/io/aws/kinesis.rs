//! [`Stream`] on Amazon Kinesis Data Streams: `PutRecords`, whose response lists one result
//! per record in request order; a result with an error code is a failed entry.

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, PutRecordsResultEntry};

use super::errors::{build_error, check_batch_size, io_error, kind_for_code, redact_credentials};
use crate::io::{
    BatchFailures, EntryFailure, IoError, IoErrorKind, KINESIS_BATCH_LIMIT, Stream, StreamRecord,
};

const OPERATION: &str = "PutRecords";

/// A Kinesis data stream, named by its stream name.
#[derive(Clone, Debug)]
pub struct KinesisStream {
    client: Client,
    name: String,
}

impl KinesisStream {
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }
}

/// The failed records of a PutRecords response. ProvisionedThroughputExceeded and
/// InternalFailure (the two codes Kinesis documents per record) are worth sending again.
fn record_failures(results: &[PutRecordsResultEntry]) -> BatchFailures {
    results
        .iter()
        .enumerate()
        .filter_map(|(index, result)| {
            let code = result.error_code()?;
            Some(EntryFailure {
                index,
                code: code.to_owned(),
                message: redact_credentials(result.error_message().unwrap_or(code)),
                retryable: kind_for_code(Some(code), None) == IoErrorKind::Transient,
            })
        })
        .collect()
}

#[async_trait]
impl Stream for KinesisStream {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put_records(&self, records: &[StreamRecord]) -> Result<BatchFailures, IoError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        check_batch_size(OPERATION, &self.name, records.len(), KINESIS_BATCH_LIMIT)?;
        let entries = records
            .iter()
            .map(|record| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&record.partition_key)
                    .data(Blob::new(record.data.clone()))
                    .build()
                    .map_err(|e| build_error(OPERATION, &self.name, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .put_records()
            .stream_name(&self.name)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(|e| io_error(OPERATION, &self.name, e))?;
        let results = output.records();
        if results.len() != records.len() {
            // Without one result per record the failed ones cannot be told apart: fail the
            // call so that the caller sends them all again (at least once, never lost).
            return Err(IoError::new(
                OPERATION,
                &self.name,
                IoErrorKind::Transient,
                format!(
                    "the response has {} results for {} records",
                    results.len(),
                    records.len()
                ),
            ));
        }
        Ok(record_failures(results))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_and_internal_failures_are_retryable_others_are_not() {
        let results = [
            PutRecordsResultEntry::builder()
                .sequence_number("1")
                .shard_id("shardId-0")
                .build(),
            PutRecordsResultEntry::builder()
                .error_code("ProvisionedThroughputExceededException")
                .error_message("Rate exceeded for shard shardId-0")
                .build(),
            PutRecordsResultEntry::builder()
                .error_code("InternalFailure")
                .build(),
            PutRecordsResultEntry::builder()
                .error_code("KMSAccessDeniedException")
                .error_message("denied")
                .build(),
        ];
        assert_eq!(
            record_failures(&results),
            vec![
                EntryFailure {
                    index: 1,
                    code: "ProvisionedThroughputExceededException".into(),
                    message: "Rate exceeded for shard shardId-0".into(),
                    retryable: true,
                },
                EntryFailure {
                    index: 2,
                    code: "InternalFailure".into(),
                    message: "InternalFailure".into(),
                    retryable: true,
                },
                EntryFailure {
                    index: 3,
                    code: "KMSAccessDeniedException".into(),
                    message: "denied".into(),
                    retryable: false,
                },
            ]
        );
    }
}
