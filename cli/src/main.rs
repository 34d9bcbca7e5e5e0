//! `wharf`: one binary for the operator, the worker, local runs and the tools around them.

mod commands;
mod pipeline_file;
mod shutdown;
mod verbatim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Queue-driven workers on Kubernetes.
///
/// A Pipeline reads a queue, runs a processor on each message and delivers the results to
/// sinks; the operator turns Pipelines into worker Deployments scaled on queue depth. A SlaCheck
/// runs a test command on a schedule and measures it against an objective.
#[derive(Parser, Debug)]
#[command(name = "wharf", version, propagate_version = true)]
#[command(after_help = "\
Examples:
  wharf validate -f examples/               check every resource in a directory
  wharf run -f examples/telemetry.yaml      run a Pipeline locally on the embedded backend
  wharf crds | kubectl apply -f -           install the CRDs (Kubernetes 1.25+)
  wharf crds --no-cel | kubectl apply -f -  install the CRDs on older clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: reconcile Pipelines and scale their workers on queue depth.
    Operator(commands::operator::Args),
    /// Run a worker for one Pipeline (the operator starts these in pods).
    Worker(commands::worker::Args),
    /// Run a Pipeline in this process, on the embedded backend or an AWS-compatible endpoint.
    Run(commands::run::Args),
    /// Run one message through a processor, with no I/O, and print the outcome as JSON.
    Invoke(commands::invoke::Args),
    /// Run an SLA check loop (the command a SlaCheck's pod runs).
    Sla(commands::unavailable::Args),
    /// Print the CustomResourceDefinitions of Pipeline and SlaCheck.
    Crds(commands::crds::Args),
    /// Check Pipeline and SlaCheck files and print every problem found.
    Validate(commands::validate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Operator(args) => commands::operator::run(&args),
        Command::Worker(args) => commands::worker::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Invoke(args) => commands::invoke::run(&args),
        Command::Sla(_) => commands::unavailable::run("sla", "the SLA runner"),
        Command::Crds(args) => commands::crds::run(&args),
        Command::Validate(args) => commands::validate::run(&args),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`wharf crds | head`) is the reader's choice, not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
