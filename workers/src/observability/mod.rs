//! What a running worker (or the operator) tells the outside world about itself: structured logs
//! on standard error, Prometheus metrics and a health probe over HTTP, and optionally its spans
//! exported to an OpenTelemetry collector.

mod health;
mod logging;
mod metrics_server;
mod otlp;

use std::net::SocketAddr;

pub use health::HealthState;
pub use logging::{LogFormat, TracingGuard, init_logging};
pub use metrics_server::MetricsServer;

/// Why logging, tracing or the metrics endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ObservabilityError {
    #[error("unknown log format `{value}`: expected one of auto, json, text")]
    UnknownLogFormat { value: String },

    #[error(
        "{origin} `{value}` is not a valid log filter ({reason}); \
         use directives such as `info` or `info,wharf_workers=debug`"
    )]
    InvalidLogFilter {
        origin: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "a global tracing subscriber is already installed: logging must be initialised once, \
         at start-up"
    )]
    LoggingAlreadyInitialised,

    #[error("{variable}=`{value}` is not a usable OTLP endpoint: {reason}")]
    InvalidOtlpEndpoint {
        variable: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "{variable}=`{value}` is not supported: traces are exported as http/protobuf; set it to \
         `http/protobuf` and point the endpoint at the collector's HTTP port (usually 4318)"
    )]
    UnsupportedOtlpProtocol {
        variable: &'static str,
        value: String,
    },

    #[error("{variable}=`{value}` is not a timeout: expected a whole number of milliseconds")]
    InvalidOtlpTimeout {
        variable: &'static str,
        value: String,
    },

    #[error("cannot start the OTLP export thread: {0}")]
    OtlpRuntime(#[source] std::io::Error),

    #[error(
        "cannot load the system's CA certificates for the https OTLP endpoint `{endpoint}`: \
         {source}; install CA certificates in the image or use an http:// endpoint"
    )]
    OtlpTls {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot set up OTLP trace export to `{endpoint}`: {source}")]
    OtlpExporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },

    #[error(
        "cannot listen on {address} for /metrics and /healthz: {source}; choose another port \
         (`--metrics-port`, 0 picks a free one) or stop whatever holds this one"
    )]
    MetricsBind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
