//! Optional span export: when the standard OTLP environment variables name a collector, spans
//! recorded through `tracing` are batched and sent to it as OTLP over HTTP/protobuf.
//!
//! The HTTP client is the hyper 1 + rustls (ring) stack the AWS SDK already compiles, driven by a
//! one-thread Tokio runtime of its own: the SDK's batch processor exports from a plain OS thread,
//! and the process's main runtime (an actix System) may not exist yet, or may be gone, when spans
//! are flushed at exit.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::ObservabilityError;

const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";

/// The service name spans carry when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES`
/// names one.
pub(crate) const DEFAULT_SERVICE_NAME: &str = "wharf";
/// The OTLP specification's default export timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Collectors answer with a small protobuf; anything bigger is not an OTLP response.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Where and how to export spans, read once from the standard OpenTelemetry variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OtlpSettings {
    /// The full URL spans are POSTed to (`…/v1/traces`).
    pub(crate) traces_endpoint: String,
    /// `None` leaves the name to the SDK, which reads `OTEL_RESOURCE_ATTRIBUTES`.
    pub(crate) service_name: Option<String>,
    pub(crate) timeout: Duration,
}

impl OtlpSettings {
    /// Reads the process environment; `Ok(None)` when no OTLP endpoint is set (or tracing is
    /// switched off with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`).
    pub(crate) fn from_env() -> Result<Option<Self>, ObservabilityError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ObservabilityError> {
        let var = |name: &'static str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
                .map(|value| (name, value))
        };
        if var(SDK_DISABLED).is_some_and(|(_, value)| value.eq_ignore_ascii_case("true"))
            || var(TRACES_EXPORTER).is_some_and(|(_, value)| value.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        // Per the OTLP exporter specification, the signal-specific URL is used as given and the
        // generic one gets the signal's path appended.
        let (variable, traces_endpoint) = match (var(TRACES_ENDPOINT), var(ENDPOINT)) {
            (Some((variable, url)), _) => (variable, url),
            (None, Some((variable, base))) => (
                variable,
                format!("{}/v1/traces", base.trim_end_matches('/')),
            ),
            (None, None) => return Ok(None),
        };
        check_endpoint(variable, &traces_endpoint)?;
        if let Some((variable, value)) = var(TRACES_PROTOCOL).or_else(|| var(PROTOCOL))
            && value != "http/protobuf"
        {
            return Err(ObservabilityError::UnsupportedOtlpProtocol { variable, value });
        }
        let timeout = match var(TRACES_TIMEOUT).or_else(|| var(TIMEOUT)) {
            None => DEFAULT_TIMEOUT,
            Some((variable, value)) => match value.parse::<u64>() {
                Ok(millis) if millis > 0 => Duration::from_millis(millis),
                _ => return Err(ObservabilityError::InvalidOtlpTimeout { variable, value }),
            },
        };
        let named_in_attributes = var(RESOURCE_ATTRIBUTES).is_some_and(|(_, attributes)| {
            attributes
                .split(',')
                .any(|pair| pair.split('=').next().map(str::trim) == Some("service.name"))
        });
        let service_name = match var(SERVICE_NAME) {
            Some((_, name)) => Some(name),
            None if named_in_attributes => None,
            None => Some(DEFAULT_SERVICE_NAME.to_owned()),
        };
        Ok(Some(OtlpSettings {
            traces_endpoint,
            service_name,
            timeout,
        }))
    }

    fn is_https(&self) -> bool {
        self.traces_endpoint
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }
}

