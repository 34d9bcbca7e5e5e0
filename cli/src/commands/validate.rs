//! `wharf validate -f FILE...`: check Pipeline and SlaCheck documents offline and print every
//! problem with its file, resource and field path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wharf_crds::manifest::{self, Outcome};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Exit status: 0 when every Wharf resource is valid, 1 when any has a problem or a file cannot be
read. Documents of other kinds (Secrets, ConfigMaps, ...) are listed as skipped.

Examples:
  wharf validate -f examples/telemetry.yaml
  wharf validate -f examples/                 every *.yaml / *.yml file in the directory
  wharf validate -R -f deploy/                and in its subdirectories")]
pub struct Args {
    /// File or directory to check; repeat for more.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Descend into subdirectories of directories given with -f.
    #[arg(short = 'R', long)]
    recursive: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.files {
        collect_yaml_files(path, args.recursive, &mut files)?;
    }
    if files.is_empty() {
        anyhow::bail!("no .yaml or .yml files found in the paths given with -f");
    }
    let mut out = std::io::stdout().lock();
    let mut all_valid = true;
    let mut resources = 0usize;
    for file in &files {
        let documents = match manifest::load_file(file) {
            Ok(documents) => documents,
            Err(e) => {
                writeln!(out, "{e}")?;
                all_valid = false;
                continue;
            }
        };
        for document in documents {
            let label = resource_label(&document);
            match document.outcome {
                Outcome::Valid(_) => {
                    resources += 1;
                    writeln!(out, "{}: {label}: OK", file.display())?;
                }
                Outcome::Invalid(problems) => {
                    resources += 1;
                    all_valid = false;
                    let count = problems.len();
                    let noun = if count == 1 { "problem" } else { "problems" };
                    writeln!(out, "{}: {label}: {count} {noun}", file.display())?;
                    for problem in problems {
                        writeln!(out, "  {problem}")?;
                    }
                }
                Outcome::NotWharf { api_version } => {
                    writeln!(
                        out,
                        "{}: {label}: skipped ({api_version} is not a Wharf resource)",
                        file.display()
                    )?;
                }
            }
        }
    }
    if resources == 0 {
        writeln!(out, "no Pipeline or SlaCheck documents found")?;
        return Ok(ExitCode::from(1));
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn resource_label(document: &manifest::Document) -> String {
    let kind = if document.kind.is_empty() {
        "<no kind>"
    } else {
        &document.kind
    };
    let name = if document.name.is_empty() {
        "<no name>"
    } else {
        &document.name
    };
    format!("{kind}/{name} (document {})", document.position)
}

/// Expands directories into their YAML files, sorted, like `kubectl apply -f DIR`.
fn collect_yaml_files(path: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if metadata.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                collect_yaml_files(&entry, recursive, out)?;
            }
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(entry);
        }
    }
    Ok(())
}
