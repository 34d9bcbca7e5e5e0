//! The AWS adapters against moto through the real SDK clients: every port operation, the
//! per-entry failures of batch calls, and how failures are classified (missing resources,
//! unreachable endpoints). Resources are created with the raw SDK clients, so the adapters are
//! only ever the code under test.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as SdkValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_sqs::types::QueueAttributeName;
use wharf_tests::moto::{REGION, stream_records};
use wharf_tests::{Moto, unique_name};
use wharf_workers::io::aws::config::s3_client;
use wharf_workers::io::aws::{AwsBackend, AwsOverrides, sdk_config};
use wharf_workers::io::{
    AttributeValue, Backend, EntryFailure, IoErrorKind, Item, ItemUpdate, MessageAttributes,
    OutgoingMessage, QueueDepth, ReceivedMessage, StoredObject, StreamRecord, UpdateCondition,
    UpdateOutcome,
};

const NO_WAIT: Duration = Duration::from_secs(0);
const SHORT_WAIT: Duration = Duration::from_secs(1);
const HIDDEN: Duration = Duration::from_secs(60);

async fn moto_backend() -> (aws_config::SdkConfig, AwsBackend) {
    let config = Moto::shared().sdk_config().await;
    let backend = AwsBackend::new(&config);
    (config, backend)
}

async fn create_queue(config: &aws_config::SdkConfig, name: &str, fifo: bool) -> String {
    let mut request = aws_sdk_sqs::Client::new(config)
        .create_queue()
        .queue_name(name);
    if fifo {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    request
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue URL")
}

fn message(body: &str, attributes: &[(&str, &str)]) -> OutgoingMessage {
    OutgoingMessage {
        body: body.to_owned(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..OutgoingMessage::default()
    }
}

/// Receives until `count` messages have arrived (moto may hand them out over several calls).
async fn receive_exactly(
    queue: &dyn wharf_workers::io::Queue,
    count: usize,
    visibility: Duration,
) -> Vec<ReceivedMessage> {
    let mut received = Vec::new();
    for _ in 0..10 {
        if received.len() >= count {
            break;
        }
        received.extend(
            queue
                .receive(10, SHORT_WAIT, visibility)
                .await
                .expect("ReceiveMessage"),
        );
    }
    assert_eq!(received.len(), count, "received {received:#?}");
    received.sort_by(|a, b| a.body.cmp(&b.body));
    received
}

#[tokio::test]
async fn queue_messages_round_trip_and_count_their_receives() {
    let (config, backend) = moto_backend().await;
    let url = create_queue(&config, &unique_name("adapters"), false).await;
    let queue = backend.queue(&url);
    assert_eq!(queue.url(), url);

    let before = SystemTime::now() - Duration::from_secs(5);
    let failures = queue
        .send_batch(&[
            message("a", &[("name", "recorder"), ("version", "2")]),
            message("b", &[]),
        ])
        .await
        .expect("SendMessageBatch");
    assert_eq!(failures, vec![]);

    let first = receive_exactly(queue.as_ref(), 2, HIDDEN).await;
    assert_eq!(first[0].body, "a");
    assert_eq!(
        first[0].attributes,
        MessageAttributes::from([
            ("name".to_owned(), "recorder".to_owned()),
            ("version".to_owned(), "2".to_owned()),
        ])
    );
    assert_eq!(first[1].body, "b");
    assert!(first[1].attributes.is_empty());
    for received in &first {
        assert_eq!(received.receive_count, 1, "{received:?}");
        assert_eq!(received.group_id, None);
        let sent_at = received.sent_at.expect("SentTimestamp requested");
        assert!(sent_at >= before && sent_at <= SystemTime::now() + Duration::from_secs(5));
        assert!(!received.message_id.is_empty() && !received.receipt_handle.is_empty());
    }
    assert_eq!(
        queue
            .receive(10, NO_WAIT, HIDDEN)
            .await
            .expect("ReceiveMessage"),
        vec![],
        "received messages stay hidden for their visibility timeout"
    );
    assert_eq!(
        queue.depth().await.expect("GetQueueAttributes"),
        QueueDepth {
            visible: 0,
            in_flight: 2,
            delayed: 0
        }
    );

    // Making them visible again lets them be received once more, counted.
    let failures = queue
        .change_visibility_batch(&[
            (first[0].receipt_handle.clone(), Duration::ZERO),
            (first[1].receipt_handle.clone(), Duration::ZERO),
        ])
        .await
        .expect("ChangeMessageVisibilityBatch");
    assert_eq!(failures, vec![]);
    let second = receive_exactly(queue.as_ref(), 2, HIDDEN).await;
    assert_eq!(second[0].message_id, first[0].message_id);
    assert!(second.iter().all(|m| m.receive_count == 2), "{second:?}");
    assert_eq!(second[0].attributes, first[0].attributes);

    // A handle this queue never issued fails its own entry; the others are deleted.
    let failures = queue
        .delete_batch(&[
            second[0].receipt_handle.clone(),
            "not-a-receipt-handle".to_owned(),
            second[1].receipt_handle.clone(),
        ])
        .await
        .expect("DeleteMessageBatch");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].index, 1);
    assert_eq!(failures[0].code, "ReceiptHandleIsInvalid");
    assert!(!failures[0].retryable);
    assert_eq!(
        queue.depth().await.expect("GetQueueAttributes"),
        QueueDepth::default()
    );
    assert_eq!(queue.delete_batch(&[]).await.expect("empty batch"), vec![]);
}

