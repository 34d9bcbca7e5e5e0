//! The `SlaCheck` resource: a test command run over and over against a service, each result
//! published and counted towards a success-rate objective.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::AwsSettings;
use crate::{defaults, rules};

/// A test command run on a schedule against a service; each run's result is published to SNS
/// (and its log to S3) and counted towards a success-rate objective.
// Several `printcolumn(...)` entries repeat keys such as `type_` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "wharf.dev",
    version = "v1alpha1",
    kind = "SlaCheck",
    namespaced,
    status = "SlaCheckStatus",
    derive = "PartialEq",
    shortname = "sla",
    category = "wharf",
    doc = "A test command run on a schedule, with its results measured against an objective.",
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".spec.service",
        description = "The service under test"
    ),
    printcolumn(
        name = "Last",
        type_ = "string",
        json_path = ".status.lastRun.result",
        description = "Result of the last run"
    ),
    printcolumn(
        name = "Success-Rate",
        type_ = "number",
        json_path = ".status.successRate",
        description = "Percent of runs in the objective window that succeeded"
    ),
    printcolumn(
        name = "Objective",
        type_ = "number",
        json_path = ".spec.objective.percent",
        description = "Target success rate, percent"
    ),
    printcolumn(
        name = "Runs",
        type_ = "integer",
        json_path = ".status.runs",
        description = "Runs so far"
    ),
    printcolumn(
        name = "Last-Run",
        type_ = "date",
        json_path = ".status.lastRun.time",
        description = "When the last run finished"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = rules::SHELL_TAKES_ONE_SCRIPT)]
#[serde(rename_all = "camelCase")]
pub struct SlaCheckSpec {
    /// Name of the service under test; it names the SNS `service` field and the S3 log prefix.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
        length(min = 1, max = 128)
    )]
    pub service: String,
    /// Groups the result is reported under (e.g. owning team, criticality).
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub groups: Vec<String>,
    /// Image that contains the test command; `wharf` is injected into it by an init container.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,
    /// The test command as an argument vector, run without a shell unless `shell` is true.
    #[schemars(length(min = 1, max = 256))]
    pub command: Vec<String>,
    /// Run `command[0]` as a script with `/bin/sh -c`.
    #[serde(default)]
    pub shell: bool,
    /// Seconds to wait after one run before starting the next.
    #[serde(default = "defaults::sla_interval_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub interval_seconds: i32,
    /// Seconds a run may take before it is killed and counted as a failure.
    #[serde(default = "defaults::sla_timeout_seconds")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: i32,
    /// Stop scheduling runs (the resource and its history stay).
    #[serde(default)]
    pub suspend: bool,
    /// Run once, print what would be published, publish nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Where each result goes.
    #[serde(default)]
    pub publish: Publish,
    /// The success rate the service is held to.
    #[serde(default)]
    pub objective: Objective,
    /// Service account of the runner pod (for IRSA / workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// AWS region, endpoint and credentials source for publishing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
}

/// Where each run's result is published.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = rules::ONE_TOPIC_REFERENCE)]
#[serde(rename_all = "camelCase")]
pub struct Publish {
    /// ARN of the SNS topic that receives each result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^arn:[^:\s]+:sns:[^:\s]*:[^:\s]*:[^:\s]+$"),
        length(max = 1024)
    )]
    pub sns_topic_arn: Option<String>,
    /// Name of the SNS topic; its ARN is resolved from the region and the caller's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub sns_topic_name: Option<String>,
    /// Bucket that receives each run's log as `<service>/<timestamp>_<SUCCESS|FAILURE>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 63))]
    pub s3_bucket: Option<String>,
}

/// A success-rate objective over a rolling window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = rules::OBJECTIVE_PERCENT_POSITIVE)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// Percent of runs that must succeed, e.g. 99.9.
    #[serde(default = "defaults::objective_percent")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: f64,
    /// Rolling window the rate is measured over: a number and a unit (s, m, h, d), e.g. `24h`.
    #[serde(default = "defaults::objective_window")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,5}[smhd]$"))]
    pub window: String,
}

impl Default for Objective {
    fn default() -> Self {
        Self {
            percent: defaults::OBJECTIVE_PERCENT,
            window: defaults::OBJECTIVE_WINDOW.to_owned(),
        }
    }
}

/// What the runner has observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlaCheckStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and `ObjectiveMet`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The most recent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<SlaRun>,
    /// Runs so far.
    #[serde(default)]
    pub runs: i64,
    /// Runs that succeeded.
    #[serde(default)]
    pub successes: i64,
    /// Runs that failed.
    #[serde(default)]
    pub failures: i64,
    /// Percent of runs inside the objective window that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    /// Failures in a row since the last success.
    #[serde(default)]
    pub consecutive_failures: i64,
}

/// One run of the test command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlaRun {
    /// When the run finished.
    pub time: Time,
    /// Wall-clock seconds the run took.
    pub duration_seconds: f64,
    /// Exit code; unset when the command could not start or was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Whether the run succeeded (exit code 0).
    pub succeeded: bool,
    /// `SUCCESS` or `FAILURE`.
    pub result: String,
    /// S3 key of the run's log, when logs are uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<String>,
}
