//! Seeding the source queue with sample messages before a run.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use wharf_workers::io::{OutgoingMessage, Queue, SQS_BATCH_LIMIT};

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
                group_id: queue.url().ends_with(".fifo").then(|| "wharf-run".to_owned()),
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
            bodies.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned));
        } else {
            bodies.push(text);
        }
    }
    Ok(bodies)
}
