//! `wharf run -f FILE`: run a Pipeline in this process — on the embedded backend by default,
//! or against an AWS-compatible endpoint — with progress while it works and a summary at the
//! end.

mod outputs;
mod seed;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::time::Instant;
use wharf_crds::Pipeline;
use wharf_workers::io::aws::{AwsBackend, AwsOverrides, sdk_config};
use wharf_workers::io::memory::MemoryBackend;
use wharf_workers::io::{Backend, Queue};
use wharf_workers::processors;
use wharf_workers::runtime::{
    DrainReport, RunningPipeline, RuntimeSettings, RuntimeStats, StatsSnapshot,
};

use crate::pipeline_file::load_pipeline;
use crate::shutdown::shutdown_requested;

/// Annotation naming the sample events `wharf run` seeds the queue with (relative to the file).
pub const SAMPLE_EVENTS_ANNOTATION: &str = "wharf.dev/sample-events";
/// Annotation naming the items `wharf run` puts in the embedded tables (relative to the file).
pub const SAMPLE_TABLES_ANNOTATION: &str = "wharf.dev/sample-tables";
/// Default `--until-idle` on the embedded backend, in seconds.
const EMBEDDED_IDLE_SECONDS: f64 = 2.0;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendName {
    /// In-process queues, streams, topics, buckets and tables.
    Embedded,
    /// The AWS SDK: AWS itself or an AWS-compatible endpoint.
    Aws,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
The backend is embedded unless --endpoint-url, the Pipeline's spec.aws.endpointUrl or
--backend aws says otherwise. The source queue is seeded with the sample events named by the
Pipeline's wharf.dev/sample-events annotation, or with --events (a file is one message; a
.jsonl file holds one message per line; a directory holds such files). On the embedded
backend the outputs are written to --output-dir when the run ends.

The run stops on Ctrl-C or SIGTERM (finishing what is in flight, like a worker), or once the
source has been empty with nothing in flight for --until-idle seconds (default 2 on the
embedded backend; against AWS it runs until interrupted unless --until-idle is given).

Examples:
  wharf run -f examples/telemetry.yaml
  wharf run -f examples/telemetry.yaml --output json
  wharf run -f examples/telemetry.yaml --endpoint-url http://127.0.0.1:5000 --until-idle 5")]
pub struct Args {
    /// The Pipeline manifest.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// Which Pipeline, when the file holds several.
    #[arg(long)]
    name: Option<String>,
    /// Messages to put on the source queue first (a file, a .jsonl file or a directory).
    #[arg(long, value_name = "DIR|FILE")]
    events: Option<PathBuf>,
    /// Items to put in the embedded backend's tables first: a JSON object of table name to a
    /// list of items (default: the Pipeline's wharf.dev/sample-tables annotation).
    #[arg(long, value_name = "FILE")]
    tables: Option<PathBuf>,
    /// Do not seed the source queue or the tables.
    #[arg(long, conflicts_with_all = ["events", "tables"])]
    no_seed: bool,
    /// Run against this AWS-compatible endpoint (e.g. http://127.0.0.1:5000 for moto).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Force a backend.
    #[arg(long, value_enum)]
    backend: Option<BackendName>,
    /// Stop once the source has been empty and nothing in flight for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    until_idle: Option<f64>,
    /// Summary format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Where the embedded backend's outputs are written (default wharf-output/<pipeline>).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

/// What `--output json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    pipeline: String,
    processor: String,
    backend: &'static str,
    seeded: usize,
    #[serde(flatten)]
    stats: StatsSnapshot,
    /// Where each sink's outputs are (files on the embedded backend, resources otherwise).
    written_to: Vec<outputs::Destination>,
    drain: &'static str,
    /// From the start of polling until the source went idle (or the run was stopped).
    elapsed_seconds: f64,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let pipeline = load_pipeline(&args.file, args.name.as_deref())?;
    let system = actix::System::new();
    let summary = system.block_on(run_pipeline(args, pipeline))?;
    print_summary(args.output, &summary)?;
    Ok(ExitCode::SUCCESS)
}

enum ChosenBackend {
    Embedded(MemoryBackend),
    Aws(AwsBackend),
}

impl ChosenBackend {
    fn shared(&self) -> Arc<dyn Backend> {
        match self {
            Self::Embedded(b) => Arc::new(b.clone()),
            Self::Aws(b) => Arc::new(b.clone()),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Aws(_) => "aws",
        }
    }
}

async fn choose_backend(args: &Args, pipeline: &Pipeline) -> ChosenBackend {
    let endpoint = args.endpoint_url.clone().or_else(|| {
        pipeline
            .spec
            .aws
            .as_ref()
            .and_then(|a| a.endpoint_url.clone())
    });
    let wants_aws = match args.backend {
        Some(BackendName::Aws) => true,
        Some(BackendName::Embedded) => false,
        None => endpoint.is_some(),
    };
    if !wants_aws {
        return ChosenBackend::Embedded(MemoryBackend::new());
    }
    let overrides = AwsOverrides {
        endpoint_url: endpoint,
        ..AwsOverrides::default()
    };
    let config = sdk_config(pipeline.spec.aws.as_ref(), &overrides).await;
    ChosenBackend::Aws(AwsBackend::new(&config))
}

