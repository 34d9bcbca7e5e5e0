//! Seeding the source queue with sample messages, and the embedded tables with sample items,
//! before a run.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;
use wharf_workers::io::memory::MemoryBackend;
use wharf_workers::io::{AttributeValue, Backend, Item, OutgoingMessage, Queue, SQS_BATCH_LIMIT};

/// Sends every message found at `path` to `queue` and returns how many were sent.
///
/// A `.jsonl`/`.ndjson` file holds one message per non-empty line; any other file is one
/// message; a directory contributes its files in name order (not its subdirectories).
pub async fn seed_queue(queue: &dyn Queue, path: &Path) -> anyhow::Result<usize> {
    let bodies = read_messages(path)?;
    for chunk in bodies.chunks(SQS_BATCH_LIMIT) {
        let messages: Vec<OutgoingMessage> = chunk
            .iter()
            .map(|body| OutgoingMessage {
                body: body.clone(),
                group_id: queue
                    .url()
                    .ends_with(".fifo")
                    .then(|| "wharf-run".to_owned()),
                ..OutgoingMessage::default()
            })
            .collect();
        let failures = queue
            .send_batch(&messages)
            .await
            .with_context(|| format!("seeding {}", queue.url()))?;
        if let Some(failure) = failures.first() {
            bail!(
                "seeding {}: message {} refused: {}: {}",
                queue.url(),
                failure.index,
                failure.code,
                failure.message
            );
        }
    }
    Ok(bodies.len())
}

fn read_messages(path: &Path) -> anyhow::Result<Vec<String>> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("sample events {} cannot be read", path.display()))?;
    let files: Vec<PathBuf> = if metadata.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut bodies = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let per_line = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("jsonl" | "ndjson")
        );
        if per_line {
            bodies.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_owned),
            );
        } else {
            bodies.push(text);
        }
    }
    Ok(bodies)
}

/// Puts the items in `path` (a JSON object of table name to a list of items written as plain
/// JSON: strings, numbers, booleans, null and lists of strings) into the embedded tables, which
/// must exist. Returns how many items were put.
pub async fn seed_tables(memory: &MemoryBackend, path: &Path) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("sample tables {} cannot be read", path.display()))?;
    let tables: serde_json::Map<String, Value> =
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected a JSON object of table name to a list of items",
                path.display()
            )
        })?;
    let mut put = 0;
    for (table, items) in &tables {
        let Some(items) = items.as_array() else {
            bail!("{}: {table}: expected a list of items", path.display());
        };
        for (index, item) in items.iter().enumerate() {
            let item =
                json_item(item).with_context(|| format!("{}: {table}[{index}]", path.display()))?;
            memory
                .table(table)
                .put(&item)
                .await
                .with_context(|| format!("{}: {table}[{index}]", path.display()))?;
            put += 1;
        }
    }
    Ok(put)
}

fn json_item(value: &Value) -> anyhow::Result<Item> {
    let Some(object) = value.as_object() else {
        bail!("an item must be a JSON object");
    };
    object
        .iter()
        .map(|(name, value)| Ok((name.clone(), attribute(name, value)?)))
        .collect()
}

fn attribute(name: &str, value: &Value) -> anyhow::Result<AttributeValue> {
    Ok(match value {
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null => AttributeValue::Null,
        Value::Array(list) => AttributeValue::Ss(
            list.iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .with_context(|| {
                    format!("{name}: only lists of strings (string sets) are supported")
                })?,
        ),
        Value::Object(_) => bail!("{name}: nested objects (maps) are not supported"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn plain_json_becomes_typed_attributes() {
        let item = json_item(
            &json!({"Id": "a", "Files": 2, "Done": false, "Tags": ["x", "y"], "Gone": null}),
        )
        .expect("a valid item");
        assert_eq!(item["Id"], AttributeValue::S("a".into()));
        assert_eq!(item["Files"], AttributeValue::N("2".into()));
        assert_eq!(item["Done"], AttributeValue::Bool(false));
        assert_eq!(
            item["Tags"],
            AttributeValue::Ss(["x".to_owned(), "y".to_owned()].into())
        );
        assert_eq!(item["Gone"], AttributeValue::Null);
    }

    #[test]
    fn unsupported_values_name_the_attribute() {
        let error = json_item(&json!({"Nested": {"a": 1}})).unwrap_err();
        assert!(error.to_string().contains("Nested"), "{error}");
        let error = json_item(&json!({"Mixed": ["a", 1]})).unwrap_err();
        assert!(error.to_string().contains("Mixed"), "{error}");
    }
}
