//! The process-wide `tracing` subscriber: a `RUST_LOG` filter, JSON or human-readable lines on
//! standard error, and — when an OTLP collector is configured — span export to it.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::ObservabilityError;
use super::otlp::{self, OtlpSettings};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when standard error is not a terminal (a pod's log), text when it is.
    Auto,
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines.
    Text,
}

impl LogFormat {
    /// Whether this format writes JSON, given whether standard error is a terminal.
    fn writes_json(self, stderr_is_terminal: bool) -> bool {
        match self {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => !stderr_is_terminal,
        }
    }
}

impl FromStr for LogFormat {
    type Err = ObservabilityError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(ObservabilityError::UnknownLogFormat {
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Auto => "auto",
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        })
    }
}

/// Keeps span export alive; dropping it flushes buffered spans and stops the exporter.
/// Hold it until the process is about to exit.
#[must_use = "dropping the guard stops span export at once"]
#[derive(Debug)]
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "could not flush spans to the OTLP collector at exit");
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` chooses what is logged (else `default_filter`);
/// `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` turns span export on
/// (service name from `OTEL_SERVICE_NAME`, default `wharf`). Call once, at start-up.
pub fn init_logging(
    format: LogFormat,
    default_filter: &str,
) -> Result<TracingGuard, ObservabilityError> {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref(), default_filter)?;
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let provider = OtlpSettings::from_env()?
        .map(|settings| otlp::tracer_provider(&settings))
        .transpose()?;
    subscriber(
        filter,
        format.writes_json(stderr_is_terminal),
        stderr_is_terminal,
        std::io::stderr,
        provider.as_ref(),
    )
    .try_init()
    .map_err(|_| ObservabilityError::LoggingAlreadyInitialised)?;
    if let Some(provider) = &provider {
        // Code that asks the global API for a tracer gets the same exporter.
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    Ok(TracingGuard { provider })
}

/// The OpenTelemetry SDK reports its own life cycle at info level; under the default filter only
/// its warnings and errors (such as failed exports) are worth a log line.
const QUIET_OPENTELEMETRY: &str =
    "opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn";

/// The filter from `RUST_LOG` when it is set and not blank, else `default_filter` with the
/// OpenTelemetry SDK's chatter kept to warnings.
fn log_filter(
    rust_log: Option<&str>,
    default_filter: &str,
) -> Result<EnvFilter, ObservabilityError> {
    let (origin, value, directives) =
        match rust_log.map(str::trim).filter(|value| !value.is_empty()) {
            Some(value) => ("RUST_LOG", value, value.to_owned()),
            None => (
                "the default log filter",
                default_filter,
                format!("{default_filter},{QUIET_OPENTELEMETRY}"),
            ),
        };
    EnvFilter::try_new(directives).map_err(|error| ObservabilityError::InvalidLogFilter {
        origin,
        value: value.to_owned(),
        reason: error.to_string(),
    })
}

/// The layered subscriber, with the writer as a parameter so tests can read what it writes.
fn subscriber<W>(
    filter: EnvFilter,
    json: bool,
    ansi: bool,
    writer: W,
    provider: Option<&SdkTracerProvider>,
) -> impl Subscriber + for<'span> LookupSpan<'span> + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    let json_lines = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            // Event fields at the top level, where log collectors index them.
            .flatten_event(true)
            .with_writer(writer.clone())
    });
    let text_lines = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
    });
    let spans = provider.map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(otlp::DEFAULT_SERVICE_NAME))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(json_lines)
        .with(text_lines)
        .with(spans)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn log_formats_parse_from_their_names_and_display_back() {
        for (text, format) in [
            ("auto", LogFormat::Auto),
            ("json", LogFormat::Json),
            ("text", LogFormat::Text),
            (" JSON ", LogFormat::Json),
        ] {
            let parsed: LogFormat = text.parse().expect("a known format");
            assert_eq!(parsed, format);
            assert_eq!(
                parsed.to_string().parse::<LogFormat>().expect("round trip"),
                format
            );
        }
    }

    #[test]
    fn an_unknown_log_format_lists_the_known_ones() {
        let error = "xml".parse::<LogFormat>().expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "unknown log format `xml`: expected one of auto, json, text"
        );
    }

    #[test]
    fn auto_writes_json_only_when_stderr_is_not_a_terminal() {
        assert!(LogFormat::Auto.writes_json(false));
        assert!(!LogFormat::Auto.writes_json(true));
        assert!(LogFormat::Json.writes_json(true));
        assert!(!LogFormat::Text.writes_json(false));
    }

    #[test]
    fn rust_log_wins_over_the_default_and_bad_filters_name_their_origin() {
        assert_eq!(
            log_filter(Some("debug"), "info")
                .expect("valid")
                .to_string(),
            "debug"
        );
        let default = log_filter(Some("  "), "warn").expect("valid").to_string();
        assert!(
            default.split(',').any(|directive| directive == "warn"),
            "blank counts as unset: {default}"
        );
        assert!(default.contains("opentelemetry_sdk=warn"), "{default}");
        let error = log_filter(None, "wharf=loud").expect_err("the default is checked too");
        assert!(
            error
                .to_string()
                .starts_with("the default log filter `wharf=loud`"),
            "{error}"
        );

        let error = log_filter(Some("wharf=loud"), "info").expect_err("not a level");
        assert!(
            error.to_string().starts_with("RUST_LOG `wharf=loud`"),
            "{error}"
        );
    }

    /// A writer that keeps everything in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
        }
    }

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn log_with(json: bool, filter: &str) -> String {
        let out = Captured::default();
        let filter = log_filter(None, filter).expect("valid filter");
        let subscriber = subscriber(filter, json, false, out.clone(), None);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("pipeline", pipeline = "ingest");
            span.in_scope(|| {
                tracing::info!(message_id = "m-1", "delivered");
                tracing::debug!("hidden below info");
            });
        });
        out.text()
    }

    #[test]
    fn json_lines_carry_level_fields_and_the_span() {
        let text = log_with(true, "info");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "the debug event is filtered out: {text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "delivered");
        assert_eq!(line["message_id"], "m-1");
        assert_eq!(line["span"]["pipeline"], "ingest");
        assert!(line["timestamp"].is_string());
    }

    #[test]
    fn text_lines_are_plain_without_a_terminal() {
        let text = log_with(false, "debug");
        assert!(text.contains("INFO"), "{text}");
        assert!(text.contains("pipeline{pipeline=\"ingest\"}"), "{text}");
        assert!(text.contains("delivered message_id=\"m-1\""), "{text}");
        assert!(
            text.contains("hidden below info"),
            "the filter lets debug through: {text}"
        );
        assert!(!text.contains('\u{1b}'), "no colour codes: {text:?}");
    }
}
