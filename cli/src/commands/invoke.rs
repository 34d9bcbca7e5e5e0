//! `wharf invoke`: run one message through a processor and print the outcome as JSON, the way
//! `sls invoke local` runs a function — no queue, no sinks.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use wharf_crds::pipeline::Envelope;
use wharf_crds::{PipelineSpec, ProcessorKind};
use wharf_workers::io::Backend;
use wharf_workers::io::aws::{AwsBackend, AwsOverrides, sdk_config};
use wharf_workers::processing::process_body;
use wharf_workers::processors::{self, MessageContext, Outcome, Output};

use crate::pipeline_file::{load_pipeline, read_body};
use crate::verbatim::Verbatim;

/// Exit status when the processor ran and the message failed (permanently or transiently).
const EXIT_MESSAGE_FAILED: u8 = 3;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessorName {
    Telemetry,
    InfraEvents,
    SnapshotStatus,
    Transcode,
}

impl From<ProcessorName> for ProcessorKind {
    fn from(name: ProcessorName) -> Self {
        match name {
            ProcessorName::Telemetry => ProcessorKind::Telemetry,
            ProcessorName::InfraEvents => ProcessorKind::InfraEvents,
            ProcessorName::SnapshotStatus => ProcessorKind::SnapshotStatus,
            ProcessorName::Transcode => ProcessorKind::Transcode,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeName {
    Auto,
    Raw,
    Sns,
    S3,
    Lambda,
}

impl From<EnvelopeName> for Envelope {
    fn from(name: EnvelopeName) -> Self {
        match name {
            EnvelopeName::Auto => Envelope::Auto,
            EnvelopeName::Raw => Envelope::Raw,
            EnvelopeName::Sns => Envelope::Sns,
            EnvelopeName::S3 => Envelope::S3,
            EnvelopeName::Lambda => Envelope::Lambda,
        }
    }
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Prints {\"outcome\": \"ok\"|\"permanent\"|\"transient\", \"reason\": ..., \"outputs\": [{\"sink\": NAME,
\"record\": ...}]}; a record's body is shown as JSON when it is JSON.

Exit status: 0 when the outcome is ok, 3 when the message failed, 1 when the invocation itself
is wrong (unreadable files, bad configuration), 2 when the processor is not in this build.

--config takes either a Pipeline manifest (its processor settings are used) or just the
processor's settings, e.g. `{sink: events, partitionKey: device}` for telemetry. Without it
the sinks are called events (telemetry), participant-events (infra-events), and export-state
and monitoring (snapshot-status).

Examples:
  wharf invoke --processor telemetry --event examples/events/telemetry/submission.json
  wharf invoke --config examples/telemetry.yaml --event message.json
  wharf invoke --processor snapshot-status --event file.json --endpoint-url http://localhost:5000")]
pub struct Args {
    /// The processor to run (optional when --config is a Pipeline).
    #[arg(long, value_enum)]
    processor: Option<ProcessorName>,
    /// The message body to process ('-' reads standard input).
    #[arg(long, value_name = "FILE")]
    event: PathBuf,
    /// Processor settings, or a Pipeline manifest to take them from.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How the body is wrapped.
    #[arg(long, value_enum, default_value = "auto")]
    envelope: EnvelopeName,
    /// AWS-compatible endpoint for processors that keep state in tables (snapshot-status).
    #[arg(long, value_name = "URL", env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let spec = spec_for(args)?;
    let body = read_body(&args.event)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(invoke(args, &spec, &body))
}

async fn invoke(args: &Args, spec: &PipelineSpec, body: &str) -> anyhow::Result<ExitCode> {
    let backend: Option<Arc<dyn Backend>> = match &args.endpoint_url {
        Some(url) => {
            let overrides = AwsOverrides {
                endpoint_url: Some(url.clone()),
                ..AwsOverrides::default()
            };
            let config = sdk_config(spec.aws.as_ref(), &overrides).await;
            Some(Arc::new(AwsBackend::new(&config)))
        }
        None => None,
    };
    let processor = match processors::build(spec, backend.as_ref()) {
        Ok(processor) => processor,
        Err(processors::BuildError::Unavailable(kind)) => {
            eprintln!("wharf invoke: the {kind} processor is not available in this build");
            return Ok(ExitCode::from(2));
        }
        Err(error) => bail!("{error}"),
    };
    let context = MessageContext {
        message_id: "wharf-invoke".to_owned(),
        receive_count: 1,
        attributes: Default::default(),
    };
    let result = process_body(processor.as_ref(), body, args.envelope.into(), &context).await;
    let (outcome, reason, outputs) = match result.outcome {
        Outcome::Ok(outputs) => ("ok", None, outputs),
        Outcome::Permanent(reason) => ("permanent", Some(reason), Vec::new()),
        Outcome::Transient(reason) => ("transient", Some(reason), Vec::new()),
    };
    let printed = Printed {
        outcome,
        reason,
        outputs: outputs.iter().map(PrintedOutput::new).collect(),
    };
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&printed)?
    )?;
    Ok(if outcome == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MESSAGE_FAILED)
    })
}

/// What `wharf invoke` prints, in this field order.
#[derive(Serialize)]
struct Printed<'a> {
    outcome: &'static str,
    reason: Option<String>,
    outputs: Vec<PrintedOutput<'a>>,
}

