//! The small HTTP/1.1 server behind `/metrics` (Prometheus scrapes) and `/healthz` (Kubernetes
//! probes). It only spawns plain Tokio tasks, so it runs on a Tokio runtime and inside an actix
//! System alike.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{HealthState, ObservabilityError};

/// The content type Prometheus expects for what `prometheus_client` encodes.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// Scrapers and probes open a handful of connections; more than this are turned away so that a
/// misbehaving client cannot take file descriptors from the message path.
const MAX_CONNECTIONS: usize = 64;
/// A client that has not sent its request headers by then is disconnected.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish their current response once the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed accept (for example when out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `GET /metrics` and `GET /healthz` on a bound address until told to stop.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    routes: Routes,
}

/// What every connection needs to answer a request.
#[derive(Clone, Debug)]
struct Routes {
    registry: Arc<Registry>,
    health: HealthState,
}

impl MetricsServer {
    /// Binds `addr` now, so that a taken port is reported at start-up rather than later.
    pub async fn bind(
        addr: SocketAddr,
        registry: Arc<Registry>,
        health: HealthState,
    ) -> Result<MetricsServer, ObservabilityError> {
        let bind_error = |source| ObservabilityError::MetricsBind {
            address: addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(MetricsServer {
            listener,
            local_addr,
            routes: Routes { registry, health },
        })
    }

    /// The address actually bound (port 0 resolved to the one the system picked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts and serves connections until `stop` is cancelled, then gives open connections
    /// a short grace period to finish.
    pub async fn run(self, stop: CancellationToken) {
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    warn!(%error, address = %self.local_addr, "metrics server: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                debug!(%peer, "metrics server: too many open connections; closing this one");
                continue;
            };
            let routes = self.routes.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                serve_connection(stream, routes, stop).await;
                drop(permit);
            });
        }
        // Wait (bounded) for the connection tasks, which stop on the same token.
        let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, connections.acquire_many(all)).await;
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, routes: Routes, stop: CancellationToken) {
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let response = routes.respond(request.method(), request.uri().path());
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let finished = tokio::select! {
        result = connection.as_mut() => Some(result),
        () = stop.cancelled() => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                Ok(result) => result,
                Err(_elapsed) => return,
            }
        }
    };
    if let Err(error) = result {
        debug!(%error, "metrics server: connection ended with an error");
    }
}

impl Routes {
    /// The whole routing table: GET (and HEAD) on two paths.
    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let known = matches!(path, "/metrics" | "/healthz");
        if !known {
            return reply(
                StatusCode::NOT_FOUND,
                TEXT_CONTENT_TYPE,
                "not found: try /metrics or /healthz\n",
            );
        }
        if method != Method::GET && method != Method::HEAD {
            let mut response = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT_CONTENT_TYPE,
                "use GET\n",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        if path == "/metrics" {
            self.metrics()
        } else {
            self.health()
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let mut body = String::new();
        match prometheus_client::encoding::text::encode(&mut body, &self.registry) {
            Ok(()) => reply(StatusCode::OK, OPENMETRICS_CONTENT_TYPE, body),
            Err(error) => {
                warn!(%error, "metrics server: cannot encode the metrics registry");
                reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT_CONTENT_TYPE,
                    "cannot encode the metrics\n",
                )
            }
        }
    }

