//! The Pipeline's sinks, each behind its own batching actor, and the step that turns a
//! processor's outputs into entries for them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::join_all;
use wharf_crds::PipelineSpec;

use super::batcher::{BatchTarget, Batcher, DeliveryError, Submit};
use super::targets::{ObjectTarget, QueueSendTarget, StreamTarget, TopicTarget};
use crate::io::{Backend, OutgoingMessage, StoredObject, StreamRecord};
use crate::processors::{Output, OutputRecord};

/// One sink, ready to take entries.
#[derive(Clone)]
enum SinkHandle {
    Stream(Addr<Batcher<StreamTarget>>),
    Queue {
        batcher: Addr<Batcher<QueueSendTarget>>,
        fifo: bool,
    },
    Topic {
        batcher: Addr<Batcher<TopicTarget>>,
        fifo: bool,
    },
    Objects {
        batcher: Addr<Batcher<ObjectTarget>>,
        prefix: String,
    },
}

/// Every sink of a Pipeline, by name.
#[derive(Clone)]
pub struct SinkSet {
    pipeline: String,
    sinks: BTreeMap<String, SinkHandle>,
}

/// Where a sink's output ends up, for summaries (`kinesis stream events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkDescription {
    pub name: String,
    pub kind: &'static str,
    pub target: String,
}

/// Starts a batching actor for `target` on `arbiter`.
pub fn start_batcher<T: BatchTarget>(
    target: T,
    linger: Duration,
    arbiter: &ArbiterHandle,
) -> Addr<Batcher<T>> {
    let target = Arc::new(target);
    Batcher::start_in_arbiter(arbiter, move |_| Batcher::new(target, linger))
}

/// The sinks a spec declares, in order, with their destinations.
pub fn describe(spec: &PipelineSpec) -> Vec<SinkDescription> {
    spec.sinks
        .iter()
        .filter_map(|sink| {
            let (kind, target) = if let Some(k) = &sink.kinesis {
                ("kinesis stream", k.stream_name.clone())
            } else if let Some(q) = &sink.sqs {
                ("sqs queue", q.queue_url.clone())
            } else if let Some(t) = &sink.sns {
                ("sns topic", t.topic_arn.clone())
            } else if let Some(b) = &sink.s3 {
                ("s3 bucket", b.bucket.clone())
            } else {
                return None;
            };
            Some(SinkDescription {
                name: sink.name.clone(),
                kind,
                target,
            })
        })
        .collect()
}

impl SinkSet {
    /// Starts one batching actor per sink of `spec`, on `arbiter`.
    pub fn start(
        pipeline: &str,
        spec: &PipelineSpec,
        backend: &dyn Backend,
        linger: Duration,
        arbiter: &ArbiterHandle,
    ) -> Self {
        let mut sinks = BTreeMap::new();
        for sink in &spec.sinks {
            let handle = if let Some(kinesis) = &sink.kinesis {
                SinkHandle::Stream(start_batcher(
                    StreamTarget(backend.stream(&kinesis.stream_name)),
                    linger,
                    arbiter,
                ))
            } else if let Some(sqs) = &sink.sqs {
                let fifo = sqs.queue_url.ends_with(".fifo");
                SinkHandle::Queue {
                    batcher: start_batcher(
                        QueueSendTarget {
                            queue: backend.queue(&sqs.queue_url),
                            fifo,
                        },
                        linger,
                        arbiter,
                    ),
                    fifo,
                }
            } else if let Some(sns) = &sink.sns {
                SinkHandle::Topic {
                    batcher: start_batcher(
                        TopicTarget(backend.topic(&sns.topic_arn)),
                        linger,
                        arbiter,
                    ),
                    fifo: sns.topic_arn.ends_with(".fifo"),
                }
            } else if let Some(s3) = &sink.s3 {
                SinkHandle::Objects {
                    batcher: start_batcher(
                        ObjectTarget(backend.object_store(&s3.bucket)),
                        linger,
                        arbiter,
                    ),
                    prefix: s3.prefix.clone().unwrap_or_default(),
                }
            } else {
                // validate() refuses sinks without a destination; nothing to start.
                continue;
            };
            sinks.insert(sink.name.clone(), handle);
        }
        Self {
            pipeline: pipeline.to_owned(),
            sinks,
        }
    }

