//! Every default of the resources, in one place. The functions feed `#[serde(default = ...)]`,
//! which schemars turns into `default:` in the CRD, so the API server, `wharf run` and the
//! operator all see the same values.

pub const BATCH_SIZE: i32 = 10;
pub const WAIT_TIME_SECONDS: i32 = 20;
pub const VISIBILITY_TIMEOUT_SECONDS: i32 = 30;
pub const MAX_IN_FLIGHT: i32 = 100;
pub const MAX_ATTEMPTS: i32 = 5;
pub const INITIAL_BACKOFF_SECONDS: i32 = 1;
pub const MAX_BACKOFF_SECONDS: i32 = 300;
pub const MIN_REPLICAS: i32 = 0;
pub const MAX_REPLICAS: i32 = 10;
pub const TARGET_BACKLOG_PER_REPLICA: i32 = 50;
pub const ACTIVATION_BACKLOG: i32 = 0;
pub const POLL_INTERVAL_SECONDS: i32 = 5;
pub const SCALE_DOWN_STABILIZATION_SECONDS: i32 = 60;
pub const REPLICAS: i32 = 1;
pub const CONCURRENCY: i32 = 8;
pub const MAX_PROCESSING_SECONDS: i32 = 900;
pub const METRICS_PORT: i32 = 9090;
/// Deadline of one visibility-renewal call; the heartbeat rule depends on it.
pub const HEARTBEAT_CALL_TIMEOUT_SECONDS: i32 = 5;
/// SQS never lets a message stay invisible for more than 12 hours after it was received.
pub const SQS_MAX_VISIBILITY_SECONDS: i32 = 43_200;

pub const EXPORT_STATUS_TABLE: &str = "UCExportToCrownStatus";
pub const PRODUCT_STATUS_TABLE: &str = "data_pipeline_metadata";
pub const TRANSCODE_OUTPUT_PREFIX: &str = "videos/";

pub const SLA_INTERVAL_SECONDS: i32 = 300;
pub const SLA_TIMEOUT_SECONDS: i32 = 600;
pub const OBJECTIVE_PERCENT: f64 = 99.9;
pub const OBJECTIVE_WINDOW: &str = "24h";

pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";

pub(crate) fn batch_size() -> i32 {
    BATCH_SIZE
}
pub(crate) fn wait_time_seconds() -> i32 {
    WAIT_TIME_SECONDS
}
pub(crate) fn visibility_timeout_seconds() -> i32 {
    VISIBILITY_TIMEOUT_SECONDS
}
pub(crate) fn max_in_flight() -> i32 {
    MAX_IN_FLIGHT
}
pub(crate) fn max_attempts() -> i32 {
    MAX_ATTEMPTS
}
pub(crate) fn initial_backoff_seconds() -> i32 {
    INITIAL_BACKOFF_SECONDS
}
pub(crate) fn max_backoff_seconds() -> i32 {
    MAX_BACKOFF_SECONDS
}
pub(crate) fn min_replicas() -> i32 {
    MIN_REPLICAS
}
pub(crate) fn max_replicas() -> i32 {
    MAX_REPLICAS
}
pub(crate) fn target_backlog_per_replica() -> i32 {
    TARGET_BACKLOG_PER_REPLICA
}
pub(crate) fn activation_backlog() -> i32 {
    ACTIVATION_BACKLOG
}
pub(crate) fn poll_interval_seconds() -> i32 {
    POLL_INTERVAL_SECONDS
}
pub(crate) fn scale_down_stabilization_seconds() -> i32 {
    SCALE_DOWN_STABILIZATION_SECONDS
}
pub(crate) fn replicas() -> i32 {
    REPLICAS
}
pub(crate) fn concurrency() -> i32 {
    CONCURRENCY
}
pub(crate) fn max_processing_seconds() -> i32 {
    MAX_PROCESSING_SECONDS
}
pub(crate) fn metrics_port() -> i32 {
    METRICS_PORT
}
pub(crate) fn export_status_table() -> String {
    EXPORT_STATUS_TABLE.to_owned()
}
pub(crate) fn product_status_table() -> String {
    PRODUCT_STATUS_TABLE.to_owned()
}
pub(crate) fn transcode_output_prefix() -> String {
    TRANSCODE_OUTPUT_PREFIX.to_owned()
}
pub(crate) fn sla_interval_seconds() -> i32 {
    SLA_INTERVAL_SECONDS
}
pub(crate) fn sla_timeout_seconds() -> i32 {
    SLA_TIMEOUT_SECONDS
}
pub(crate) fn objective_percent() -> f64 {
    OBJECTIVE_PERCENT
}
pub(crate) fn objective_window() -> String {
    OBJECTIVE_WINDOW.to_owned()
}
pub(crate) fn access_key_id_key() -> String {
    ACCESS_KEY_ID_KEY.to_owned()
}
pub(crate) fn secret_access_key_key() -> String {
    SECRET_ACCESS_KEY_KEY.to_owned()
}
pub(crate) fn yes() -> bool {
    true
}
