//! The AWS emulator works through the real Rust SDK clients, configured the way Wharf
//! configures them (one rustls HTTP stack, path-style S3 against a custom endpoint).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use wharf_tests::{Moto, unique_name};
use wharf_workers::io::aws::config::s3_client;

#[tokio::test]
async fn creates_a_queue_a_stream_a_bucket_a_table_and_a_topic() {
    let moto = Moto::shared();
    let config = moto.sdk_config().await;

    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = unique_name("smoke");
    let url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue URL");
    assert_eq!(url, moto.queue_url(&queue));
    sqs.send_message()
        .queue_url(&url)
        .message_body("hello")
        .send()
        .await
        .expect("SendMessage");
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("ReceiveMessage");
    assert_eq!(received.messages().len(), 1);
    assert_eq!(received.messages()[0].body(), Some("hello"));

    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let stream = unique_name("smoke");
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(1)
        .send()
        .await
        .expect("CreateStream");
    let described = kinesis
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .expect("DescribeStreamSummary");
    assert_eq!(
        described
            .stream_description_summary()
            .map(|s| s.stream_name()),
        Some(stream.as_str())
    );

    let s3 = s3_client(&config);
    let bucket = unique_name("smoke");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("CreateBucket");
    s3.put_object()
        .bucket(&bucket)
        .key("a/b.txt")
        .body(b"payload".to_vec().into())
        .send()
        .await
        .expect("PutObject");
    let object = s3
        .get_object()
        .bucket(&bucket)
        .key("a/b.txt")
        .send()
        .await
        .expect("GetObject");
    let bytes = object
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes();
    assert_eq!(&bytes[..], b"payload");

    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("smoke");
    dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateTable");
    let tables = dynamodb.list_tables().send().await.expect("ListTables");
    assert!(tables.table_names().contains(&table));

    let sns = aws_sdk_sns::Client::new(&config);
    let topic = unique_name("smoke");
    let arn = sns
        .create_topic()
        .name(&topic)
        .send()
        .await
        .expect("CreateTopic")
        .topic_arn
        .expect("topic ARN");
    assert!(arn.ends_with(&format!(":{topic}")), "{arn}");
    sns.publish()
        .topic_arn(&arn)
        .message("hello")
        .send()
        .await
        .expect("Publish");
}