    fn health(&self) -> Response<Full<Bytes>> {
        match self.health.unhealthy_reason() {
            None => reply(StatusCode::OK, TEXT_CONTENT_TYPE, "ok"),
            Some(reason) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT_CONTENT_TYPE, reason),
        }
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// A response as read off the wire.
    struct Answer {
        status: u16,
        headers: String,
        body: String,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then_some(value.trim())
            })
        }
    }

    /// Sends one raw HTTP/1.1 request with `Connection: close` and reads the whole answer.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut raw = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut raw))
            .await
            .expect("answer within 5s")
            .expect("read answer");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        Answer {
            status,
            headers: headers.replace("\r\n", "\n"),
            body: body.to_owned(),
        }
    }

    async fn start(registry: Registry, health: HealthState) -> (SocketAddr, CancellationToken) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server = MetricsServer::bind(addr, Arc::new(registry), health)
            .await
            .expect("bind on a free port");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0, "the bound port is reported");
        let stop = CancellationToken::new();
        tokio::spawn(server.run(stop.clone()));
        (addr, stop)
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let mut registry = Registry::with_prefix("wharf");
        let processed: Counter = Counter::default();
        registry.register(
            "messages_processed",
            "Messages processed",
            processed.clone(),
        );
        processed.inc_by(3);
        let (addr, stop) = start(registry, HealthState::default()).await;

        let answer = request(addr, "GET", "/metrics").await;

        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("content-type"),
            Some(OPENMETRICS_CONTENT_TYPE)
        );
        assert!(
            answer
                .body
                .contains("# TYPE wharf_messages_processed counter\n"),
            "{}",
            answer.body
        );
        assert!(
            answer.body.contains("wharf_messages_processed_total 3\n"),
            "{}",
            answer.body
        );
        assert!(answer.body.ends_with("# EOF\n"), "{}", answer.body);
        stop.cancel();
    }

    #[tokio::test]
    async fn healthz_is_503_with_the_reason_until_healthy() {
        let health = HealthState::default();
        let (addr, stop) = start(Registry::default(), health.clone()).await;

        let starting = request(addr, "GET", "/healthz").await;
        assert_eq!(starting.status, 503);
        assert_eq!(starting.body, "starting");

        health.set_healthy();
        let healthy = request(addr, "GET", "/healthz").await;
        assert_eq!(healthy.status, 200);
        assert_eq!(healthy.body, "ok");

        health.set_unhealthy("draining");
        let draining = request(addr, "GET", "/healthz").await;
        assert_eq!(draining.status, 503);
        assert_eq!(draining.body, "draining");
        stop.cancel();
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_other_methods_405() {
        let (addr, stop) = start(Registry::default(), HealthState::default()).await;

        assert_eq!(request(addr, "GET", "/").await.status, 404);
        assert_eq!(request(addr, "GET", "/metrics/extra").await.status, 404);
        let post = request(addr, "POST", "/metrics").await;
        assert_eq!(post.status, 405);
        assert_eq!(post.header("allow"), Some("GET, HEAD"));
        assert_eq!(request(addr, "DELETE", "/healthz").await.status, 405);
        stop.cancel();
    }

    #[tokio::test]
    async fn query_strings_do_not_change_the_route() {
        let (addr, stop) = start(Registry::default(), HealthState::default()).await;
        assert_eq!(request(addr, "GET", "/metrics?x=1").await.status, 200);
        stop.cancel();
    }

    #[tokio::test]
    async fn binding_a_taken_port_names_the_address_and_suggests_another() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = taken.local_addr().expect("local addr");

        let error =
            MetricsServer::bind(addr, Arc::new(Registry::default()), HealthState::default())
                .await
                .expect_err("the port is taken");

        assert!(
            matches!(error, ObservabilityError::MetricsBind { address, .. } if address == addr)
        );
        let message = error.to_string();
        assert!(message.contains(&addr.to_string()), "{message}");
        assert!(message.contains("another port"), "{message}");
    }

    #[tokio::test]
    async fn run_returns_once_stopped() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let server =
            MetricsServer::bind(addr, Arc::new(Registry::default()), HealthState::default())
                .await
                .expect("bind");
        let addr = server.local_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone()));
        // An idle keep-alive connection must not hold the server open past the grace period.
        let _idle = TcpStream::connect(addr).await.expect("connect");
        stop.cancel();
        tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(3), task)
            .await
            .expect("run returns after stop")
            .expect("no panic");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the port is released"
        );
    }

    #[test]
    fn serves_inside_an_actix_system() {
        let system = actix::System::new();
        let answer = system.block_on(async {
            let (addr, stop) = start(Registry::default(), HealthState::default()).await;
            let answer = request(addr, "GET", "/healthz").await;
            stop.cancel();
            answer
        });
        assert_eq!(answer.status, 503);
    }
}