    /// Delivers a message's outputs; `Ok` once every one of them is durable.
    pub async fn deliver(
        &self,
        message_id: &str,
        outputs: Vec<Output>,
    ) -> Result<(), DeliveryError> {
        let mut by_sink: BTreeMap<&str, Vec<(usize, OutputRecord)>> = BTreeMap::new();
        for (index, output) in outputs.into_iter().enumerate() {
            let Some((name, _)) = self.sinks.get_key_value(output.sink.as_str()) else {
                return Err(DeliveryError {
                    target: output.sink.clone(),
                    reason: format!(
                        "the processor produced an output for sink {:?}, which spec.sinks does not declare",
                        output.sink
                    ),
                    retryable: false,
                });
            };
            by_sink
                .entry(name.as_str())
                .or_default()
                .push((index, output.record));
        }
        let deliveries = by_sink.into_iter().map(|(name, records)| {
            let handle = self.sinks[name].clone();
            self.deliver_to(name, handle, message_id, records)
        });
        let mut first_error: Option<DeliveryError> = None;
        for result in join_all(deliveries).await {
            if let Err(error) = result {
                // A failure that retrying cannot fix decides the message's fate.
                if first_error
                    .as_ref()
                    .is_none_or(|e| e.retryable && !error.retryable)
                {
                    first_error = Some(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn deliver_to(
        &self,
        name: &str,
        handle: SinkHandle,
        message_id: &str,
        records: Vec<(usize, OutputRecord)>,
    ) -> Result<(), DeliveryError> {
        let mailbox_error = |e: MailboxError| DeliveryError {
            target: name.to_owned(),
            reason: format!("delivery actor unavailable: {e}"),
            retryable: true,
        };
        match handle {
            SinkHandle::Stream(batcher) => {
                let entries = records
                    .into_iter()
                    .map(|(_, r)| StreamRecord {
                        partition_key: r.partition_key.unwrap_or_else(|| message_id.to_owned()),
                        data: r.body.into_bytes(),
                    })
                    .collect();
                batcher.send(Submit(entries)).await.map_err(mailbox_error)?
            }
            SinkHandle::Queue { batcher, fifo } => {
                let entries = records
                    .into_iter()
                    .map(|(i, r)| self.message(r, fifo, message_id, i))
                    .collect();
                batcher.send(Submit(entries)).await.map_err(mailbox_error)?
            }
            SinkHandle::Topic { batcher, fifo } => {
                let entries = records
                    .into_iter()
                    .map(|(i, r)| self.message(r, fifo, message_id, i))
                    .collect();
                batcher.send(Submit(entries)).await.map_err(mailbox_error)?
            }
            SinkHandle::Objects { batcher, prefix } => {
                let entries = records
                    .into_iter()
                    .map(|(i, r)| StoredObject {
                        key: r
                            .object_key
                            .unwrap_or_else(|| format!("{prefix}{message_id}-{i}.json")),
                        body: r.body.into_bytes(),
                        content_type: r.content_type,
                    })
                    .collect();
                batcher.send(Submit(entries)).await.map_err(mailbox_error)?
            }
        }
    }

    /// An SQS/SNS message. On FIFO destinations the group defaults to the pipeline name and
    /// the deduplication id to `<source message id>-<output index>`, so a redelivered source
    /// message does not produce duplicates within the deduplication window.
    fn message(
        &self,
        record: OutputRecord,
        fifo: bool,
        message_id: &str,
        index: usize,
    ) -> OutgoingMessage {
        OutgoingMessage {
            body: record.body,
            attributes: record.attributes,
            group_id: record
                .group_id
                .or_else(|| fifo.then(|| self.pipeline.clone())),
            deduplication_id: record
                .deduplication_id
                .or_else(|| fifo.then(|| format!("{message_id}-{index}"))),
        }
    }
}
