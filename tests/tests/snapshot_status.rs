//! The snapshot status processor end to end through the `Table` port, on the embedded backend
//! and on moto's DynamoDB with the real SDK: a whole run from first file to the monitoring
//! message, redeliveries and concurrent deliveries that must not count a file twice, and the
//! number of table round trips a message costs.

use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use serde_json::{Value, json};
use wharf_crds::PipelineSpec;
use wharf_tests::{Moto, unique_name};
use wharf_workers::envelope::Payload;
use wharf_workers::io::aws::AwsBackend;
use wharf_workers::io::counting::{CountingBackend, TableCalls};
use wharf_workers::io::memory::MemoryBackend;
use wharf_workers::io::{AttributeValue, Backend, Item, OutgoingMessage};
use wharf_workers::processors::{self, MessageContext, Outcome, Output, Processor};

/// Two freshly created tables on one backend, and a processor using them.
struct Run {
    backend: Arc<CountingBackend>,
    exports: String,
    products: String,
    processor: Arc<dyn Processor>,
}

impl Run {
    fn new(inner: Arc<dyn Backend>, exports: String, products: String) -> Self {
        let backend = Arc::new(CountingBackend::new(inner));
        let spec: PipelineSpec = serde_json::from_value(json!({
            "source": {"sqs": {"queueUrl": "http://127.0.0.1:1/123456789012/snapshot-status"}},
            "processor": {"snapshotStatus": {
                "exportStatusTable": exports,
                "productStatusTable": products,
                "exportStateSink": "export-state",
                "monitoringSink": "monitoring",
            }},
            "sinks": [
                {"name": "export-state", "sqs": {"queueUrl": "http://127.0.0.1:1/123456789012/export-state.fifo"}},
                {"name": "monitoring", "sns": {"topicArn": "arn:aws:sns:us-east-1:123456789012:monitoring"}},
            ],
        }))
        .expect("valid spec");
        let as_backend: Arc<dyn Backend> = backend.clone();
        let processor = processors::build(&spec, Some(&as_backend)).expect("processor builds");
        Self {
            backend,
            exports,
            products,
            processor,
        }
    }

    async fn memory() -> Self {
        let memory = MemoryBackend::new();
        memory.create_table("exports", "CorrelationId", Some("CollectionName"));
        memory.create_table("products", "Correlation_Id", Some("DataProduct"));
        Self::new(Arc::new(memory), "exports".into(), "products".into())
    }

    async fn moto() -> Self {
        let config = Moto::shared().sdk_config().await;
        let exports = unique_name("exports");
        let products = unique_name("products");
        create_table(&config, &exports, "CorrelationId", "CollectionName").await;
        create_table(&config, &products, "Correlation_Id", "DataProduct").await;
        Self::new(Arc::new(AwsBackend::new(&config)), exports, products)
    }

    async fn collection(&self, run: &str, name: &str, status: &str, exported: i64) {
        let item = Item::from([
            ("CorrelationId".to_owned(), s(run)),
            ("CollectionName".to_owned(), s(name)),
            ("CollectionStatus".to_owned(), s(status)),
            ("FilesExported".to_owned(), n(exported)),
            ("FilesSent".to_owned(), n(exported)),
            ("FilesReceived".to_owned(), n(0)),
        ]);
        self.backend
            .inner()
            .table(&self.exports)
            .put(&item)
            .await
            .expect("PutItem");
    }

    async fn deliver(&self, body: &Value, message_id: &str) -> Vec<Output> {
        match deliver(self.processor.as_ref(), body, message_id).await {
            Outcome::Ok(outputs) => outputs,
            other => panic!("expected Ok for {body}, got {other:?}"),
        }
    }

    async fn item(&self, run: &str, name: &str) -> Item {
        let key = Item::from([
            ("CorrelationId".to_owned(), s(run)),
            ("CollectionName".to_owned(), s(name)),
        ]);
        self.backend
            .inner()
            .table(&self.exports)
            .get(&key, true)
            .await
            .expect("GetItem")
            .expect("collection exists")
    }

    async fn received(&self, run: &str, name: &str) -> i64 {
        self.item(run, name).await["FilesReceived"]
            .as_i64()
            .expect("FilesReceived is a number")
    }

    async fn status(&self, run: &str, name: &str) -> String {
        self.item(run, name).await["CollectionStatus"]
            .as_str()
            .expect("CollectionStatus is a string")
            .to_owned()
    }

    async fn product_status(&self, run: &str) -> Option<String> {
        let key = Item::from([
            ("Correlation_Id".to_owned(), s(run)),
            ("DataProduct".to_owned(), s("SNAPSHOT_SENDER")),
        ]);
        self.backend
            .inner()
            .table(&self.products)
            .get(&key, true)
            .await
            .expect("GetItem")
            .map(|item| item["Status"].as_str().expect("Status").to_owned())
    }
}