#[tokio::test]
async fn changing_visibility_with_a_stale_handle_fails_only_that_entry() {
    let (config, backend) = moto_backend().await;
    let url = create_queue(&config, &unique_name("adapters"), false).await;
    let queue = backend.queue(&url);
    queue
        .send_batch(&[message("x", &[])])
        .await
        .expect("SendMessageBatch");
    let received = receive_exactly(queue.as_ref(), 1, HIDDEN).await;

    let failures = queue
        .change_visibility_batch(&[
            ("stale-handle".to_owned(), Duration::ZERO),
            (received[0].receipt_handle.clone(), Duration::ZERO),
        ])
        .await
        .expect("ChangeMessageVisibilityBatch");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].index, 0);
    assert_eq!(failures[0].code, "ReceiptHandleIsInvalid");
    assert!(!failures[0].retryable);
    // The valid entry was applied: the message is visible again at once.
    let again = receive_exactly(queue.as_ref(), 1, HIDDEN).await;
    assert_eq!(again[0].receive_count, 2);
}

#[tokio::test]
async fn depth_reports_visible_in_flight_and_delayed_messages() {
    let (config, backend) = moto_backend().await;
    let url = create_queue(&config, &unique_name("adapters"), false).await;
    let queue = backend.queue(&url);
    queue
        .send_batch(&[message("1", &[]), message("2", &[])])
        .await
        .expect("SendMessageBatch");
    aws_sdk_sqs::Client::new(&config)
        .send_message()
        .queue_url(&url)
        .message_body("later")
        .delay_seconds(600)
        .send()
        .await
        .expect("SendMessage with a delay");
    let received = queue
        .receive(1, SHORT_WAIT, HIDDEN)
        .await
        .expect("ReceiveMessage");
    assert_eq!(received.len(), 1);

    assert_eq!(
        queue.depth().await.expect("GetQueueAttributes"),
        QueueDepth {
            visible: 1,
            in_flight: 1,
            delayed: 1
        }
    );
}

#[tokio::test]
async fn a_fifo_queue_takes_messages_with_a_group_id() {
    let (config, backend) = moto_backend().await;
    let url = create_queue(&config, &format!("{}.fifo", unique_name("adapters")), true).await;
    let queue = backend.queue(&url);

    let error = queue
        .send_batch(&[message("no group", &[])])
        .await
        .expect_err("a FIFO queue refuses a message without a group id");
    assert_eq!(error.kind, IoErrorKind::Rejected, "{error}");
    assert_eq!(error.operation, "SendMessageBatch");
    assert_eq!(error.resource, url);

    let grouped = |body: &str, dedup: &str| OutgoingMessage {
        group_id: Some("file-1".to_owned()),
        deduplication_id: Some(dedup.to_owned()),
        ..message(body, &[("status", "Sent")])
    };
    let failures = queue
        .send_batch(&[grouped("first", "d-1"), grouped("second", "d-2")])
        .await
        .expect("SendMessageBatch");
    assert_eq!(failures, vec![]);

    let received = queue
        .receive(10, SHORT_WAIT, HIDDEN)
        .await
        .expect("ReceiveMessage");
    let bodies: Vec<_> = received.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["first", "second"], "a group keeps its order");
    for message in &received {
        assert_eq!(message.group_id.as_deref(), Some("file-1"));
        assert_eq!(message.attributes["status"], "Sent");
    }
}

