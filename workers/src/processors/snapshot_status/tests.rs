//! The original's message-flow scenarios, plus redelivery, run on the embedded tables.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;
use crate::io::memory::MemoryBackend;
use crate::io::{AttributeValue, Item};

const EXPORTS: &str = "UCExportToCrownStatus";
const PRODUCTS: &str = "data_pipeline_metadata";

fn config() -> SnapshotStatusProcessor {
    serde_json::from_value(json!({
        "exportStatusTable": EXPORTS,
        "productStatusTable": PRODUCTS,
        "exportStateSink": "export-state",
        "monitoringSink": "monitoring",
    }))
    .unwrap()
}

struct Harness {
    backend: MemoryBackend,
    tracker: SnapshotStatusTracker,
}

impl Harness {
    fn new() -> Self {
        let backend = MemoryBackend::new();
        backend.create_table(EXPORTS, "CorrelationId", Some("CollectionName"));
        backend.create_table(PRODUCTS, "Correlation_Id", Some("DataProduct"));
        let tables = SnapshotTables {
            export_status: backend.table(EXPORTS),
            product_status: backend.table(PRODUCTS),
        };
        let tracker = SnapshotStatusTracker::new(&config(), tables);
        Self { backend, tracker }
    }

    async fn collection(&self, name: &str, status: &str, exported: i64, received: i64) {
        let item = Item::from([
            ("CorrelationId".to_owned(), s("run_1")),
            ("CollectionName".to_owned(), s(name)),
            ("CollectionStatus".to_owned(), s(status)),
            ("FilesExported".to_owned(), n(exported)),
            ("FilesSent".to_owned(), n(exported)),
            ("FilesReceived".to_owned(), n(received)),
        ]);
        self.backend.table(EXPORTS).put(&item).await.unwrap();
    }

    async fn process(&self, body: &Value, message_id: &str) -> Outcome {
        let payload = Payload {
            body: body.to_string(),
            origin: "body".to_owned(),
        };
        let context = MessageContext {
            message_id: message_id.to_owned(),
            receive_count: 1,
            ..MessageContext::default()
        };
        self.tracker.process(&payload, &context).await
    }

    fn item(&self, name: &str) -> Item {
        self.backend
            .table_items(EXPORTS)
            .into_iter()
            .find(|i| i.get("CollectionName") == Some(&s(name)))
            .expect("collection exists")
    }

    fn status(&self, name: &str) -> String {
        self.item(name)["CollectionStatus"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn received(&self, name: &str) -> i64 {
        self.item(name)["FilesReceived"].as_i64().unwrap()
    }

    fn product_status(&self) -> Option<String> {
        self.backend
            .table_items(PRODUCTS)
            .into_iter()
            .find(|i| i.get("Correlation_Id") == Some(&s("run_1")))
            .map(|i| {
                assert_eq!(i["DataProduct"], s("SNAPSHOT_SENDER"));
                i["Status"].as_str().unwrap().to_owned()
            })
    }

    fn exposition(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.tracker.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn file(collection: &str, file_name: &str) -> Value {
    json!({
        "correlation_id": "run_1",
        "collection_name": collection,
        "snapshot_type": "full",
        "export_date": "2020-01-01",
        "file_name": file_name,
    })
}

fn success_file(collection: &str) -> Value {
    let mut body = file(collection, &format!("{collection}/_success"));
    body["is_success_file"] = json!("true");
    body
}

fn outputs(outcome: Outcome) -> Vec<Output> {
    match outcome {
        Outcome::Ok(outputs) => outputs,
        other => panic!("expected Ok, got {other:?}"),
    }
}

const EXPORT_STATE_DB_A: &str = r#"{"shutdown_flag": "true", "correlation_id": "run_1", "topic_name": "db.a", "snapshot_type": "full", "reprocess_files": "true", "export_date": "2020-01-01", "send_success_indicator": "true"}"#;

#[tokio::test]
async fn normal_message_when_all_collections_have_been_received() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 1, 0).await;
    h.collection("db.b", "Received", 1, 1).await;
    let out = outputs(h.process(&file("db.a", "f/db.a.0001.gz.enc"), "m1").await);
    assert_eq!(h.received("db.a"), 1);
    assert_eq!(h.status("db.a"), "Received");
    assert_eq!(out.len(), 1, "only the export-state notification, no SNS");
    assert_eq!(out[0].sink, "export-state");
    assert_eq!(out[0].record.body, EXPORT_STATE_DB_A);
    assert_eq!(out[0].record.group_id.as_deref(), Some("db_a"));
    assert_eq!(h.product_status().as_deref(), Some("RECEIVED"));
    let text = h.exposition();
    assert!(
        text.contains(
            "snapshot_sender_status_checker_all_collections_received_total{correlation_id=\"run_1\""
        ),
        "{text}"
    );
    assert!(text.contains(
        "snapshot_sender_status_checker_collections_received_total{correlation_id=\"run_1\""
    ));
    assert!(text.contains("snapshot_sender_status_checker_files_received_total{correlation_id=\"run_1\",export_date=\"2020-01-01\",snapshot_type=\"full\",collection_name=\"db.a\"} 1"));
}

#[tokio::test]
async fn normal_message_when_current_collection_received_but_others_not() {
    let h = Harness::new();
    h.collection("db.a", "Exported", 1, 0).await;
    h.collection("db.b", "Sent", 2, 1).await;
    let out = outputs(h.process(&file("db.a", "f1"), "m1").await);
    assert_eq!(h.status("db.a"), "Received");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].sink, "export-state");
    assert_eq!(h.product_status(), None);
    assert!(!h.exposition().contains("all_collections_received_total{"));
}

