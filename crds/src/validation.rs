//! `validate()`: every problem of a resource, with its field path and a fix hint.
//!
//! It runs the CRD's structural schema (types, ranges, patterns, enums) and the cross-field
//! rules of [`crate::rules`] — the same rules the CRD carries as CEL, because API servers older
//! than 1.25 ignore CEL. The operator and `wharf run` both call it before acting on a resource.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use kube::CustomResourceExt;
use serde::Serialize;
use serde_json::Value;

use crate::pipeline::{Pipeline, PipelineSpec};
use crate::problem::{FieldPath, Problem};
use crate::rules::{self, CelRule};
use crate::schema_check;
use crate::slacheck::{SlaCheck, SlaCheckSpec};

/// A resource that can list everything wrong with it.
pub trait Validate {
    /// Every problem found; empty when the resource is valid.
    fn validate(&self) -> Vec<Problem>;
}

impl Validate for Pipeline {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = schema_problems(self, pipeline_schema());
        problems.extend(name_problems(self.metadata.name.as_deref(), "Pipeline"));
        problems.extend(pipeline_rule_problems(&self.spec));
        dedup(problems)
    }
}

impl Validate for SlaCheck {
    fn validate(&self) -> Vec<Problem> {
        let mut problems = schema_problems(self, slacheck_schema());
        problems.extend(name_problems(self.metadata.name.as_deref(), "SlaCheck"));
        problems.extend(slacheck_rule_problems(&self.spec));
        dedup(problems)
    }
}

/// The openAPIV3Schema of the Pipeline CRD.
pub(crate) fn pipeline_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| crd_schema(Pipeline::crd()))
}

/// The openAPIV3Schema of the SlaCheck CRD.
pub(crate) fn slacheck_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| crd_schema(SlaCheck::crd()))
}

