//! The autoscaler's view of a real SQS API (moto): the operator's AWS backend reads visible,
//! in-flight and dead-letter counts with GetQueueAttributes, the decision follows them, and a
//! frozen endpoint is reported as an error within the depth timeout instead of hanging a poll.

use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use wharf_crds::pipeline::ScalingPolicy;
use wharf_operator::autoscaler::{ScalerState, decide};
use wharf_operator::backends;
use wharf_operator::scaler_loop::{DEPTH_TIMEOUT, DepthError, PipelineQueues};
use wharf_tests::{Moto, unique_name};

async fn queue(client: &Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("queue URL")
}

async fn send(client: &Client, url: &str, n: usize) {
    for i in 0..n {
        client
            .send_message()
            .queue_url(url)
            .message_body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .expect("SendMessage");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_from_sqs_drives_the_decision_and_a_frozen_endpoint_is_an_error() {
    let moto = Moto::shared();
    let sqs = Client::new(&moto.sdk_config().await);
    let source = queue(&sqs, &unique_name("source")).await;
    let dead_letter = queue(&sqs, &unique_name("dlq")).await;
    send(&sqs, &source, 7).await;
    send(&sqs, &dead_letter, 1).await;
    let received = sqs
        .receive_message()
        .queue_url(&source)
        .max_number_of_messages(2)
        .visibility_timeout(300)
        .send()
        .await
        .expect("ReceiveMessage");
    assert_eq!(received.messages().len(), 2);

    let backend = (backends::aws(moto.overrides()))(None).await;
    let queues = PipelineQueues {
        source: backend.queue(&source),
        dead_letter: Some(backend.queue(&dead_letter)),
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let observation = queues.observe(now).await.expect("depth is readable");
    assert_eq!(
        (
            observation.visible,
            observation.in_flight,
            observation.dead_letter
        ),
        (5, 2, Some(1))
    );

    let policy = ScalingPolicy {
        target_backlog_per_replica: 2,
        ..ScalingPolicy::default()
    };
    let decision = decide(&policy, &observation, &ScalerState::starting_at(1));
    assert_eq!(decision.replicas, 4);
    assert_eq!(decision.reason, "backlog 7 > 1 × 2 → 4 replicas");

    moto.pause();
    let started = Instant::now();
    let frozen = queues.observe(now).await;
    moto.resume();
    match frozen {
        Err(DepthError::Timeout { queue, .. }) => assert_eq!(queue, source),
        other => panic!("a frozen endpoint is a timeout error, got {other:?}"),
    }
    assert!(
        started.elapsed() < DEPTH_TIMEOUT + Duration::from_secs(5),
        "the poll is bounded by the depth timeout: {:?}",
        started.elapsed()
    );
}