fn check_endpoint(variable: &'static str, value: &str) -> Result<(), ObservabilityError> {
    let invalid = |reason: String| ObservabilityError::InvalidOtlpEndpoint {
        variable,
        value: value.to_owned(),
        reason,
    };
    let uri: http::Uri = value.parse().map_err(|error| invalid(format!("{error}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(()),
        _ => Err(invalid(
            "expected an http:// or https:// URL with a host, such as http://otel-collector:4318"
                .to_owned(),
        )),
    }
}

/// A tracer provider that batches spans and exports them to `settings.traces_endpoint`.
/// Shutting it down flushes what is buffered.
pub(crate) fn tracer_provider(
    settings: &OtlpSettings,
) -> Result<SdkTracerProvider, ObservabilityError> {
    let client = OtlpHttpClient::new(settings)?;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.traces_endpoint.clone())
        .with_timeout(settings.timeout)
        .with_http_client(client)
        .build()
        .map_err(|source| ObservabilityError::OtlpExporter {
            endpoint: settings.traces_endpoint.clone(),
            source,
        })?;
    let mut resource = Resource::builder();
    if let Some(name) = &settings.service_name {
        resource = resource.with_service_name(name.clone());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The exporter's HTTP client: hyper over rustls, each request run on the export runtime.
#[derive(Clone)]
struct OtlpHttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: Arc<ExportRuntime>,
    timeout: Duration,
}

impl fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpHttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl OtlpHttpClient {
    fn new(settings: &OtlpSettings) -> Result<Self, ObservabilityError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = HttpsConnectorBuilder::new();
        // Native roots are loaded only when needed: an image without CA certificates can still
        // export to a plain-http collector.
        let builder = if settings.is_https() {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|source| ObservabilityError::OtlpTls {
                    endpoint: settings.traces_endpoint.clone(),
                    source,
                })?
        } else {
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|error| ObservabilityError::OtlpTls {
                    endpoint: settings.traces_endpoint.clone(),
                    source: std::io::Error::other(error),
                })?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(OtlpHttpClient {
            client,
            runtime: Arc::new(ExportRuntime::start()?),
            timeout: settings.timeout,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let timeout = self.timeout;
        let request = request.map(Full::new);
        let exchange = async move {
            let response = client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let task = self.runtime.handle.spawn(async move {
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_elapsed| -> HttpError {
                    format!("the OTLP collector did not answer within {timeout:?}").into()
                })?
        });
        task.await?
    }
}

/// The one-thread runtime exports run on; shut down without blocking whoever drops it last.
struct ExportRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl ExportRuntime {
    fn start() -> Result<Self, ObservabilityError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wharf-otlp-export")
            .enable_io()
            .enable_time()
            .build()
            .map_err(ObservabilityError::OtlpRuntime)?;
        let handle = runtime.handle().clone();
        Ok(ExportRuntime {
            runtime: Some(runtime),
            handle,
        })
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside another one panics; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, SocketAddr};

    use http_body_util::BodyExt;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message as _;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    fn settings_from(vars: &[(&str, &str)]) -> Result<Option<OtlpSettings>, ObservabilityError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtlpSettings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_endpoint_means_no_export() {
        assert_eq!(settings_from(&[]).expect("valid"), None);
        assert_eq!(
            settings_from(&[(ENDPOINT, "  ")]).expect("valid"),
            None,
            "blank counts as unset"
        );
    }

    #[test]
    fn the_generic_endpoint_gets_the_traces_path_and_the_specific_one_is_used_as_given() {
        let generic = settings_from(&[(ENDPOINT, "http://collector:4318/")])
            .expect("valid")
            .expect("enabled");
        assert_eq!(generic.traces_endpoint, "http://collector:4318/v1/traces");

        let specific = settings_from(&[
            (ENDPOINT, "http://ignored:4318"),
            (TRACES_ENDPOINT, "https://traces.example:443/custom"),
        ])
        .expect("valid")
        .expect("enabled");
        assert_eq!(
            specific.traces_endpoint,
            "https://traces.example:443/custom"
        );
        assert!(specific.is_https());
    }

    #[test]
    fn the_service_name_defaults_to_wharf_unless_named() {
        let default = settings_from(&[(ENDPOINT, "http://c:4318")])
            .expect("valid")
            .expect("enabled");
        assert_eq!(default.service_name.as_deref(), Some("wharf"));
        assert_eq!(default.timeout, DEFAULT_TIMEOUT);

        let named = settings_from(&[(ENDPOINT, "http://c:4318"), (SERVICE_NAME, "ingest")])
            .expect("valid")
            .expect("enabled");
        assert_eq!(named.service_name.as_deref(), Some("ingest"));

        let by_attributes = settings_from(&[
            (ENDPOINT, "http://c:4318"),
            (RESOURCE_ATTRIBUTES, "team=media, service.name=transcode"),
        ])
        .expect("valid")
        .expect("enabled");
        assert_eq!(
            by_attributes.service_name, None,
            "left to the SDK's detector"
        );
    }

    #[test]
    fn export_can_be_switched_off() {
        let endpoint = (ENDPOINT, "http://c:4318");
        assert_eq!(
            settings_from(&[endpoint, (SDK_DISABLED, "true")]).expect("valid"),
            None
        );
        assert_eq!(
            settings_from(&[endpoint, (TRACES_EXPORTER, "none")]).expect("valid"),
            None
        );
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let error = settings_from(&[(ENDPOINT, "collector:4318")]).expect_err("no scheme");
        assert!(error.to_string().contains(ENDPOINT), "{error}");

        let error = settings_from(&[(ENDPOINT, "http://c:4317"), (PROTOCOL, "grpc")])
            .expect_err("grpc is not built in");
        assert!(
            error
                .to_string()
                .contains("OTEL_EXPORTER_OTLP_PROTOCOL=`grpc`"),
            "{error}"
        );

        let error = settings_from(&[(ENDPOINT, "http://c:4318"), (TRACES_TIMEOUT, "5s")])
            .expect_err("milliseconds only");
        assert!(error.to_string().contains(TRACES_TIMEOUT), "{error}");

        let timeout = settings_from(&[(ENDPOINT, "http://c:4318"), (TIMEOUT, "2500")])
            .expect("valid")
            .expect("enabled")
            .timeout;
        assert_eq!(timeout, Duration::from_millis(2500));
    }

    /// What the stand-in collector saw of one request.
    #[derive(Debug)]
    struct Received {
        method: String,
        path: String,
        content_type: Option<String>,
        body: Bytes,
    }

    /// A local HTTP listener standing in for an OTLP collector: records each request, answers 200.
    async fn fake_collector() -> (SocketAddr, mpsc::Receiver<Received>) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (sender, received) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let sender = sender.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let content_type = parts
                                .headers
                                .get(http::header::CONTENT_TYPE)
                                .and_then(|value| value.to_str().ok())
                                .map(str::to_owned);
                            let _ = sender
                                .send(Received {
                                    method: parts.method.to_string(),
                                    path: parts.uri.path().to_owned(),
                                    content_type,
                                    body,
                                })
                                .await;
                            let mut response = Response::new(Full::new(Bytes::new()));
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/x-protobuf"),
                            );
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, received)
    }

    fn string_attribute<'a>(
        attributes: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
        key: &str,
    ) -> Option<&'a str> {
        attributes
            .iter()
            .find(|attribute| attribute.key == key)
            .and_then(|attribute| attribute.value.as_ref())
            .and_then(|value| match &value.value {
                Some(Value::StringValue(text)) => Some(text.as_str()),
                _ => None,
            })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_are_posted_to_the_collector_as_protobuf_on_shutdown() {
        let (addr, mut received) = fake_collector().await;
        let settings = OtlpSettings {
            traces_endpoint: format!("http://{addr}/v1/traces"),
            service_name: Some("wharf-test".to_owned()),
            timeout: Duration::from_secs(5),
        };
        let provider = tracer_provider(&settings).expect("provider");
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("wharf")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("process_message", message_id = "m-1");
            span.in_scope(|| tracing::info!("handled"));
        });

        // Shutting down flushes the batch; it blocks, so keep it off the async workers.
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .expect("no panic")
            .expect("clean shutdown");

        let request = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("an export within 5s")
            .expect("a request");
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/x-protobuf")
        );

        let export = ExportTraceServiceRequest::decode(request.body).expect("OTLP protobuf");
        let resource_spans = export.resource_spans.first().expect("resource spans");
        let resource = resource_spans.resource.as_ref().expect("a resource");
        assert_eq!(
            string_attribute(&resource.attributes, "service.name"),
            Some("wharf-test")
        );
        let span = resource_spans
            .scope_spans
            .iter()
            .flat_map(|scope| &scope.spans)
            .find(|span| span.name == "process_message")
            .expect("the span was exported");
        assert_eq!(
            string_attribute(&span.attributes, "message_id"),
            Some("m-1")
        );
        assert!(
            span.events.iter().any(|event| event.name == "handled"),
            "the event inside the span is exported with it"
        );
    }

    #[test]
    fn export_failures_do_not_block_shutdown_forever() {
        // Nothing listens on this port: the export fails, and shutdown still returns.
        let closed = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let addr = closed.local_addr().expect("local addr");
        drop(closed);
        let settings = OtlpSettings {
            traces_endpoint: format!("http://{addr}/v1/traces"),
            service_name: None,
            timeout: Duration::from_millis(500),
        };
        let provider = tracer_provider(&settings).expect("provider");
        let tracer = provider.tracer("wharf");
        opentelemetry::trace::Tracer::in_span(&tracer, "lost", |_| ());
        let started = std::time::Instant::now();
        let _ = provider.shutdown();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
