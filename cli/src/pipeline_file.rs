//! Reading the one Pipeline a command works on from a YAML file, validated, with every problem
//! reported the way `wharf validate` reports them.

use std::path::Path;

use anyhow::{Context, bail};
use wharf_crds::Pipeline;
use wharf_crds::manifest::{self, Outcome, WharfResource};

/// Loads the Pipeline in `path`. With several Pipelines in the file, `name` picks one.
pub fn load_pipeline(path: &Path, name: Option<&str>) -> anyhow::Result<Pipeline> {
    let documents = manifest::load_file(path)?;
    let mut pipelines = Vec::new();
    let mut problems = Vec::new();
    for document in documents {
        if document.kind != "Pipeline" {
            continue;
        }
        if name.is_some_and(|wanted| wanted != document.name) {
            continue;
        }
        match document.outcome {
            Outcome::Valid(WharfResource::Pipeline(pipeline)) => pipelines.push(*pipeline),
            Outcome::Invalid(found) => {
                problems.push(format!("Pipeline/{}:", document.name));
                problems.extend(found.iter().map(|p| format!("  {p}")));
            }
            Outcome::Valid(_) | Outcome::NotWharf { .. } => {}
        }
    }
    if !problems.is_empty() {
        bail!("{} has problems:\n{}", path.display(), problems.join("\n"));
    }
    match pipelines.len() {
        1 => Ok(pipelines.remove(0)),
        0 => match name {
            Some(name) => bail!("{} holds no Pipeline named {name:?}", path.display()),
            None => bail!("{} holds no Pipeline", path.display()),
        },
        n => {
            let names: Vec<&str> = pipelines
                .iter()
                .filter_map(|p| p.metadata.name.as_deref())
                .collect();
            bail!(
                "{} holds {n} Pipelines ({}); choose one with --name",
                path.display(),
                names.join(", ")
            )
        }
    }
}

/// Reads a message body from a file, or from standard input for `-`.
pub fn read_body(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut body = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut body)
            .context("reading the event from standard input")?;
        return Ok(body);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
