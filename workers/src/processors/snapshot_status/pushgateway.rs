//! Pushing a run's metrics to a Prometheus pushgateway, as the original did after every
//! message, and deleting the run's group once the run is complete. Optional: the metrics are
//! always on the worker's `/metrics` too. Failures are logged, never fail a message.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The job the original pushed under.
pub const JOB: &str = "snapshot_sender_status_checker";
/// The `component` grouping label the original used.
pub const COMPONENT: &str = "snapshot_sender_status_checker";
/// Longest a push or delete may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a run completes its group is deleted: the original waited one scrape
/// interval so the final values reach Prometheus.
pub const DELETE_AFTER: Duration = Duration::from_secs(70);
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why a push or delete failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("pushgateway `{url}`: TLS setup failed: {reason}")]
    Tls { url: String, reason: String },
    #[error("pushgateway `{url}`: invalid request: {reason}")]
    Request { url: String, reason: String },
    #[error("pushgateway `{url}`: {reason}")]
    Transport { url: String, reason: String },
    #[error("pushgateway `{url}`: timed out after {:?}", REQUEST_TIMEOUT)]
    Timeout { url: String },
    #[error("pushgateway `{url}` answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// A pushgateway client for one gateway.
#[derive(Clone)]
pub struct Pushgateway {
    base_url: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Pushgateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pushgateway")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Pushgateway {
    /// A client for the gateway at `base_url` (`http://` or `https://`, with the system's CA
    /// certificates).
    pub fn new(base_url: &str) -> Result<Self, PushError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = HttpsConnectorBuilder::new();
        let tls_error = |reason: String| PushError::Tls {
            url: base_url.clone(),
            reason,
        };
        // Native roots only when they are needed, so a plain-http gateway works in an image
        // without CA certificates.
        let builder = if base_url.starts_with("https://") {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| tls_error(e.to_string()))?
        } else {
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| tls_error(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self { base_url, client })
    }

    /// The URL of a run's group: `/metrics/job/<job>/component/<c>/correlation_id/<id>`.
    pub fn group_url(&self, correlation_id: &str) -> String {
        format!(
            "{}/metrics/job/{JOB}/component/{COMPONENT}/correlation_id{}",
            self.base_url,
            label_path_segment(correlation_id),
        )
    }

    /// Adds `text` (Prometheus text format) to the run's group, replacing series of the same
    /// names (the original's `push_to_gateway`-add, i.e. POST).
    pub async fn push_add(&self, correlation_id: &str, text: String) -> Result<(), PushError> {
        self.send(Method::POST, correlation_id, Full::new(Bytes::from(text)))
            .await
    }

    /// Deletes the run's group.
    pub async fn delete(&self, correlation_id: &str) -> Result<(), PushError> {
        self.send(Method::DELETE, correlation_id, Full::new(Bytes::new()))
            .await
    }

    async fn send(
        &self,
        method: Method,
        correlation_id: &str,
        body: Full<Bytes>,
    ) -> Result<(), PushError> {
        let url = self.group_url(correlation_id);
        let request = Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(body)
            .map_err(|e| PushError::Request {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| PushError::Transport {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            Err(PushError::Status {
                url: url.clone(),
                status: status.as_u16(),
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| PushError::Timeout { url: url.clone() })?
    }
}

/// A grouping label value as a path segment: as it is when it is plain, else the gateway's
/// `@base64` form (values with `/`, empty values, anything that needs escaping).
fn label_path_segment(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if plain {
        format!("/{value}")
    } else {
        format!("@base64/{}", URL_SAFE.encode(value.as_bytes()))
    }
}

/// A gateway that records one request and answers with `status`, for tests.
#[cfg(test)]
pub(super) async fn fake_gateway(
    status: &'static str,
) -> (String, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let response =
            format!("HTTP/1.1 {status}\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope");
        socket.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (format!("http://{address}"), handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_url_has_the_original_job_and_grouping_key() {
        let gateway = Pushgateway::new("http://pushgateway:9091/").unwrap();
        assert_eq!(
            gateway.group_url("run_1"),
            "http://pushgateway:9091/metrics/job/snapshot_sender_status_checker/component/snapshot_sender_status_checker/correlation_id/run_1"
        );
    }

    #[test]
    fn awkward_correlation_ids_are_base64_encoded() {
        assert_eq!(label_path_segment("a/b"), "@base64/YS9i");
        assert_eq!(label_path_segment(""), "@base64/");
        assert_eq!(label_path_segment("run-1.2"), "/run-1.2");
    }

    #[tokio::test]
    async fn push_add_posts_the_text_to_the_group() {
        let (url, request) = fake_gateway("200 OK").await;
        let gateway = Pushgateway::new(&url).unwrap();
        gateway
            .push_add("run_1", "x_total 1\n".into())
            .await
            .unwrap();
        let request = request.await.unwrap();
        assert!(request.starts_with(
            "POST /metrics/job/snapshot_sender_status_checker/component/snapshot_sender_status_checker/correlation_id/run_1 HTTP/1.1"
        ), "{request}");
        assert!(request.ends_with("\r\n\r\nx_total 1\n"), "{request}");
    }

    #[tokio::test]
    async fn delete_removes_the_group_and_reports_a_refusal() {
        let (url, request) = fake_gateway("500 Internal Server Error").await;
        let gateway = Pushgateway::new(&url).unwrap();
        let error = gateway.delete("run_1").await.unwrap_err();
        assert!(request.await.unwrap().starts_with("DELETE /metrics/job/"));
        assert!(error.to_string().contains("answered 500: nope"), "{error}");
    }
}