fn crd_schema(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// Schema problems of a typed resource (after defaults, so no unknown fields can appear).
fn schema_problems<T: Serialize>(resource: &T, schema: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    match serde_json::to_value(resource) {
        Ok(mut value) => {
            strip_envelope_fields(&mut value);
            schema_check::check(schema, &value, &FieldPath::default(), &mut problems);
        }
        Err(e) => problems.push(Problem::new(
            "<root>",
            format!("cannot be serialised: {e}"),
            "",
        )),
    }
    problems
}

/// Checks a raw document (as written in a file) against a schema, including unknown fields.
pub(crate) fn raw_schema_problems(schema: &Value, value: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut value = value.clone();
    strip_envelope_fields(&mut value);
    schema_check::check(schema, &value, &FieldPath::default(), &mut problems);
    problems
}

/// apiVersion and kind are checked by whoever dispatched on them, metadata is the API
/// server's business, and status is written by Wharf itself.
fn strip_envelope_fields(value: &mut Value) {
    if let Some(object) = value.as_object_mut() {
        for field in ["apiVersion", "kind", "metadata", "status"] {
            object.remove(field);
        }
    }
}

/// Worker Deployments, ConfigMaps and pod labels are named after the resource, and a label
/// value holds at most 63 characters of a DNS label.
fn name_problems(name: Option<&str>, kind: &str) -> Vec<Problem> {
    let hint = "use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit";
    match name {
        None | Some("") => vec![Problem::new(
            "metadata.name",
            format!("every {kind} needs a name"),
            "add metadata.name",
        )],
        Some(name) if !is_dns_label(name) => vec![Problem::new(
            "metadata.name",
            format!("{name:?} is not a valid DNS label"),
            hint,
        )],
        Some(_) => Vec::new(),
    }
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn dedup(mut problems: Vec<Problem>) -> Vec<Problem> {
    let mut seen = BTreeSet::new();
    problems.retain(|p| seen.insert((p.path.clone(), p.message.clone())));
    problems
}

fn broken(path: &str, rule: CelRule, hint: impl Into<String>) -> Problem {
    Problem::new(path, rule.1, hint)
}

/// The cross-field rules of a Pipeline spec, mirroring the CEL rules in the CRD.
pub fn pipeline_rule_problems(spec: &PipelineSpec) -> Vec<Problem> {
    let mut problems = Vec::new();

    if spec.source.sqs.is_none() {
        problems.push(broken(
            "spec.source",
            rules::EXACTLY_ONE_SOURCE,
            "add source.sqs with the queueUrl to read from",
        ));
    }

    let kinds = spec.processor.kinds();
    if kinds.len() != 1 {
        let found = if kinds.is_empty() {
            "add one of telemetry, infraEvents, transcode or snapshotStatus".to_owned()
        } else {
            let names: Vec<&str> = kinds.iter().map(|k| k.field_name()).collect();
            format!("keep one of {}", names.join(", "))
        };
        problems.push(broken(
            "spec.processor",
            rules::EXACTLY_ONE_PROCESSOR,
            found,
        ));
    }

    let mut seen_names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, sink) in spec.sinks.iter().enumerate() {
        let path = format!("spec.sinks[{i}]");
        if sink.kinds().len() != 1 {
            problems.push(broken(
                &path,
                rules::EXACTLY_ONE_SINK_KIND,
                format!("give sink {:?} exactly one destination", sink.name),
            ));
        }
        if let Some(first) = seen_names.insert(sink.name.as_str(), i) {
            problems.push(broken(
                &format!("{path}.name"),
                rules::UNIQUE_SINK_NAMES,
                format!(
                    "spec.sinks[{first}] is already called {:?}; rename one",
                    sink.name
                ),
            ));
        }
    }

    for (field, name) in spec.processor.sink_references() {
        if !seen_names.contains_key(name) {
            let declared: Vec<&str> = seen_names.keys().copied().collect();
            let hint = if declared.is_empty() {
                format!("declare a sink named {name:?} in spec.sinks")
            } else {
                format!(
                    "declare a sink named {name:?} in spec.sinks or use one of: {}",
                    declared.join(", ")
                )
            };
            let rule = match field.split('.').next() {
                Some("telemetry") => rules::TELEMETRY_SINK_DECLARED,
                Some("infraEvents") => rules::INFRA_EVENTS_SINK_DECLARED,
                Some("transcode") => rules::TRANSCODE_SINK_DECLARED,
                _ => rules::SNAPSHOT_STATUS_SINKS_DECLARED,
            };
            problems.push(broken(&format!("spec.processor.{field}"), rule, hint));
        }
    }

    if let Some(sqs) = &spec.source.sqs {
        let visibility = sqs.visibility_timeout_seconds;
        let heartbeat_floor = 2 * crate::defaults::HEARTBEAT_CALL_TIMEOUT_SECONDS;
        if visibility < heartbeat_floor && spec.worker.max_processing_seconds > visibility {
            problems.push(broken(
                "spec.source.sqs.visibilityTimeoutSeconds",
                rules::VISIBILITY_ALLOWS_HEARTBEAT,
                format!(
                    "raise it to at least {heartbeat_floor}, or lower worker.maxProcessingSeconds to {visibility}"
                ),
            ));
        }
        if sqs.max_in_flight < spec.worker.concurrency {
            problems.push(broken(
                "spec.source.sqs.maxInFlight",
                rules::IN_FLIGHT_COVERS_CONCURRENCY,
                format!(
                    "raise it to at least {} or lower worker.concurrency",
                    spec.worker.concurrency
                ),
            ));
        }
    }

    if let Some(scaling) = &spec.scaling
        && scaling.max_replicas < scaling.min_replicas
    {
        problems.push(broken(
            "spec.scaling.maxReplicas",
            rules::MAX_REPLICAS_AT_LEAST_MIN,
            format!("raise it to at least {}", scaling.min_replicas),
        ));
    }

    if spec.retry.max_backoff_seconds < spec.retry.initial_backoff_seconds {
        problems.push(broken(
            "spec.retry.maxBackoffSeconds",
            rules::MAX_BACKOFF_AT_LEAST_INITIAL,
            format!(
                "raise it to at least {}",
                spec.retry.initial_backoff_seconds
            ),
        ));
    }

    problems
}

/// The cross-field rules of a SlaCheck spec, mirroring the CEL rules in the CRD.
pub fn slacheck_rule_problems(spec: &SlaCheckSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    if spec.shell && spec.command.len() != 1 {
        problems.push(broken(
            "spec.command",
            rules::SHELL_TAKES_ONE_SCRIPT,
            "join the command into one script string, or set shell: false and list the argv",
        ));
    }
    if spec.publish.sns_topic_arn.is_some() && spec.publish.sns_topic_name.is_some() {
        problems.push(broken(
            "spec.publish",
            rules::ONE_TOPIC_REFERENCE,
            "remove one of snsTopicArn and snsTopicName",
        ));
    }
    if spec.objective.percent <= 0.0 {
        problems.push(broken(
            "spec.objective.percent",
            rules::OBJECTIVE_PERCENT_POSITIVE,
            "use a value above 0 and at most 100, e.g. 99.9",
        ));
    }
    problems
}
