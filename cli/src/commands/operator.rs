//! `wharf operator`: runs the Pipeline controller and the queue-depth autoscaler in a cluster,
//! behind a leader Lease so that only one replica acts. Serves `/metrics` and `/healthz`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use wharf_operator::leader::LeaseSettings;
use wharf_operator::metrics::Metrics;
use wharf_operator::{Election, OperatorConfig};
use wharf_workers::io::aws::AwsOverrides;
use wharf_workers::observability::{HealthState, LogFormat, MetricsServer, init_logging};

use crate::shutdown::shutdown_requested;

/// The worker image when neither the Pipeline nor `--worker-image` names one.
const DEFAULT_WORKER_IMAGE: &str = concat!("ghcr.io/wharf-dev/wharf:", env!("CARGO_PKG_VERSION"));

#[derive(clap::Args, Debug)]
#[command(after_help = "\
The operator turns each Pipeline into a ConfigMap (the resolved spec) and a Deployment of
`wharf worker` pods, scales that Deployment on the source queue's depth when spec.scaling is
set, and reports READY, REPLICAS, BACKLOG and conditions in the Pipeline's status. An invalid
Pipeline is reported as Ready=False (reason InvalidSpec) and its workers are left alone.

Several replicas may run: they elect a leader with a coordination.k8s.io Lease and only the
leader acts. Queue depth is read with the operator's own AWS identity (IRSA, environment or
profile); a Pipeline's credentialsSecretRef is only given to its workers.

Examples:
  wharf operator                                    all namespaces, leader election on
  wharf operator --namespace data --no-leader-election --log-format text
  WHARF_WORKER_IMAGE=registry.local/wharf:dev wharf operator")]
pub struct Args {
    /// Worker image for Pipelines without spec.worker.image.
    #[arg(long, value_name = "IMAGE", env = "WHARF_WORKER_IMAGE", default_value = DEFAULT_WORKER_IMAGE)]
    worker_image: String,
    /// Watch Pipelines in this namespace only (default: every namespace).
    #[arg(
        long,
        short = 'n',
        value_name = "NAMESPACE",
        env = "WHARF_WATCH_NAMESPACE"
    )]
    namespace: Option<String>,
    /// Port for /metrics and /healthz (0 picks a free one).
    #[arg(long, default_value_t = 9090, env = "WHARF_METRICS_PORT")]
    metrics_port: u16,
    /// Address /metrics and /healthz listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED), env = "WHARF_METRICS_ADDRESS")]
    metrics_address: IpAddr,
    /// Log format: json, text, or auto (json when standard error is not a terminal).
    #[arg(long, default_value = "auto", env = "WHARF_LOG_FORMAT")]
    log_format: LogFormat,
    /// Act at once instead of electing a leader (only for a single replica).
    #[arg(long, env = "WHARF_NO_LEADER_ELECTION")]
    no_leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "wharf-operator", env = "WHARF_LEASE_NAME")]
    lease_name: String,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, default_value = "wharf-system", env = "POD_NAMESPACE")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a Lease stays with a leader that stopped renewing it.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=600))]
    lease_duration_seconds: u64,
    /// Do not run the queue-depth autoscaler (spec.scaling is then ignored and replicas stay
    /// as the status last recorded, or minReplicas).
    #[arg(long, env = "WHARF_NO_AUTOSCALER")]
    no_autoscaler: bool,
    /// Reads queue depth from this AWS-compatible endpoint instead of each Pipeline's
    /// aws.endpointUrl.
    #[arg(long, value_name = "URL", env = "WHARF_ENDPOINT_URL")]
    endpoint_url: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let _logging = init_logging(args.log_format, "info")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run_operator(args));
    if let Err(error) = &result {
        error!("{error:#}");
    }
    result.map(|()| ExitCode::SUCCESS)
}

async fn run_operator(args: &Args) -> anyhow::Result<()> {
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("wharf-operator-{}", std::process::id()));
    let lease_duration = Duration::from_secs(args.lease_duration_seconds);
    let election = (!args.no_leader_election).then(|| Election {
        namespace: args.lease_namespace.clone(),
        lease: LeaseSettings {
            lease_duration,
            // client-go's proportions: renew within 2/3 of the lease, retry every 2/15.
            renew_deadline: lease_duration * 2 / 3,
            retry_period: (lease_duration * 2 / 15).max(Duration::from_secs(1)),
            ..LeaseSettings::new(args.lease_name.clone(), identity.clone())
        },
    });
    let config = OperatorConfig {
        worker_image: args.worker_image.clone(),
        namespace: args.namespace.clone(),
        election,
        instance: Some(identity),
        autoscaling: !args.no_autoscaler,
    };

    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let health = HealthState::default();
    let address = SocketAddr::new(args.metrics_address, args.metrics_port);
    let server = MetricsServer::bind(address, Arc::new(registry), health.clone()).await?;
    info!(address = %server.local_addr(), "serving /metrics and /healthz");

    let shutdown = CancellationToken::new();
    let server_task = tokio::spawn(server.run(shutdown.clone()));
    let signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_requested().await;
        signal.cancel();
    });

    let client = wharf_operator::connect().await?;
    let backends = wharf_operator::backends::aws(AwsOverrides {
        endpoint_url: args.endpoint_url.clone(),
        ..AwsOverrides::default()
    });
    // Healthy once connected: a standby that is not leading is healthy too.
    health.set_healthy();
    let result = wharf_operator::run(client, config, backends, metrics, shutdown.clone()).await;
    health.set_unhealthy("stopping");
    shutdown.cancel();
    if let Err(error) = server_task.await {
        tracing::warn!(%error, "metrics server ended abnormally");
    }
    result?;
    info!("operator stopped");
    Ok(())
}
