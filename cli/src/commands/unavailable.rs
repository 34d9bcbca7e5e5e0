//! Subcommands that this build does not provide yet say so and exit 2; they never pretend.

use std::process::ExitCode;

/// Arguments are accepted and ignored so that the message, not a parse error, is what the
/// user sees.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(name: &str, part: &str) -> anyhow::Result<ExitCode> {
    eprintln!(
        "wharf {name}: not available in this build of wharf {}: {part} has not been built yet.",
        env!("CARGO_PKG_VERSION")
    );
    Ok(ExitCode::from(2))
}
