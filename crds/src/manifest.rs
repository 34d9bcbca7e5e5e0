//! Reading Wharf resources from YAML files, as `wharf validate` and `wharf run` do: every
//! document is checked against its CRD schema (unknown fields included) and its rules, and
//! every problem is reported with the document and field it belongs to.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::pipeline::Pipeline;
use crate::problem::Problem;
use crate::slacheck::SlaCheck;
use crate::validation::{self, Validate};

pub const API_VERSION: &str = "wharf.dev/v1alpha1";

/// A Wharf resource read from a file.
#[derive(Clone, Debug, PartialEq)]
pub enum WharfResource {
    Pipeline(Box<Pipeline>),
    SlaCheck(Box<SlaCheck>),
}

/// One YAML document of a file, and what was found in it.
#[derive(Clone, Debug)]
pub struct Document {
    /// 1-based position of the document in its file.
    pub position: usize,
    /// `kind` as written (empty when missing).
    pub kind: String,
    /// `metadata.name` as written (empty when missing).
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug)]
pub enum Outcome {
    /// A valid Wharf resource, with defaults applied.
    Valid(WharfResource),
    /// A Wharf resource with problems.
    Invalid(Vec<Problem>),
    /// Some other kind of object (a Secret, a ConfigMap, ...), left alone.
    NotWharf { api_version: String },
}

/// A file that could not be read as YAML at all.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {message}")]
    Yaml { path: String, message: String },
}

/// Reads every document of a YAML file.
pub fn load_file(path: &Path) -> Result<Vec<Document>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text).map_err(|message| ManifestError::Yaml {
        path: path.display().to_string(),
        message,
    })
}

/// Reads every document of a YAML stream; `Err` carries the YAML syntax error.
pub fn load_str(text: &str) -> Result<Vec<Document>, String> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(values
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_null())
        .map(|(i, value)| check_document(i + 1, value))
        .collect())
}

fn text_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Checks one parsed document.
pub fn check_document(position: usize, value: Value) -> Document {
    let kind = text_at(&value, "/kind").to_owned();
    let name = text_at(&value, "/metadata/name").to_owned();
    let api_version = text_at(&value, "/apiVersion").to_owned();
    let document = |outcome| Document {
        position,
        kind: kind.clone(),
        name: name.clone(),
        outcome,
    };

    if !value.is_object() {
        return document(Outcome::Invalid(vec![Problem::new(
            "<root>",
            "a document must be a map with apiVersion, kind, metadata and spec",
            "write the resource as a YAML map",
        )]));
    }
    let is_wharf_group = api_version.starts_with("wharf.dev/");
    let is_wharf_kind = matches!(kind.as_str(), "Pipeline" | "SlaCheck");
    // A Wharf kind without apiVersion is still ours (and gets told its apiVersion is missing).
    let ours = is_wharf_group || (api_version.is_empty() && is_wharf_kind);
    if !ours {
        return document(Outcome::NotWharf { api_version });
    }
    let mut problems = Vec::new();
    if api_version != API_VERSION {
        problems.push(Problem::new(
            "apiVersion",
            format!("{api_version:?} is not a version Wharf serves"),
            format!("use apiVersion: {API_VERSION}"),
        ));
    }
    let outcome = match kind.as_str() {
        "Pipeline" => typed::<Pipeline>(&value, validation::pipeline_schema(), problems)
            .map(|p| WharfResource::Pipeline(Box::new(p))),
        "SlaCheck" => typed::<SlaCheck>(&value, validation::slacheck_schema(), problems)
            .map(|s| WharfResource::SlaCheck(Box::new(s))),
        other => {
            problems.push(Problem::new(
                "kind",
                format!("{other:?} is not a Wharf kind"),
                "use kind: Pipeline or kind: SlaCheck",
            ));
            Err(problems)
        }
    };
    document(match outcome {
        Ok(resource) => Outcome::Valid(resource),
        Err(problems) => Outcome::Invalid(problems),
    })
}

fn typed<T>(value: &Value, schema: &Value, mut problems: Vec<Problem>) -> Result<T, Vec<Problem>>
where
    T: DeserializeOwned + Validate,
{
    let schema_problems = validation::raw_schema_problems(schema, value);
    let schema_clean = schema_problems.is_empty();
    problems.extend(schema_problems);
    match serde_path_to_error::deserialize::<_, T>(value.clone()) {
        Ok(resource) => {
            // One problem per field: the schema's wording wins over a rule saying the same.
            for problem in resource.validate() {
                if !problems.iter().any(|p| p.path == problem.path) {
                    problems.push(problem);
                }
            }
            if problems.is_empty() {
                Ok(resource)
            } else {
                Err(problems)
            }
        }
        Err(e) => {
            // The schema check already explains type errors in our own words; the decoder's
            // message is only needed when it found something the schema did not.
            if schema_clean {
                problems.push(Problem::new(
                    e.path().to_string(),
                    e.inner().to_string(),
                    "compare with `wharf crds` or the examples/ directory",
                ));
            }
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
apiVersion: wharf.dev/v1alpha1
kind: Pipeline
metadata: {name: telemetry}
spec:
  source: {sqs: {queueUrl: "https://sqs.eu-west-2.amazonaws.com/123456789012/submissions"}}
  processor: {telemetry: {sink: events}}
  sinks: [{name: events, kinesis: {streamName: events}}]
"#;

    #[test]
    fn valid_pipeline_gets_defaults() {
        let docs = load_str(VALID).unwrap();
        assert_eq!(docs.len(), 1);
        let Outcome::Valid(WharfResource::Pipeline(p)) = &docs[0].outcome else {
            panic!("{:?}", docs[0].outcome)
        };
        let sqs = p.spec.source.sqs.as_ref().unwrap();
        assert_eq!(sqs.batch_size, 10);
        assert_eq!(sqs.visibility_timeout_seconds, 30);
        assert_eq!(p.spec.worker.concurrency, 8);
        assert_eq!(p.spec.retry.max_attempts, 5);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = VALID
            .replace("sink: events}", "sink: missing}")
            .replace("queueUrl:", "batchSize: 50, colour: blue, queueUrl:");
        let docs = load_str(&text).unwrap();
        let Outcome::Invalid(problems) = &docs[0].outcome else {
            panic!("expected problems")
        };
        let mut paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "spec.processor.telemetry.sink",
                "spec.source.sqs.batchSize",
                "spec.source.sqs.colour"
            ]
        );
    }

    #[test]
    fn other_kinds_are_left_alone_and_bad_versions_are_named() {
        let text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n---\n{}",
            VALID.replace("v1alpha1", "v1")
        );
        let docs = load_str(&text).unwrap();
        assert!(matches!(docs[0].outcome, Outcome::NotWharf { .. }));
        let Outcome::Invalid(problems) = &docs[1].outcome else {
            panic!("expected problems")
        };
        assert_eq!(problems[0].path, "apiVersion");
    }

    #[test]
    fn yaml_syntax_errors_are_reported() {
        assert!(load_str("spec: [unclosed").is_err());
    }
}