#[tokio::test]
async fn sns_publishes_with_attributes_and_reports_a_failed_entry() {
    let (config, backend) = moto_backend().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let arn = sns
        .create_topic()
        .name(unique_name("adapters"))
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn
        .expect("topic ARN");
    let queue_name = unique_name("adapters");
    let queue_url = create_queue(&config, &queue_name, false).await;
    sns.subscribe()
        .topic_arn(&arn)
        .protocol("sqs")
        .endpoint(format!("arn:aws:sqs:{REGION}:123456789012:{queue_name}"))
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true)
        .send()
        .await
        .expect("Subscribe");

    let topic = backend.topic(&arn);
    assert_eq!(topic.arn(), arn);
    let too_long = "x".repeat(300 * 1024);
    let failures = topic
        .publish_batch(&[
            message("hello", &[("name", "recorder")]),
            message(&too_long, &[]),
        ])
        .await
        .expect("PublishBatch");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].index, 1);
    assert!(!failures[0].retryable, "{failures:?}");

    let queue = backend.queue(&queue_url);
    let delivered = receive_exactly(queue.as_ref(), 1, HIDDEN).await;
    assert_eq!(delivered[0].body, "hello");
    assert_eq!(delivered[0].attributes["name"], "recorder");
}

#[tokio::test]
async fn kinesis_records_land_in_the_stream_in_order_per_key() {
    let (config, backend) = moto_backend().await;
    let name = unique_name("adapters");
    aws_sdk_kinesis::Client::new(&config)
        .create_stream()
        .stream_name(&name)
        .shard_count(2)
        .send()
        .await
        .expect("CreateStream");

    let stream = backend.stream(&name);
    assert_eq!(stream.name(), name);
    let records: Vec<StreamRecord> = (0..6)
        .map(|i| StreamRecord {
            partition_key: format!("submission-{}", i % 2),
            data: format!("event-{i}").into_bytes(),
        })
        .collect();
    let failures = stream.put_records(&records).await.expect("PutRecords");
    assert_eq!(failures, Vec::<EntryFailure>::new());
    assert_eq!(stream.put_records(&[]).await.expect("empty batch"), vec![]);

    let stored = stream_records(&config, &name).await;
    assert_eq!(stored.len(), 6, "{stored:?}");
    for key in ["submission-0", "submission-1"] {
        let expected: Vec<Vec<u8>> = records
            .iter()
            .filter(|r| r.partition_key == key)
            .map(|r| r.data.clone())
            .collect();
        let actual: Vec<Vec<u8>> = stored
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, data)| data.clone())
            .collect();
        assert_eq!(actual, expected, "records of {key}");
    }
}

#[tokio::test]
async fn s3_objects_round_trip_and_a_missing_key_is_not_found() {
    let (config, backend) = moto_backend().await;
    let bucket = unique_name("adapters");
    s3_client(&config)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");

    let store = backend.object_store(&bucket);
    assert_eq!(store.bucket(), bucket);
    let body: Vec<u8> = (0..=255u8).cycle().take(3 * 1024 * 1024 + 7).collect();
    store
        .put(&StoredObject {
            key: "logs/run_SUCCESS".to_owned(),
            body: body.clone(),
            content_type: Some("text/plain".to_owned()),
        })
        .await
        .expect("PutObject");
    assert_eq!(
        store.get("logs/run_SUCCESS").await.expect("GetObject"),
        body
    );
    let head = s3_client(&config)
        .head_object()
        .bucket(&bucket)
        .key("logs/run_SUCCESS")
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(head.content_type(), Some("text/plain"));

    let error = store.get("logs/missing").await.expect_err("no such key");
    assert_eq!(error.kind, IoErrorKind::NotFound, "{error}");
    assert_eq!(error.operation, "GetObject");
    assert!(error.resource.ends_with("logs/missing"), "{error}");

    let error = backend
        .object_store(&unique_name("no-such-bucket"))
        .get("k")
        .await
        .expect_err("no such bucket");
    assert_eq!(error.kind, IoErrorKind::NotFound, "{error}");
}

async fn create_table(config: &aws_config::SdkConfig) -> String {
    let name = unique_name("adapters");
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("key schema element")
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(&name)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable");
    name
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: &str, sk: &str) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn with(mut item: Item, attributes: &[(&str, AttributeValue)]) -> Item {
    for (name, value) in attributes {
        item.insert((*name).to_owned(), value.clone());
    }
    item
}

