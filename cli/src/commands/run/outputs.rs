//! The resources a run needs on the embedded backend, and where a run's outputs end up: files
//! written from the embedded backend's memory, or the AWS resources the sinks name.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};
use wharf_crds::{Pipeline, PipelineSpec};
use wharf_workers::io::memory::MemoryBackend;
use wharf_workers::io::{AttributeValue, Item};
use wharf_workers::runtime::describe_sinks;

use crate::verbatim::Verbatim;

/// Key attributes of the snapshot status processor's tables (seed 002's schema).
const EXPORT_STATUS_KEY: (&str, &str) = ("CorrelationId", "CollectionName");
const PRODUCT_STATUS_KEY: (&str, &str) = ("Correlation_Id", "DataProduct");

/// Where one sink's (or the dead-letter queue's) outputs went.
#[derive(Clone, Debug, Serialize)]
pub struct Destination {
    pub name: String,
    pub location: String,
}

/// The dead-letter queue the embedded backend gives a Pipeline without `spec.deadLetter`, the
/// way an SQS source is usually set up with a redrive policy: a message that keeps failing ends
/// there after `retry.maxAttempts` receives instead of cycling until the run is stopped.
pub fn redrive_queue_url(source_url: &str) -> String {
    match source_url.strip_suffix(".fifo") {
        Some(base) => format!("{base}-redrive.fifo"),
        None => format!("{source_url}-redrive"),
    }
}

/// Creates everything `pipeline` reads from or writes to in `memory`.
pub fn prepare_embedded(memory: &MemoryBackend, pipeline: &Pipeline) -> anyhow::Result<()> {
    let spec = &pipeline.spec;
    let source = spec
        .sqs()
        .context("spec.source.sqs is not set: the embedded backend runs SQS sources")?;
    memory.create_queue(&source.queue_url);
    match &spec.dead_letter {
        Some(dead_letter) => memory.create_queue(&dead_letter.sqs.queue_url),
        None => {
            let redrive = redrive_queue_url(&source.queue_url);
            memory.create_queue(&redrive);
            let max_receives = u32::try_from(spec.retry.max_attempts).unwrap_or(1).max(1);
            memory.configure_redrive(&source.queue_url, &redrive, max_receives)?;
        }
    }
    for sink in &spec.sinks {
        if let Some(kinesis) = &sink.kinesis {
            memory.create_stream(&kinesis.stream_name, 2);
        }
        if let Some(sqs) = &sink.sqs {
            memory.create_queue(&sqs.queue_url);
        }
        if let Some(sns) = &sink.sns {
            memory.create_topic(&sns.topic_arn);
        }
        if let Some(s3) = &sink.s3 {
            memory.create_bucket(&s3.bucket);
        }
    }
    if let Some(snapshot) = &spec.processor.snapshot_status {
        let (hash, range) = EXPORT_STATUS_KEY;
        memory.create_table(&snapshot.export_status_table, hash, Some(range));
        let (hash, range) = PRODUCT_STATUS_KEY;
        memory.create_table(&snapshot.product_status_table, hash, Some(range));
    }
    Ok(())
}

