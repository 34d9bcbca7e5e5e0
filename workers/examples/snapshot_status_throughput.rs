//! Measures the snapshot status processor: messages per second and table round trips per
//! message, on the embedded tables and (with `--endpoint-url`) on an AWS-compatible DynamoDB
//! such as moto or LocalStack. A measurement, not a test: it prints figures and never fails on
//! them.
//!
//! ```text
//! cargo run --release -p wharf-workers --example snapshot_status_throughput -- \
//!     [--endpoint-url http://127.0.0.1:5000] [--files 2000] [--collections 10] [--concurrency 8]
//! ```
//!
//! One run of `--collections` collections receives `--files` data files spread over them, then
//! every data file again (redeliveries), then one success file per collection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use futures::StreamExt;
use serde_json::json;
use wharf_crds::PipelineSpec;
use wharf_workers::envelope::Payload;
use wharf_workers::io::aws::{AwsBackend, AwsOverrides, sdk_config};
use wharf_workers::io::counting::{CountingBackend, TableCalls};
use wharf_workers::io::memory::MemoryBackend;
use wharf_workers::io::{AttributeValue, Backend, Item};
use wharf_workers::processors::{self, MessageContext, Outcome, Processor};

#[derive(Debug)]
struct Options {
    endpoint_url: Option<String>,
    files: usize,
    collections: usize,
    concurrency: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        endpoint_url: None,
        files: 2000,
        collections: 10,
        concurrency: 8,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: `{value}` is not a positive number"))
        };
        match flag.as_str() {
            "--endpoint-url" => options.endpoint_url = Some(value.clone()),
            "--files" => options.files = number()?,
            "--collections" => options.collections = number()?,
            "--concurrency" => options.concurrency = number()?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let options = options()?;
    println!(
        "{} data files over {} collections, concurrency {}",
        options.files, options.collections, options.concurrency
    );

    let memory = MemoryBackend::new();
    memory.create_table("exports", "CorrelationId", Some("CollectionName"));
    memory.create_table("products", "Correlation_Id", Some("DataProduct"));
    measure("memory", Arc::new(memory), "exports", "products", &options).await?;

    if let Some(endpoint) = &options.endpoint_url {
        let config = sdk_config(
            None,
            &AwsOverrides {
                endpoint_url: Some(endpoint.clone()),
                region: Some("us-east-1".to_owned()),
                credentials: Some(SharedCredentialsProvider::new(Credentials::new(
                    "testing",
                    "testing",
                    None,
                    None,
                    "throughput",
                ))),
            },
        )
        .await;
        let suffix = std::process::id();
        let exports = format!("exports-{suffix}");
        let products = format!("products-{suffix}");
        create_table(&config, &exports, "CorrelationId", "CollectionName").await?;
        create_table(&config, &products, "Correlation_Id", "DataProduct").await?;
        measure(
            endpoint,
            Arc::new(AwsBackend::new(&config)),
            &exports,
            &products,
            &options,
        )
        .await?;
    }
    Ok(())
}

async fn measure(
    label: &str,
    inner: Arc<dyn Backend>,
    exports: &str,
    products: &str,
    options: &Options,
) -> Result<(), String> {
    let backend = Arc::new(CountingBackend::new(inner));
    let spec: PipelineSpec = serde_json::from_value(json!({
        "source": {"sqs": {"queueUrl": "http://127.0.0.1:1/123456789012/snapshot-status"}},
        "processor": {"snapshotStatus": {
            "exportStatusTable": exports,
            "productStatusTable": products,
            "exportStateSink": "export-state",
            "monitoringSink": "monitoring",
        }},
    }))
    .map_err(|e| e.to_string())?;
    let as_backend: Arc<dyn Backend> = backend.clone();
    let processor = processors::build(&spec, Some(&as_backend)).map_err(|e| e.to_string())?;

    let per_collection = options.files.div_ceil(options.collections);
    let exports_table = backend.inner().table(exports);
    for c in 0..options.collections {
        let item = Item::from([
            ("CorrelationId".to_owned(), AttributeValue::S("run".into())),
            (
                "CollectionName".to_owned(),
                AttributeValue::S(format!("db.c{c}")),
            ),
            (
                "CollectionStatus".to_owned(),
                AttributeValue::S("Sent".into()),
            ),
            (
                "FilesExported".to_owned(),
                AttributeValue::N(per_collection.to_string()),
            ),
            ("FilesReceived".to_owned(), AttributeValue::N("0".into())),
        ]);
        exports_table.put(&item).await.map_err(|e| e.to_string())?;
    }

    let data_files: Vec<(String, String)> = (0..options.files)
        .map(|i| {
            let body = json!({
                "correlation_id": "run",
                "collection_name": format!("db.c{}", i % options.collections),
                "snapshot_type": "full",
                "export_date": "2020-01-01",
                "file_name": format!("f/{i}.gz.enc"),
            });
            (body.to_string(), format!("m{i}"))
        })
        .collect();
    let success_files: Vec<(String, String)> = (0..options.collections)
        .map(|c| {
            let body = json!({
                "correlation_id": "run",
                "collection_name": format!("db.c{c}"),
                "snapshot_type": "full",
                "export_date": "2020-01-01",
                "file_name": format!("db.c{c}/_success"),
                "is_success_file": "true",
            });
            (body.to_string(), format!("s{c}"))
        })
        .collect();

    println!("\n== {label}");
    for (phase, messages) in [
        ("data files", &data_files),
        ("redelivered data files", &data_files),
        ("success files", &success_files),
    ] {
        backend.reset();
        let started = Instant::now();
        let outcomes = deliver_all(processor.as_ref(), messages, options.concurrency).await;
        let elapsed = started.elapsed();
        let failed = outcomes
            .iter()
            .filter(|o| !matches!(o, Outcome::Ok(_)))
            .count();
        let outputs: usize = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Ok(outputs) => outputs.len(),
                _ => 0,
            })
            .sum();
        report(
            phase,
            messages.len(),
            elapsed,
            backend.table_calls(),
            failed,
            outputs,
        );
    }
    Ok(())
}

async fn deliver_all(
    processor: &dyn Processor,
    messages: &[(String, String)],
    concurrency: usize,
) -> Vec<Outcome> {
    futures::stream::iter(messages)
        .map(|(body, id)| async move {
            let payload = Payload {
                body: body.clone(),
                origin: "body".to_owned(),
            };
            let context = MessageContext {
                message_id: id.clone(),
                receive_count: 1,
                ..MessageContext::default()
            };
            processor.process(&payload, &context).await
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

fn report(
    phase: &str,
    messages: usize,
    elapsed: Duration,
    calls: TableCalls,
    failed: usize,
    outputs: usize,
) {
    let per_message = |n: usize| n as f64 / messages as f64;
    let TableCalls {
        get,
        query,
        update,
        put,
    } = calls;
    println!(
        "{phase:<24} {messages:>6} msgs  {:>9.0} msgs/s  {:.3} round trips/msg \
         (update {:.3}, get {:.3}, query {:.3}, put {:.3})  outputs {outputs}  failed {failed}",
        messages as f64 / elapsed.as_secs_f64(),
        per_message(calls.total()),
        per_message(update),
        per_message(get),
        per_message(query),
        per_message(put),
    );
}

async fn create_table(
    config: &aws_config::SdkConfig,
    name: &str,
    hash: &str,
    range: &str,
) -> Result<(), String> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| e.to_string())
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(hash)?)
        .attribute_definitions(attribute(range)?)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .send()
        .await
        .map_err(|e| format!("CreateTable {name}: {e:?}"))?;
    Ok(())
}