#[tokio::test]
async fn normal_message_with_optional_parameters_passes_them_through() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 1, 0).await;
    h.collection("db.b", "Sent", 2, 1).await;
    let mut body = file("db.a", "f1");
    body["shutdown_flag"] = json!("false");
    body["reprocess_files"] = json!("false");
    let out = outputs(h.process(&body, "m1").await);
    assert!(
        out[0]
            .record
            .body
            .starts_with(r#"{"shutdown_flag": "false", "correlation_id": "run_1", "topic_name": "db.a", "snapshot_type": "full", "reprocess_files": "false""#),
        "{}",
        out[0].record.body
    );
}

#[tokio::test]
async fn normal_message_when_current_collection_not_received_only_counts() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 2, 0).await;
    let out = outputs(h.process(&file("db.a", "f1"), "m1").await);
    assert!(out.is_empty());
    assert_eq!(h.received("db.a"), 1);
    assert_eq!(h.status("db.a"), "Sent");
    assert_eq!(h.product_status(), None);
}

#[tokio::test]
async fn success_message_when_all_collections_successful() {
    let h = Harness::new();
    h.collection("db.a", "Received", 1, 1).await;
    h.collection("db.b", "Success", 1, 1).await;
    let out = outputs(h.process(&success_file("db.a"), "m1").await);
    assert_eq!(h.status("db.a"), "Success");
    assert_eq!(h.received("db.a"), 1, "a success file is not counted");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].sink, "monitoring");
    assert_eq!(
        out[0].record.body,
        r#"{"severity": "Critical", "notification_type": "Information", "slack_username": "Snapshot Sender", "title_text": "Full - All collections successful", "custom_elements": [{"key": "Export date", "value": "2020-01-01"}, {"key": "Correlation Id", "value": "run_1"}]}"#
    );
    assert_eq!(h.product_status().as_deref(), Some("COMPLETED"));
    assert!(h.exposition().contains(
        "snapshot_sender_status_checker_all_collections_succesful_total{correlation_id=\"run_1\""
    ));
}

#[tokio::test]
async fn success_message_when_others_are_not_successful_only_sets_status() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 1, 1).await;
    h.collection("db.b", "Received", 1, 1).await;
    let out = outputs(h.process(&success_file("db.a"), "m1").await);
    assert!(out.is_empty());
    assert_eq!(h.status("db.a"), "Success");
    assert_eq!(h.status("db.b"), "Received");
    assert_eq!(h.product_status(), None);
}

#[tokio::test]
async fn success_message_when_current_collection_not_successful_changes_nothing() {
    let h = Harness::new();
    h.collection("db.a", "Exported", 1, 1).await;
    let before = h.item("db.a");
    let out = outputs(h.process(&success_file("db.a"), "m1").await);
    assert!(out.is_empty());
    assert_eq!(h.item("db.a"), before);
    assert_eq!(h.product_status(), None);
}

#[tokio::test]
async fn success_flag_is_case_insensitive() {
    let h = Harness::new();
    h.collection("db.a", "Received", 1, 1).await;
    let mut body = success_file("db.a");
    body["is_success_file"] = json!("TRUE");
    outputs(h.process(&body, "m1").await);
    assert_eq!(h.status("db.a"), "Success");
}