/// Writes what the run produced under `dir`: one JSON-lines file per sink, the dead letters and
/// the tables; returns where each went.
pub fn write_embedded(
    memory: &MemoryBackend,
    pipeline: &Pipeline,
    dir: &Path,
) -> anyhow::Result<Vec<Destination>> {
    let spec = &pipeline.spec;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for sink in &spec.sinks {
        let location = if let Some(kinesis) = &sink.kinesis {
            let records = memory.stream_records(&kinesis.stream_name);
            let lines = records.iter().map(|r| StreamLine {
                shard_id: &r.shard_id,
                sequence_number: &r.sequence_number,
                partition_key: &r.partition_key,
                data: Verbatim::from_bytes(&r.data),
            });
            write_lines(&dir.join(format!("{}.jsonl", sink.name)), lines)?
        } else if let Some(sqs) = &sink.sqs {
            let messages = memory.queue_messages(&sqs.queue_url);
            let lines = messages.iter().map(
                |m| json!({"body": m.body, "attributes": m.attributes, "groupId": m.group_id}),
            );
            write_lines(&dir.join(format!("{}.jsonl", sink.name)), lines)?
        } else if let Some(sns) = &sink.sns {
            let published = memory.published_messages(&sns.topic_arn);
            let lines = published.iter().map(
                |m| json!({"message": m.body, "attributes": m.attributes, "groupId": m.group_id}),
            );
            write_lines(&dir.join(format!("{}.jsonl", sink.name)), lines)?
        } else if let Some(s3) = &sink.s3 {
            write_objects(memory, &s3.bucket, &dir.join(&sink.name))?
        } else {
            continue;
        };
        written.push(Destination {
            name: sink.name.clone(),
            location,
        });
    }
    let source_url = spec.sqs().map(|s| s.queue_url.clone()).unwrap_or_default();
    let dead_letter_url = spec.dead_letter.as_ref().map_or_else(
        || redrive_queue_url(&source_url),
        |d| d.sqs.queue_url.clone(),
    );
    let dead_letters = memory.queue_messages(&dead_letter_url);
    let lines = dead_letters
        .iter()
        .map(|m| json!({"body": m.body, "attributes": m.attributes}));
    written.push(Destination {
        name: "dead-letter".to_owned(),
        location: write_lines(&dir.join("dead-letter.jsonl"), lines)?,
    });
    if let Some(snapshot) = &spec.processor.snapshot_status {
        for table in [
            &snapshot.export_status_table,
            &snapshot.product_status_table,
        ] {
            let items = memory.table_items(table);
            written.push(Destination {
                name: format!("table {table}"),
                location: write_lines(
                    &dir.join(format!("{table}.jsonl")),
                    items.iter().map(item_as_json),
                )?,
            });
        }
    }
    Ok(written)
}

/// Where the sinks of `spec` put their outputs on AWS (or an AWS-compatible endpoint).
pub fn aws_destinations(spec: &PipelineSpec) -> Vec<Destination> {
    let mut destinations: Vec<Destination> = describe_sinks(spec)
        .into_iter()
        .map(|sink| Destination {
            name: sink.name,
            location: format!("{} {}", sink.kind, sink.target),
        })
        .collect();
    if let Some(dead_letter) = &spec.dead_letter {
        destinations.push(Destination {
            name: "dead-letter".to_owned(),
            location: format!("sqs queue {}", dead_letter.sqs.queue_url),
        });
    }
    destinations
}

/// One Kinesis record as written to `<sink>.jsonl`; the data is shown exactly as produced.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StreamLine<'a> {
    shard_id: &'a str,
    sequence_number: &'a str,
    partition_key: &'a str,
    data: Verbatim,
}

fn item_as_json(item: &Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute_as_json(value)))
            .collect(),
    )
}

fn attribute_as_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!(s),
        AttributeValue::N(n) => serde_json::from_str(n).unwrap_or_else(|_| json!(n)),
        AttributeValue::Bool(b) => json!(b),
        AttributeValue::Ss(set) => json!(set),
        AttributeValue::Null => Value::Null,
    }
}

fn write_lines<T: Serialize>(
    path: &Path,
    lines: impl Iterator<Item = T>,
) -> anyhow::Result<String> {
    let mut file = std::io::BufWriter::new(
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut count = 0usize;
    for line in lines {
        serde_json::to_writer(&mut file, &line)?;
        file.write_all(b"\n")?;
        count += 1;
    }
    file.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(format!("{} ({count} lines)", path.display()))
}

fn write_objects(memory: &MemoryBackend, bucket: &str, dir: &Path) -> anyhow::Result<String> {
    let objects = memory.objects(bucket);
    for object in &objects {
        let path = object_path(dir, &object.key)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, &object.body).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(format!("{} ({} objects)", dir.display(), objects.len()))
}

/// The file for an object key, refusing keys that would leave `dir` (`..`, absolute paths).
fn object_path(dir: &Path, key: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(key);
    let safe = relative
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    anyhow::ensure!(
        safe,
        "object key {key:?} cannot be written under {}",
        dir.display()
    );
    Ok(dir.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_queue_keeps_fifo_suffix() {
        assert_eq!(redrive_queue_url("http://q/1/in"), "http://q/1/in-redrive");
        assert_eq!(
            redrive_queue_url("http://q/1/in.fifo"),
            "http://q/1/in-redrive.fifo"
        );
    }

    #[test]
    fn object_keys_cannot_escape_the_output_directory() {
        let dir = Path::new("/tmp/out");
        assert_eq!(
            object_path(dir, "a/b.json").ok(),
            Some(PathBuf::from("/tmp/out/a/b.json"))
        );
        assert!(object_path(dir, "../etc/passwd").is_err());
        assert!(object_path(dir, "/etc/passwd").is_err());
    }
}
