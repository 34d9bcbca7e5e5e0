//! `wharf worker --pipeline FILE`: the in-cluster entry point. Runs one Pipeline against AWS
//! (or the endpoint in its `aws` block) until SIGTERM, then drains and exits 0. Serves
//! `/metrics` and `/healthz`, and keeps the pod's deletion cost at the number of messages held.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use wharf_workers::io::Backend;
use wharf_workers::io::aws::{AwsBackend, AwsOverrides, check_ready, sdk_config};
use wharf_workers::observability::{HealthState, LogFormat, MetricsServer, init_logging};
use wharf_workers::pod_deletion_cost::PodDeletionCost;
use wharf_workers::processors;
use wharf_workers::runtime::{DrainReport, RunningPipeline, RuntimeSettings, RuntimeStats};

use crate::pipeline_file::load_pipeline;
use crate::shutdown::shutdown_requested;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
The Pipeline file is the resolved resource the operator mounts from its ConfigMap (any file
`wharf validate` accepts works). AWS region, endpoint and credentials come from the Pipeline's
aws block and the standard AWS environment, profile and web-identity chain — never from the
file itself.

On SIGTERM the worker stops polling, lets in-flight messages finish within
worker.maxProcessingSeconds, makes the rest visible again at once and exits 0.

Examples:
  wharf worker --pipeline /etc/wharf/pipeline.yaml
  RUST_LOG=wharf_workers=debug wharf worker --pipeline pipeline.yaml --metrics-port 9100")]
pub struct Args {
    /// The Pipeline manifest to run.
    #[arg(long, short = 'f', value_name = "FILE", env = "WHARF_PIPELINE_FILE")]
    pipeline: PathBuf,
    /// Which Pipeline, when the file holds several.
    #[arg(long)]
    name: Option<String>,
    /// Port for /metrics and /healthz (0 picks a free one).
    #[arg(long, default_value_t = 9090, env = "WHARF_METRICS_PORT")]
    metrics_port: u16,
    /// Address /metrics and /healthz listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED), env = "WHARF_METRICS_ADDRESS")]
    metrics_address: IpAddr,
    /// Log format: json, text, or auto (json when standard error is not a terminal).
    #[arg(long, default_value = "auto", env = "WHARF_LOG_FORMAT")]
    log_format: LogFormat,
    /// Overrides the Pipeline's aws.endpointUrl (an AWS-compatible server).
    #[arg(long, value_name = "URL", env = "WHARF_ENDPOINT_URL")]
    endpoint_url: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let _logging = init_logging(args.log_format, "info")?;
    let pipeline = load_pipeline(&args.pipeline, args.name.as_deref())?;
    let system = actix::System::new();
    let result = system.block_on(run_worker(args, pipeline));
    if let Err(error) = &result {
        error!("{error:#}");
    }
    result.map(|()| ExitCode::SUCCESS)
}

async fn run_worker(args: &Args, pipeline: wharf_crds::Pipeline) -> anyhow::Result<()> {
    let name = pipeline.metadata.name.clone().unwrap_or_default();
    let spec = &pipeline.spec;
    let overrides = AwsOverrides {
        endpoint_url: args.endpoint_url.clone(),
        ..AwsOverrides::default()
    };
    let config = sdk_config(spec.aws.as_ref(), &overrides).await;
    check_ready(&config).await?;
    let backend: Arc<dyn Backend> = Arc::new(AwsBackend::new(&config));
    let processor = processors::build(spec, Some(&backend))
        .with_context(|| format!("Pipeline {name}: cannot build its processor"))?;
    let settings = RuntimeSettings::from_spec(&name, spec)?;
    let grace = settings.drain_timeout;

    let stats = RuntimeStats::default();
    let mut registry = Registry::with_prefix("wharf");
    stats.register(&mut registry);
    processor.register_metrics(&mut registry);
    let health = HealthState::default();
    let metrics_address = SocketAddr::new(args.metrics_address, args.metrics_port);
    let server = MetricsServer::bind(metrics_address, Arc::new(registry), health.clone()).await?;
    info!(address = %server.local_addr(), "serving /metrics and /healthz");
    let stop = CancellationToken::new();
    let server_task = tokio::spawn(server.run(stop.clone()));

    let running = RunningPipeline::start(spec, settings, processor, backend, stats)?;
    health.set_healthy();
    if let Some(cost) = PodDeletionCost::from_environment().await {
        tokio::spawn(cost.keep_updated(running.held_counter(), stop.clone()));
    }

    shutdown_requested().await;
    health.set_unhealthy("draining");
    stop.cancel();
    let report = running.drain(grace).await;
    let _ = server_task.await;
    match report {
        DrainReport::Finished => info!("drained; exiting"),
        DrainReport::Abandoned(n) => info!(released = n, "grace period over; exiting"),
    }
    Ok(())
}