#[tokio::test]
async fn redelivered_file_is_counted_once() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 3, 0).await;
    for _ in 0..3 {
        outputs(h.process(&file("db.a", "f1"), "m1").await);
    }
    assert_eq!(h.received("db.a"), 1);
    assert!(
        h.exposition()
            .contains("wharf_snapshot_status_duplicate_files_total 2")
    );
}

#[tokio::test]
async fn same_file_under_a_new_message_id_is_counted_once() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 3, 0).await;
    outputs(h.process(&file("db.a", "f1"), "m1").await);
    outputs(h.process(&file("db.a", "f1"), "m2").await);
    outputs(h.process(&file("db.a", "f2"), "m3").await);
    assert_eq!(h.received("db.a"), 2);
    let processed = &h.item("db.a")["ProcessedFiles"];
    assert_eq!(
        *processed,
        AttributeValue::Ss(BTreeSet::from(["file:f1".to_owned(), "file:f2".to_owned()]))
    );
}

#[tokio::test]
async fn unnamed_files_are_told_apart_by_message_id() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 3, 0).await;
    let mut body = file("db.a", "x");
    body.as_object_mut().unwrap().remove("file_name");
    outputs(h.process(&body, "m1").await);
    outputs(h.process(&body, "m2").await);
    outputs(h.process(&body, "m2").await);
    assert_eq!(h.received("db.a"), 2);
}

#[tokio::test]
async fn redelivery_of_the_completing_file_repeats_its_notification_without_counting() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 2, 0).await;
    assert!(outputs(h.process(&file("db.a", "f1"), "m1").await).is_empty());
    let first = outputs(h.process(&file("db.a", "f2"), "m2").await);
    assert_eq!(first.len(), 1);
    // The worker died before the notification was delivered: the message comes back.
    let again = outputs(h.process(&file("db.a", "f2"), "m2").await);
    assert_eq!(again, first);
    // An earlier file's redelivery does not notify.
    assert!(outputs(h.process(&file("db.a", "f1"), "m1").await).is_empty());
    assert_eq!(h.received("db.a"), 2);
    assert_eq!(h.status("db.a"), "Received");
    let text = h.exposition();
    assert!(text.contains("snapshot_sender_status_checker_collections_received_total{correlation_id=\"run_1\",export_date=\"2020-01-01\",snapshot_type=\"full\"} 1"), "{text}");
}

#[tokio::test]
async fn redelivery_after_counting_but_before_the_status_was_set_marks_received() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 1, 0).await;
    // The first attempt counted the file and then failed.
    let update = store::count_file_update(Some("file:f1"));
    let key = CollectionKey {
        correlation_id: "run_1".into(),
        collection_name: "db.a".into(),
    };
    h.backend
        .table(EXPORTS)
        .update(&key.item(), &update)
        .await
        .unwrap();
    let out = outputs(h.process(&file("db.a", "f1"), "m1").await);
    assert_eq!(out.len(), 1);
    assert_eq!(h.received("db.a"), 1);
    assert_eq!(h.status("db.a"), "Received");
}

#[tokio::test]
async fn redelivered_success_file_repeats_the_run_notification() {
    let h = Harness::new();
    h.collection("db.a", "Received", 1, 1).await;
    let first = outputs(h.process(&success_file("db.a"), "m1").await);
    let again = outputs(h.process(&success_file("db.a"), "m1").await);
    assert_eq!(first.len(), 1);
    assert_eq!(again, first);
    assert!(h.exposition().contains(
        "snapshot_sender_status_checker_all_collections_succesful_total{correlation_id=\"run_1\",export_date=\"2020-01-01\",snapshot_type=\"full\"} 1"
    ));
}

#[tokio::test]
async fn records_with_several_bodies_are_each_processed() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 2, 0).await;
    let mut unnamed = file("db.a", "x");
    unnamed.as_object_mut().unwrap().remove("file_name");
    let event = json!({"Records": [{"body": unnamed}, {"body": unnamed.to_string()}]});
    let out = outputs(h.process(&event, "m1").await);
    assert_eq!(h.received("db.a"), 2);
    assert_eq!(out.len(), 1);
    // The whole message again: nothing more is counted.
    outputs(h.process(&event, "m1").await);
    assert_eq!(h.received("db.a"), 2);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_message_count_once() {
    let h = std::sync::Arc::new(Harness::new());
    h.collection("db.a", "Sent", 5, 0).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = std::sync::Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            h.process(&file("db.a", "f1"), "m1").await
        }));
    }
    for task in tasks {
        outputs(task.await.unwrap());
    }
    assert_eq!(h.received("db.a"), 1);
}