async fn deliver(processor: &dyn Processor, body: &Value, message_id: &str) -> Outcome {
    let payload = Payload {
        body: body.to_string(),
        origin: "body".to_owned(),
    };
    let context = MessageContext {
        message_id: message_id.to_owned(),
        receive_count: 1,
        ..MessageContext::default()
    };
    processor.process(&payload, &context).await
}

async fn create_table(config: &aws_config::SdkConfig, name: &str, hash: &str, range: &str) {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(hash))
        .attribute_definitions(attribute(range))
        .key_schema(key(hash, KeyType::Hash))
        .key_schema(key(range, KeyType::Range))
        .send()
        .await
        .expect("CreateTable");
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn file(run: &str, collection: &str, file_name: &str) -> Value {
    json!({
        "correlation_id": run,
        "collection_name": collection,
        "snapshot_type": "full",
        "export_date": "2020-01-01",
        "file_name": file_name,
    })
}

fn success_file(run: &str, collection: &str) -> Value {
    let mut body = file(run, collection, &format!("{collection}/_success"));
    body["is_success_file"] = json!("true");
    body
}

// ---- scenarios, each run on both backends ----

async fn whole_run_ends_with_one_monitoring_message(run: Run) {
    run.collection("r1", "db.a", "Sent", 2).await;
    run.collection("r1", "db.b", "Exported", 1).await;

    assert!(
        run.deliver(&file("r1", "db.a", "a/1"), "m1")
            .await
            .is_empty()
    );
    let a = run.deliver(&file("r1", "db.a", "a/2"), "m2").await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].sink, "export-state");
    assert_eq!(
        a[0].record.body,
        r#"{"shutdown_flag": "true", "correlation_id": "r1", "topic_name": "db.a", "snapshot_type": "full", "reprocess_files": "true", "export_date": "2020-01-01", "send_success_indicator": "true"}"#
    );
    assert_eq!(a[0].record.group_id.as_deref(), Some("db_a"));
    assert_eq!(run.status("r1", "db.a").await, "Received");
    assert_eq!(run.product_status("r1").await, None);

    let b = run.deliver(&file("r1", "db.b", "b/1"), "m3").await;
    assert_eq!(b.len(), 1);
    assert_eq!(run.product_status("r1").await.as_deref(), Some("RECEIVED"));

    assert!(
        run.deliver(&success_file("r1", "db.a"), "m4")
            .await
            .is_empty()
    );
    assert_eq!(run.status("r1", "db.a").await, "Success");
    let done = run.deliver(&success_file("r1", "db.b"), "m5").await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].sink, "monitoring");
    assert!(
        done[0]
            .record
            .body
            .contains(r#""title_text": "Full - All collections successful""#)
    );
    assert_eq!(run.product_status("r1").await.as_deref(), Some("COMPLETED"));
    assert_eq!(run.received("r1", "db.a").await, 2);
    assert_eq!(run.received("r1", "db.b").await, 1);
}

async fn redelivered_file_is_counted_once(run: Run) {
    run.collection("r2", "db.a", "Sent", 3).await;
    for _ in 0..3 {
        assert!(
            run.deliver(&file("r2", "db.a", "a/1"), "m1")
                .await
                .is_empty()
        );
    }
    // The same file again under a new message id (the sender sent it twice).
    assert!(
        run.deliver(&file("r2", "db.a", "a/1"), "m9")
            .await
            .is_empty()
    );
    assert_eq!(run.received("r2", "db.a").await, 1);
    assert_eq!(
        run.item("r2", "db.a").await["ProcessedFiles"],
        AttributeValue::Ss(["file:a/1".to_owned()].into())
    );
}

async fn concurrent_deliveries_of_one_message_count_once(run: Run) {
    run.collection("r3", "db.a", "Sent", 1).await;
    let run = Arc::new(run);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let run = Arc::clone(&run);
            tokio::spawn(async move {
                deliver(run.processor.as_ref(), &file("r3", "db.a", "a/1"), "m1").await
            })
        })
        .collect();
    let mut notifications = 0;
    for task in tasks {
        match task.await.expect("task") {
            Outcome::Ok(outputs) => notifications += outputs.len(),
            other => panic!("expected Ok, got {other:?}"),
        }
    }
    assert_eq!(run.received("r3", "db.a").await, 1);
    assert_eq!(run.status("r3", "db.a").await, "Received");
    // Identical bodies, deduplicated by the FIFO queue; at least one is sent.
    assert!(notifications >= 1);
}