#[tokio::test]
async fn dynamodb_items_are_put_got_and_queried_over_every_page() {
    let (config, backend) = moto_backend().await;
    let name = create_table(&config).await;
    let table = backend.table(&name);
    assert_eq!(table.name(), name);

    let item = with(
        key("snapshot", "file-1"),
        &[
            ("status", s("Exported")),
            ("count", n(3)),
            ("done", AttributeValue::Bool(false)),
            (
                "seen",
                AttributeValue::Ss(BTreeSet::from(["m-1".to_owned(), "m-2".to_owned()])),
            ),
            ("note", AttributeValue::Null),
        ],
    );
    table.put(&item).await.expect("PutItem");
    assert_eq!(
        table
            .get(&key("snapshot", "file-1"), true)
            .await
            .expect("GetItem"),
        Some(item.clone())
    );
    assert_eq!(
        table
            .get(&key("snapshot", "file-2"), false)
            .await
            .expect("GetItem"),
        None
    );

    // Eight 300 kB items make more than two 1 MB pages.
    let padding = "p".repeat(300 * 1000);
    for i in 0..8 {
        table
            .put(&with(
                key("big", &format!("item-{i}")),
                &[("padding", s(&padding))],
            ))
            .await
            .expect("PutItem");
    }
    let first_page = aws_sdk_dynamodb::Client::new(&config)
        .query()
        .table_name(&name)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", SdkValue::S("big".into()))
        .send()
        .await
        .expect("Query");
    assert!(
        first_page.last_evaluated_key().is_some() && first_page.items().len() < 8,
        "the partition must span several pages for this test to mean anything"
    );

    let items = table.query("pk", &s("big"), true).await.expect("Query");
    let sort_keys: Vec<_> = items
        .iter()
        .map(|i| i["sk"].as_str().unwrap_or(""))
        .collect();
    let expected: Vec<String> = (0..8).map(|i| format!("item-{i}")).collect();
    assert_eq!(sort_keys, expected);
    assert!(items.iter().all(|i| i["padding"] == s(&padding)));

    let items = table
        .query("pk", &s("snapshot"), false)
        .await
        .expect("Query");
    assert_eq!(items, vec![item]);
    assert_eq!(
        table.query("pk", &s("nobody"), false).await.expect("Query"),
        vec![]
    );
}

#[tokio::test]
async fn dynamodb_updates_are_conditional_and_atomic() {
    let (config, backend) = moto_backend().await;
    let table = backend.table(&create_table(&config).await);
    let file = key("snapshot", "file-1");

    // An update that requires the item never creates it.
    let mark_sent = ItemUpdate {
        set: vec![("status".to_owned(), s("Sent"))],
        increment: vec![("received".to_owned(), 1)],
        condition: Some(UpdateCondition::ItemExists),
        ..ItemUpdate::default()
    };
    assert_eq!(
        table.update(&file, &mark_sent).await.expect("UpdateItem"),
        UpdateOutcome::ConditionFailed
    );
    assert_eq!(table.get(&file, true).await.expect("GetItem"), None);

    table
        .put(&with(
            file.clone(),
            &[("status", s("Exported")), ("received", n(0))],
        ))
        .await
        .expect("PutItem");
    assert_eq!(
        table.update(&file, &mark_sent).await.expect("UpdateItem"),
        UpdateOutcome::Applied(with(
            file.clone(),
            &[("status", s("Sent")), ("received", n(1))]
        ))
    );

    // Counting a message once: the increment and the set membership go together.
    let count = |message: &str| ItemUpdate {
        increment: vec![("received".to_owned(), 1)],
        add_to_set: vec![("counted".to_owned(), message.to_owned())],
        condition: Some(UpdateCondition::NotInSet {
            attribute: "counted".to_owned(),
            value: message.to_owned(),
        }),
        ..ItemUpdate::default()
    };
    let outcome = table
        .update(&file, &count("m-1"))
        .await
        .expect("UpdateItem");
    let UpdateOutcome::Applied(item) = outcome else {
        panic!("the first count applies: {outcome:?}");
    };
    assert_eq!(item["received"], n(2));
    assert_eq!(
        item["counted"],
        AttributeValue::Ss(BTreeSet::from(["m-1".to_owned()]))
    );
    assert_eq!(
        table
            .update(&file, &count("m-1"))
            .await
            .expect("UpdateItem"),
        UpdateOutcome::ConditionFailed,
        "a redelivered message is not counted twice"
    );
    let outcome = table
        .update(&file, &count("m-2"))
        .await
        .expect("UpdateItem");
    let UpdateOutcome::Applied(item) = outcome else {
        panic!("another message counts: {outcome:?}");
    };
    assert_eq!(item["received"], n(3));
    assert_eq!(
        item["counted"],
        AttributeValue::Ss(BTreeSet::from(["m-1".to_owned(), "m-2".to_owned()]))
    );
    assert_eq!(
        table
            .update(&key("snapshot", "file-9"), &count("m-1"))
            .await
            .expect("UpdateItem"),
        UpdateOutcome::ConditionFailed,
        "NotInSet requires the item too"
    );

    // Without a condition: set, increment and add in one request, duplicates folded.
    let outcome = table
        .update(
            &file,
            &ItemUpdate {
                set: vec![("status".to_owned(), s("Success"))],
                increment: vec![("received".to_owned(), 10)],
                add_to_set: vec![
                    ("tags".to_owned(), "a".to_owned()),
                    ("tags".to_owned(), "b".to_owned()),
                ],
                condition: None,
            },
        )
        .await
        .expect("UpdateItem");
    let UpdateOutcome::Applied(item) = outcome else {
        panic!("an unconditional update applies: {outcome:?}");
    };
    assert_eq!(item["status"], s("Success"));
    assert_eq!(item["received"], n(13));
    assert_eq!(
        item["tags"],
        AttributeValue::Ss(BTreeSet::from(["a".to_owned(), "b".to_owned()]))
    );
    assert_eq!(table.get(&file, true).await.expect("GetItem"), Some(item));
}

