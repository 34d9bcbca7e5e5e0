//! Cross-field rules, each written once as a CEL expression (embedded in the CRD as
//! `x-kubernetes-validations`) and a message. `validate()` checks the same rules in Rust, with
//! the same messages, because API servers older than 1.25 ignore CEL.
//!
//! Every rule is a `(expression, message)` pair so it can be handed straight to kube's
//! `#[x_kube(validation = ...)]`. Rules avoid `fieldPath`/`reason` so the CRD stays valid on
//! every API server that understands CEL at all (1.25+).

/// A CEL rule and the message an API server shows when it fails.
pub type CelRule = (&'static str, &'static str);

pub const EXACTLY_ONE_SOURCE: CelRule = (
    "(has(self.sqs) ? 1 : 0) == 1",
    "exactly one source must be set (sqs)",
);

pub const EXACTLY_ONE_PROCESSOR: CelRule = (
    "(has(self.telemetry) ? 1 : 0) + (has(self.infraEvents) ? 1 : 0) + (has(self.transcode) ? 1 : 0) + (has(self.snapshotStatus) ? 1 : 0) == 1",
    "exactly one processor must be set (telemetry, infraEvents, transcode or snapshotStatus)",
);

pub const EXACTLY_ONE_SINK_KIND: CelRule = (
    "(has(self.kinesis) ? 1 : 0) + (has(self.sqs) ? 1 : 0) + (has(self.sns) ? 1 : 0) + (has(self.s3) ? 1 : 0) == 1",
    "each sink must set exactly one of kinesis, sqs, sns or s3",
);

pub const UNIQUE_SINK_NAMES: CelRule = (
    "self.all(s, self.filter(t, t.name == s.name).size() == 1)",
    "sink names must be unique",
);

pub const TELEMETRY_SINK_DECLARED: CelRule = (
    "!has(self.processor.telemetry) || (has(self.sinks) && self.sinks.exists(s, s.name == self.processor.telemetry.sink))",
    "processor.telemetry.sink must name a sink declared in spec.sinks",
);

pub const INFRA_EVENTS_SINK_DECLARED: CelRule = (
    "!has(self.processor.infraEvents) || (has(self.sinks) && self.sinks.exists(s, s.name == self.processor.infraEvents.sink))",
    "processor.infraEvents.sink must name a sink declared in spec.sinks",
);

pub const TRANSCODE_SINK_DECLARED: CelRule = (
    "!has(self.processor.transcode) || !has(self.processor.transcode.statusSink) || (has(self.sinks) && self.sinks.exists(s, s.name == self.processor.transcode.statusSink))",
    "processor.transcode.statusSink must name a sink declared in spec.sinks",
);

pub const SNAPSHOT_STATUS_SINKS_DECLARED: CelRule = (
    "!has(self.processor.snapshotStatus) || (has(self.sinks) && self.sinks.exists(s, s.name == self.processor.snapshotStatus.exportStateSink) && self.sinks.exists(s, s.name == self.processor.snapshotStatus.monitoringSink))",
    "processor.snapshotStatus.exportStateSink and monitoringSink must name sinks declared in spec.sinks",
);

/// The heartbeat renews visibility at half the timeout and each renewal call may take up to
/// [`crate::defaults::HEARTBEAT_CALL_TIMEOUT_SECONDS`]; below twice that, a lease could lapse
/// while its renewal is still in flight. Only matters when processing may outlast the timeout.
pub const VISIBILITY_ALLOWS_HEARTBEAT: CelRule = (
    "!has(self.source.sqs) || self.source.sqs.visibilityTimeoutSeconds >= 10 || self.worker.maxProcessingSeconds <= self.source.sqs.visibilityTimeoutSeconds",
    "source.sqs.visibilityTimeoutSeconds must be at least 10 when worker.maxProcessingSeconds exceeds it, so the visibility heartbeat (every timeout/2) can renew in time",
);

pub const IN_FLIGHT_COVERS_CONCURRENCY: CelRule = (
    "!has(self.source.sqs) || self.source.sqs.maxInFlight >= self.worker.concurrency",
    "source.sqs.maxInFlight must be at least worker.concurrency, or processing slots can never fill",
);

pub const MAX_REPLICAS_AT_LEAST_MIN: CelRule = (
    "self.maxReplicas >= self.minReplicas",
    "maxReplicas must be greater than or equal to minReplicas",
);

pub const MAX_BACKOFF_AT_LEAST_INITIAL: CelRule = (
    "self.maxBackoffSeconds >= self.initialBackoffSeconds",
    "maxBackoffSeconds must be greater than or equal to initialBackoffSeconds",
);

pub const SHELL_TAKES_ONE_SCRIPT: CelRule = (
    "!self.shell || size(self.command) == 1",
    "with shell: true, command must hold exactly one string (the script passed to /bin/sh -c)",
);

pub const ONE_TOPIC_REFERENCE: CelRule = (
    "!(has(self.snsTopicArn) && has(self.snsTopicName))",
    "set publish.snsTopicArn or publish.snsTopicName, not both",
);

pub const OBJECTIVE_PERCENT_POSITIVE: CelRule = (
    "self.percent > 0.0",
    "objective.percent must be greater than 0",
);