#[derive(Serialize)]
struct PrintedOutput<'a> {
    sink: &'a str,
    record: PrintedRecord,
}

/// A record with its body shown as produced (JSON embedded verbatim) and its other fields.
#[derive(Serialize)]
struct PrintedRecord {
    body: Verbatim,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl<'a> PrintedOutput<'a> {
    fn new(output: &'a Output) -> Self {
        let mut rest = match serde_json::to_value(&output.record) {
            Ok(Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        };
        rest.remove("body");
        Self {
            sink: &output.sink,
            record: PrintedRecord {
                body: Verbatim::from_text(&output.record.body),
                rest,
            },
        }
    }
}

/// The spec the processor is built from: a Pipeline's, or one made around the settings given.
fn spec_for(args: &Args) -> anyhow::Result<PipelineSpec> {
    if let Some(config) = &args.config {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("reading {}", config.display()))?;
        let value: Value = serde_saphyr::from_str(&text)
            .with_context(|| format!("{} is not valid YAML", config.display()))?;
        if value.get("kind").and_then(Value::as_str) == Some("Pipeline") {
            let pipeline = load_pipeline(config, None)?;
            if let Some(wanted) = args.processor {
                let kind = ProcessorKind::from(wanted);
                if pipeline.spec.processor.kind() != Some(kind) {
                    bail!(
                        "--processor {kind} does not match the Pipeline in {}, which runs {}",
                        config.display(),
                        pipeline
                            .spec
                            .processor
                            .kind()
                            .map_or("nothing".to_owned(), |k| k.to_string())
                    );
                }
            }
            return Ok(pipeline.spec);
        }
        let kind = args
            .processor
            .context("--processor is required when --config holds processor settings")?;
        return synthetic_spec(kind.into(), value)
            .with_context(|| format!("{}: invalid settings for the processor", config.display()));
    }
    let kind = args
        .processor
        .context("give --processor (or --config with a Pipeline)")?;
    synthetic_spec(kind.into(), default_settings(kind.into()))
}

fn default_settings(kind: ProcessorKind) -> Value {
    match kind {
        ProcessorKind::Telemetry => json!({"sink": "events"}),
        ProcessorKind::InfraEvents => json!({"sink": "participant-events"}),
        ProcessorKind::SnapshotStatus => {
            json!({"exportStateSink": "export-state", "monitoringSink": "monitoring"})
        }
        ProcessorKind::Transcode => json!({"outputBucket": "wharf-invoke"}),
    }
}

/// A spec with just the processor settings; the source is never read by `invoke`.
fn synthetic_spec(kind: ProcessorKind, settings: Value) -> anyhow::Result<PipelineSpec> {
    let spec = json!({
        "source": {"sqs": {"queueUrl": "https://sqs.invoke.invalid/000000000000/invoke"}},
        "processor": {kind.field_name(): settings},
    });
    serde_path_to_error::deserialize(spec)
        .map_err(|e| anyhow::anyhow!("spec.{}: {}", e.path(), e.inner()))
}