#[tokio::test]
async fn dynamodb_attributes_of_unsupported_types_are_rejected_by_name() {
    let (config, backend) = moto_backend().await;
    let name = create_table(&config).await;
    aws_sdk_dynamodb::Client::new(&config)
        .put_item()
        .table_name(&name)
        .item("pk", SdkValue::S("p".into()))
        .item("sk", SdkValue::S("s".into()))
        .item("numbers", SdkValue::L(vec![SdkValue::N("1".into())]))
        .send()
        .await
        .expect("PutItem");
    let error = backend
        .table(&name)
        .get(&key("p", "s"), true)
        .await
        .expect_err("lists are not supported");
    assert_eq!(error.kind, IoErrorKind::Rejected, "{error}");
    assert!(error.message.contains("`numbers`"), "{error}");
}

#[tokio::test]
async fn missing_resources_are_not_found() {
    let (_, backend) = moto_backend().await;
    let moto = Moto::shared();

    let url = moto.queue_url(&unique_name("no-such-queue"));
    let error = backend
        .queue(&url)
        .receive(1, NO_WAIT, HIDDEN)
        .await
        .expect_err("no such queue");
    assert_eq!(error.kind, IoErrorKind::NotFound, "{error}");
    assert_eq!(error.operation, "ReceiveMessage");
    assert_eq!(error.resource, url);
    let error = backend
        .queue(&url)
        .send_batch(&[message("x", &[])])
        .await
        .expect_err("no such queue");
    assert_eq!(error.kind, IoErrorKind::NotFound, "{error}");

    let error = backend
        .table(&unique_name("no-such-table"))
        .get(&key("a", "b"), false)
        .await
        .expect_err("no such table");
    assert_eq!(error.kind, IoErrorKind::NotFound, "{error}");

    let error = backend
        .stream(&unique_name("no-such-stream"))
        .put_records(&[StreamRecord {
            partition_key: "k".to_owned(),
            data: b"x".to_vec(),
        }])
        .await
        .expect_err("no such stream");
    assert_eq!(error.kind, IoErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient() {
    // A port that was free a moment ago: nothing listens there, so connections are refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY";
    let config = sdk_config(
        None,
        &AwsOverrides {
            endpoint_url: Some(format!("http://127.0.0.1:{port}")),
            region: Some(REGION.to_owned()),
            credentials: Some(SharedCredentialsProvider::new(Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                secret,
                None,
                None,
                "unreachable",
            ))),
        },
    )
    .await;
    let backend = AwsBackend::new(&config);
    let url = format!("http://127.0.0.1:{port}/123456789012/nowhere");

    let error = backend
        .queue(&url)
        .receive(1, NO_WAIT, HIDDEN)
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind, IoErrorKind::Transient, "{error}");
    assert!(error.is_retryable());
    assert!(
        !error.message.contains(secret) && !error.message.contains("AKIAIOSFODNN7EXAMPLE"),
        "{error}"
    );

    let error = backend
        .stream("events")
        .put_records(&[StreamRecord {
            partition_key: "k".to_owned(),
            data: b"x".to_vec(),
        }])
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind, IoErrorKind::Transient, "{error}");
    let error = backend
        .table("t")
        .get(&key("a", "b"), false)
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind, IoErrorKind::Transient, "{error}");
}