#[tokio::test]
async fn missing_collection_is_a_transient_failure_naming_the_table() {
    let h = Harness::new();
    match h.process(&file("db.a", "f1"), "m1").await {
        Outcome::Transient(reason) => {
            assert!(reason.contains("UCExportToCrownStatus"), "{reason}");
            assert!(reason.contains("db.a"), "{reason}");
        }
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_table_is_a_transient_failure() {
    let backend = MemoryBackend::new();
    let tables = SnapshotTables {
        export_status: backend.table(EXPORTS),
        product_status: backend.table(PRODUCTS),
    };
    let tracker = SnapshotStatusTracker::new(&config(), tables);
    let payload = Payload {
        body: file("db.a", "f1").to_string(),
        origin: "body".into(),
    };
    let outcome = tracker.process(&payload, &MessageContext::default()).await;
    assert!(
        matches!(&outcome, Outcome::Transient(r) if r.contains("UpdateItem")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn message_without_mandatory_field_is_permanent_and_touches_nothing() {
    let h = Harness::new();
    h.collection("db.a", "Sent", 1, 0).await;
    let mut body = file("db.a", "f1");
    body.as_object_mut().unwrap().remove("export_date");
    match h.process(&body, "m1").await {
        Outcome::Permanent(reason) => assert!(reason.contains("`export_date`"), "{reason}"),
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert_eq!(h.received("db.a"), 0);
    assert!(h.tracker.drops_invalid_without_dead_letter());
}

#[tokio::test]
async fn fixture_event_counts_a_file() {
    let h = Harness::new();
    let item = Item::from([
        ("CorrelationId".to_owned(), s("test_1")),
        ("CollectionName".to_owned(), s("db.test.collection")),
        ("CollectionStatus".to_owned(), s("Sent")),
        ("FilesExported".to_owned(), n(1)),
        ("FilesReceived".to_owned(), n(0)),
    ]);
    h.backend.table(EXPORTS).put(&item).await.unwrap();
    let body: Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/snapshot_status/event.json"
    ))
    .unwrap();
    let out = outputs(h.process(&body, "m1").await);
    assert_eq!(
        out[0].record.group_id.as_deref(),
        Some("db_test_collection")
    );
    let products = h.backend.table_items(PRODUCTS);
    assert_eq!(products.len(), 1);
    assert_eq!(products[0]["Correlation_Id"], s("test_1"));
    assert_eq!(products[0]["Status"], s("RECEIVED"));
}

#[test]
fn building_without_a_backend_says_what_is_needed() {
    let spec: PipelineSpec = serde_json::from_value(json!({
        "source": {"sqs": {"queueUrl": "http://localhost:4566/000000000000/q"}},
        "processor": {"snapshotStatus": {"exportStateSink": "export-state", "monitoringSink": "monitoring"}},
        "sinks": [],
    }))
    .unwrap();
    let error = build(&spec, None).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("DynamoDB"), "{text}");
    assert!(text.contains("--endpoint-url"), "{text}");
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let processor = build(&spec, Some(&backend)).unwrap();
    assert_eq!(processor.kind(), ProcessorKind::SnapshotStatus);
}

#[tokio::test]
async fn metrics_of_the_run_are_pushed_after_each_message() {
    let (url, request) = pushgateway::fake_gateway("200 OK").await;
    let backend = MemoryBackend::new();
    backend.create_table(EXPORTS, "CorrelationId", Some("CollectionName"));
    backend.create_table(PRODUCTS, "Correlation_Id", Some("DataProduct"));
    let mut config = config();
    config.pushgateway = Some(wharf_crds::pipeline::Pushgateway { url });
    let tables = SnapshotTables {
        export_status: backend.table(EXPORTS),
        product_status: backend.table(PRODUCTS),
    };
    let h = Harness {
        backend,
        tracker: SnapshotStatusTracker::new(&config, tables),
    };
    h.collection("db.a", "Sent", 2, 0).await;
    outputs(h.process(&file("db.a", "f1"), "m1").await);
    let request = request.await.unwrap();
    assert!(
        request.starts_with(
            "POST /metrics/job/snapshot_sender_status_checker/component/snapshot_sender_status_checker/correlation_id/run_1 "
        ),
        "{request}"
    );
    assert!(
        request.contains(
            "snapshot_sender_status_checker_files_received_total{correlation_id=\"run_1\",export_date=\"2020-01-01\",snapshot_type=\"full\",collection_name=\"db.a\"} 1"
        ),
        "{request}"
    );
}
