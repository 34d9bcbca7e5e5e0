//! moto's AWS-compatible server (SQS, SNS, S3, DynamoDB, Kinesis on one port).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use wharf_workers::io::aws::{AwsOverrides, sdk_config};

use crate::process::{follow_test_process, free_port, wait_for_port};

/// moto's fixed account id; queue URLs and ARNs carry it.
pub const ACCOUNT_ID: &str = "123456789012";
/// Region every test client uses.
pub const REGION: &str = "us-east-1";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    pub port: u16,
    pub endpoint: String,
    pub log: PathBuf,
    child: Mutex<Option<Child>>,
}

fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WHARF_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    crate::workspace_root().join(".venv/bin/moto_server")
}

impl Moto {
    /// The server shared by every test of this process.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    /// A server of its own, for tests that stop and resume it.
    pub fn start() -> Moto {
        let binary = moto_binary();
        assert!(
            binary.exists(),
            "moto's server is not installed at {}: run scripts/test.sh (it creates .venv with \
             moto[server]) or point WHARF_MOTO_SERVER at a moto_server binary",
            binary.display()
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("wharf-moto-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("temp dir is writable");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        follow_test_process(&child);
        assert!(
            wait_for_port(port, Duration::from_secs(60)),
            "moto did not listen on port {port} within 60 s; see {}",
            log.display()
        );
        Moto {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            child: Mutex::new(Some(child)),
        }
    }

    /// Overrides that point Wharf's AWS clients at this server with test credentials.
    pub fn overrides(&self) -> AwsOverrides {
        AwsOverrides {
            endpoint_url: Some(self.endpoint.clone()),
            region: Some(REGION.to_owned()),
            credentials: Some(SharedCredentialsProvider::new(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "wharf-tests",
            ))),
        }
    }

    /// SDK configuration for clients that talk to this server.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(None, &self.overrides()).await
    }

    /// Environment for a child process (a `wharf` worker) that talks to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ]
    }

    /// The URL moto gives a queue of this name.
    pub fn queue_url(&self, name: &str) -> String {
        format!("{}/{ACCOUNT_ID}/{name}", self.endpoint)
    }

    /// Freezes the server (SIGSTOP): connections hang and time out, state is kept.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let guard = self.child.lock().expect("moto child lock");
        let child = guard.as_ref().expect("moto is running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill is available");
        assert!(status.success(), "kill -{signal} moto failed");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock()
            && let Some(mut child) = guard.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every record in a Kinesis stream, shard by shard, as (partition key, data).
pub async fn stream_records(
    config: &aws_config::SdkConfig,
    stream: &str,
) -> Vec<(String, Vec<u8>)> {
    let kinesis = aws_sdk_kinesis::Client::new(config);
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("ListShards")
        .shards
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator;
        while let Some(current) = iterator.take() {
            let page = kinesis
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await
                .expect("GetRecords");
            let empty = page.records().is_empty();
            records.extend(page.records().iter().map(|r| {
                (
                    r.partition_key.clone().unwrap_or_default(),
                    r.data.as_ref().to_vec(),
                )
            }));
            if empty {
                break;
            }
            iterator = page.next_shard_iterator;
        }
    }
    records
}

/// Sends `bodies` to the queue in batches of ten through the SDK, failing the test on any
/// refused entry.
pub async fn send_bodies(config: &aws_config::SdkConfig, queue_url: &str, bodies: &[String]) {
    let sqs = aws_sdk_sqs::Client::new(config);
    for chunk in bodies.chunks(10) {
        let entries = chunk.iter().enumerate().map(|(i, body)| {
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .expect("a batch entry")
        });
        let sent = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .expect("SendMessageBatch");
        assert!(
            sent.failed().is_empty(),
            "moto refused: {:?}",
            sent.failed()
        );
    }
}

/// What a telemetry Pipeline reads and writes in moto.
#[derive(Clone, Debug)]
pub struct TelemetryResources {
    pub source_url: String,
    pub dead_letter_url: String,
    pub stream: String,
}

/// Creates a source queue `name`, its dead-letter queue `name-dead` and a Kinesis stream
/// `name` with `shards` shards.
pub async fn create_telemetry_resources(
    config: &aws_config::SdkConfig,
    name: &str,
    shards: i32,
) -> TelemetryResources {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut urls = Vec::new();
    for queue in [name.to_owned(), format!("{name}-dead")] {
        let created = sqs
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .expect("CreateQueue");
        urls.push(created.queue_url.expect("a queue URL"));
    }
    aws_sdk_kinesis::Client::new(config)
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("CreateStream");
    let dead_letter_url = urls.pop().expect("two queues");
    let source_url = urls.pop().expect("two queues");
    TelemetryResources {
        source_url,
        dead_letter_url,
        stream: name.to_owned(),
    }
}