async fn run_pipeline(args: &Args, pipeline: Pipeline) -> anyhow::Result<Summary> {
    let name = pipeline.metadata.name.clone().unwrap_or_default();
    let spec = &pipeline.spec;
    let backend = choose_backend(args, &pipeline).await;
    let shared = backend.shared();
    let processor = processors::build(spec, Some(&shared))
        .with_context(|| format!("Pipeline {name}: cannot build its processor"))?;
    let settings = RuntimeSettings::from_spec(&name, spec)?;
    let source_url = spec
        .sqs()
        .map(|s| s.queue_url.clone())
        .context("the Pipeline has no SQS source")?;
    let source = shared.queue(&source_url);
    if let ChosenBackend::Embedded(memory) = &backend {
        outputs::prepare_embedded(memory, &pipeline)?;
        if !args.no_seed
            && let Some(path) = sample_path(
                args.tables.as_ref(),
                args,
                &pipeline,
                SAMPLE_TABLES_ANNOTATION,
            )
        {
            seed::seed_tables(memory, &path).await?;
        }
    }

    let seeded = if args.no_seed {
        0
    } else {
        match sample_path(
            args.events.as_ref(),
            args,
            &pipeline,
            SAMPLE_EVENTS_ANNOTATION,
        ) {
            Some(path) => seed::seed_queue(source.as_ref(), &path).await?,
            None => 0,
        }
    };

    let stats = RuntimeStats::default();
    let grace = settings.drain_timeout;
    let running = RunningPipeline::start(
        spec,
        settings,
        processor.clone(),
        shared.clone(),
        stats.clone(),
    )?;
    let until_idle = args.until_idle.or(match backend {
        ChosenBackend::Embedded(_) => Some(EMBEDDED_IDLE_SECONDS),
        ChosenBackend::Aws(_) => None,
    });
    let sink_names: Vec<String> = spec.sinks.iter().map(|s| s.name.clone()).collect();
    let progress = Progress::new(args.output == OutputFormat::Text);
    let idle_for = until_idle.map(Duration::from_secs_f64);
    let mut idle_since: Option<Instant> = None;
    let started = Instant::now();
    let interrupted = shutdown_requested();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        progress.show(
            &stats.snapshot(sink_names.iter().map(String::as_str)),
            running.held(),
        );
        let Some(idle_for) = idle_for else { continue };
        if is_idle(source.as_ref(), &running).await {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= idle_for {
                break;
            }
        } else {
            idle_since = None;
        }
    }
    progress.finish();
    let elapsed_seconds = idle_since
        .unwrap_or_else(Instant::now)
        .duration_since(started)
        .as_secs_f64();
    let drain = match running.drain(grace).await {
        DrainReport::Finished => "finished",
        DrainReport::Abandoned(_) => "grace period exceeded; unfinished messages released",
    };
    let written_to = match &backend {
        ChosenBackend::Embedded(memory) => {
            let dir = args
                .output_dir
                .clone()
                .unwrap_or_else(|| Path::new("wharf-output").join(&name));
            outputs::write_embedded(memory, &pipeline, &dir)?
        }
        ChosenBackend::Aws(_) => outputs::aws_destinations(spec),
    };
    Ok(Summary {
        pipeline: name,
        processor: processor.kind().to_string(),
        backend: backend.label(),
        seeded,
        stats: stats.snapshot(sink_names.iter().map(String::as_str)),
        written_to,
        drain,
        elapsed_seconds,
    })
}

/// A sample file given on the command line, or named by the Pipeline's `annotation` (relative to
/// the Pipeline file).
fn sample_path(
    given: Option<&PathBuf>,
    args: &Args,
    pipeline: &Pipeline,
    annotation: &str,
) -> Option<PathBuf> {
    if let Some(given) = given {
        return Some(given.clone());
    }
    let relative = pipeline.metadata.annotations.as_ref()?.get(annotation)?;
    let base = args.file.parent().unwrap_or(Path::new("."));
    Some(base.join(relative))
}

/// Nothing visible, in flight or delayed at the source, and nothing held here.
async fn is_idle(source: &dyn Queue, running: &RunningPipeline) -> bool {
    if running.held() > 0 {
        return false;
    }
    match source.depth().await {
        Ok(depth) => depth.visible == 0 && depth.in_flight == 0 && depth.delayed == 0,
        Err(_) => false,
    }
}

/// A one-line progress display on a terminal; silent otherwise (the summary says it all).
struct Progress {
    enabled: bool,
}

impl Progress {
    fn new(wanted: bool) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, stats: &StatsSnapshot, held: usize) {
        if self.enabled {
            eprint!(
                "\rreceived {}  processed {}  dead-lettered {}  failed {}  in flight {}   ",
                stats.received, stats.processed, stats.dead_lettered, stats.failed, held
            );
        }
    }

    fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

fn print_summary(format: OutputFormat, summary: &Summary) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Json {
        writeln!(out, "{}", serde_json::to_string(summary)?)?;
        return Ok(());
    }
    let s = &summary.stats;
    writeln!(
        out,
        "Pipeline {} ({}) on the {} backend: {}",
        summary.pipeline, summary.processor, summary.backend, summary.drain
    )?;
    writeln!(out, "  seeded         {}", summary.seeded)?;
    writeln!(out, "  elapsed        {:.2} s", summary.elapsed_seconds)?;
    writeln!(out, "  received       {}", s.received)?;
    writeln!(out, "  processed      {}", s.processed)?;
    writeln!(out, "  dead-lettered  {}", s.dead_lettered)?;
    writeln!(out, "  dropped        {}", s.dropped)?;
    writeln!(out, "  failed         {} (retried later)", s.failed)?;
    if s.left_for_redrive > 0 {
        writeln!(out, "  left to redrive {}", s.left_for_redrive)?;
    }
    for (sink, n) in &s.outputs {
        writeln!(out, "  outputs        {sink}: {n}")?;
    }
    for destination in &summary.written_to {
        writeln!(
            out,
            "  written to     {}: {}",
            destination.name, destination.location
        )?;
    }
    Ok(())
}