async fn concurrent_different_files_are_all_counted(run: Run) {
    run.collection("r4", "db.a", "Sent", 8).await;
    let run = Arc::new(run);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let run = Arc::clone(&run);
            tokio::spawn(async move {
                let body = file("r4", "db.a", &format!("a/{i}"));
                deliver(run.processor.as_ref(), &body, &format!("m{i}")).await
            })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await.expect("task"), Outcome::Ok(_)));
    }
    assert_eq!(run.received("r4", "db.a").await, 8);
    assert_eq!(run.status("r4", "db.a").await, "Received");
}

async fn a_file_short_of_the_export_is_one_round_trip(run: Run) {
    run.collection("r5", "db.a", "Sent", 5).await;
    run.backend.reset();
    run.deliver(&file("r5", "db.a", "a/1"), "m1").await;
    assert_eq!(
        run.backend.table_calls(),
        TableCalls {
            get: 0,
            query: 0,
            update: 1,
            put: 0
        },
        "counting a file is one conditional UpdateItem, never read-then-write"
    );
    run.backend.reset();
    run.deliver(&file("r5", "db.a", "a/1"), "m1").await;
    assert_eq!(
        run.backend.table_calls(),
        TableCalls {
            get: 1,
            query: 0,
            update: 1,
            put: 0
        },
        "a redelivery costs the failed update and one read"
    );
}

async fn missing_collection_is_transient(run: Run) {
    match deliver(run.processor.as_ref(), &file("r6", "db.none", "x/1"), "m1").await {
        Outcome::Transient(reason) => assert!(reason.contains("db.none"), "{reason}"),
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn memory_whole_run_ends_with_one_monitoring_message() {
    whole_run_ends_with_one_monitoring_message(Run::memory().await).await;
}

#[tokio::test]
async fn memory_redelivered_file_is_counted_once() {
    redelivered_file_is_counted_once(Run::memory().await).await;
}

#[tokio::test]
async fn memory_concurrent_deliveries_of_one_message_count_once() {
    concurrent_deliveries_of_one_message_count_once(Run::memory().await).await;
}

#[tokio::test]
async fn memory_concurrent_different_files_are_all_counted() {
    concurrent_different_files_are_all_counted(Run::memory().await).await;
}

#[tokio::test]
async fn memory_a_file_short_of_the_export_is_one_round_trip() {
    a_file_short_of_the_export_is_one_round_trip(Run::memory().await).await;
}

#[tokio::test]
async fn memory_missing_collection_is_transient() {
    missing_collection_is_transient(Run::memory().await).await;
}

#[tokio::test]
async fn moto_whole_run_ends_with_one_monitoring_message() {
    whole_run_ends_with_one_monitoring_message(Run::moto().await).await;
}

#[tokio::test]
async fn moto_redelivered_file_is_counted_once() {
    redelivered_file_is_counted_once(Run::moto().await).await;
}

#[tokio::test]
async fn moto_concurrent_deliveries_of_one_message_count_once() {
    concurrent_deliveries_of_one_message_count_once(Run::moto().await).await;
}

#[tokio::test]
async fn moto_concurrent_different_files_are_all_counted() {
    concurrent_different_files_are_all_counted(Run::moto().await).await;
}

#[tokio::test]
async fn moto_a_file_short_of_the_export_is_one_round_trip() {
    a_file_short_of_the_export_is_one_round_trip(Run::moto().await).await;
}

#[tokio::test]
async fn moto_missing_collection_is_transient() {
    missing_collection_is_transient(Run::moto().await).await;
}

/// The export-state notification is accepted by a real FIFO queue with content-based
/// deduplication, and a repeat (a redelivered message's) is deduplicated.
#[tokio::test]
async fn moto_fifo_queue_deduplicates_a_repeated_notification() {
    let moto = Moto::shared();
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!("{}.fifo", unique_name("export-state"));
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
            "true",
        )
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue URL");

    let run = Run::moto().await;
    run.collection("r7", "db.a", "Sent", 1).await;
    let first = run.deliver(&file("r7", "db.a", "a/1"), "m1").await;
    let again = run.deliver(&file("r7", "db.a", "a/1"), "m1").await;
    assert_eq!(first, again);

    let queue = AwsBackend::new(&config).queue(&url);
    for output in first.iter().chain(&again) {
        let failures = queue
            .send_batch(&[OutgoingMessage {
                body: output.record.body.clone(),
                group_id: output.record.group_id.clone(),
                deduplication_id: output.record.deduplication_id.clone(),
                ..OutgoingMessage::default()
            }])
            .await
            .expect("SendMessageBatch");
        assert!(failures.is_empty(), "{failures:?}");
    }
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("ReceiveMessage");
    assert_eq!(received.messages().len(), 1, "the repeat is deduplicated");
}
