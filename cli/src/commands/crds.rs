//! `wharf crds`: print (or write) the CustomResourceDefinitions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wharf_crds::crdgen::{self, CelRules};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  wharf crds | kubectl apply --server-side -f -
  wharf crds --no-cel | kubectl apply -f -     # Kubernetes before 1.25
  wharf crds --write crds/                     # refresh the committed manifests")]
pub struct Args {
    /// Leave out the CEL validation rules, for clusters before Kubernetes 1.25. The operator
    /// still enforces the same rules and reports violations in the resource's status.
    #[arg(long)]
    no_cel: bool,
    /// Write pipeline.yaml and slacheck.yaml into this directory instead of printing.
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let cel = if args.no_cel {
        CelRules::Omit
    } else {
        CelRules::Include
    };
    match &args.write {
        None => {
            std::io::Write::write_all(
                &mut std::io::stdout().lock(),
                crdgen::to_yaml(&crdgen::all_crds(cel))?.as_bytes(),
            )?;
        }
        Some(dir) => {
            for (file, crd) in [
                ("pipeline.yaml", crdgen::pipeline_crd(cel)),
                ("slacheck.yaml", crdgen::slacheck_crd(cel)),
            ] {
                let path = dir.join(file);
                std::fs::write(&path, crdgen::to_yaml(&[crd])?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
