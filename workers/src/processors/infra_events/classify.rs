//! Which kind of infrastructure event a text is, decided exactly as the original service did:
//! substring tests on the raw JSON text (the markers sit inside the escaped `eventJson`), in a
//! fixed order, so an S3 marker wins over ECS markers and a task with image-pull times is a
//! video failure even when it also has attachments.

/// The sentence the original service raised for an event it could not classify. Kept verbatim:
/// people search logs and dead-letter reasons for it.
pub const UNIDENTIFIED_EVENT: &str = "An unidentified flying event has been detected, not letting it pass through the portal. Alerting the mother-ship by raising this exception.";

/// Marker of an S3 notification (`"eventSource":"aws:s3"`).
const S3_MARKER: &str = "aws:s3";
/// Marker of an EventBridge ECS event (`"source":"aws.ecs"`).
const ECS_MARKER: &str = "aws.ecs";
/// Fields only a task that got as far as pulling its image on a container instance has: the
/// video-processing tasks.
const VIDEO_MARKERS: [&str; 3] = ["pullStartedAt", "pullStoppedAt", "containerInstanceArn"];
/// Field of the Fargate ENI attachment the coverage-processing tasks report.
const COVERAGE_MARKER: &str = "attachments";

/// The three kinds of event the original service turned into participant events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A recording upload started (S3 `ObjectCreated` on the recorder's sync marker).
    RecorderStarted,
    /// A video-processing ECS task stopped in error.
    VideoProcessingFailed,
    /// A coverage-processing ECS task failed.
    CoverageProcessingFailed,
}

impl EventKind {
    /// The `name` message attribute of the participant event, as the consumers dispatch on it.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::RecorderStarted => "recorderStarted",
            Self::VideoProcessingFailed => "videoProcessingFailed",
            Self::CoverageProcessingFailed => "coverageProcessingFailed",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.event_name())
    }
}

/// Classifies `text`; `None` is the original's "unidentified flying event".
pub fn classify(text: &str) -> Option<EventKind> {
    let has_video_markers = VIDEO_MARKERS.iter().all(|marker| text.contains(marker));
    if text.contains(S3_MARKER) {
        Some(EventKind::RecorderStarted)
    } else if text.contains(ECS_MARKER) && has_video_markers {
        Some(EventKind::VideoProcessingFailed)
    } else if text.contains(ECS_MARKER) && text.contains(COVERAGE_MARKER) {
        // Not all video markers, or the branch above would have taken it.
        Some(EventKind::CoverageProcessingFailed)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO_TASK: &str = r#"{"source":"aws.ecs","pullStartedAt":"a","pullStoppedAt":"b","containerInstanceArn":"c"}"#;

    #[test]
    fn s3_marker_means_recorder_started() {
        assert_eq!(
            classify(r#"{"eventSource":"aws:s3"}"#),
            Some(EventKind::RecorderStarted)
        );
    }

    #[test]
    fn s3_marker_wins_over_ecs_markers() {
        let both = format!("{VIDEO_TASK} aws:s3 attachments");
        assert_eq!(classify(&both), Some(EventKind::RecorderStarted));
    }

    #[test]
    fn ecs_task_with_all_pull_markers_is_a_video_failure() {
        assert_eq!(classify(VIDEO_TASK), Some(EventKind::VideoProcessingFailed));
    }

    #[test]
    fn video_markers_win_over_attachments() {
        let with_attachments = format!("{VIDEO_TASK} attachments");
        assert_eq!(
            classify(&with_attachments),
            Some(EventKind::VideoProcessingFailed)
        );
    }

    #[test]
    fn ecs_task_with_attachments_and_some_pull_markers_is_a_coverage_failure() {
        let text =
            r#"{"source":"aws.ecs","pullStartedAt":"a","pullStoppedAt":"b","attachments":[]}"#;
        assert_eq!(classify(text), Some(EventKind::CoverageProcessingFailed));
    }

    #[test]
    fn ecs_task_missing_a_pull_marker_and_attachments_is_unidentified() {
        let text = r#"{"source":"aws.ecs","pullStartedAt":"a","pullStoppedAt":"b"}"#;
        assert_eq!(classify(text), None);
    }

    #[test]
    fn markers_without_the_ecs_source_are_unidentified() {
        let text = r#"{"pullStartedAt":"a","pullStoppedAt":"b","containerInstanceArn":"c","attachments":[]}"#;
        assert_eq!(classify(text), None);
    }

    #[test]
    fn empty_text_is_unidentified() {
        assert_eq!(classify(""), None);
    }

    #[test]
    fn markers_are_case_sensitive() {
        assert_eq!(classify("AWS:S3 AWS.ECS ATTACHMENTS"), None);
    }

    #[test]
    fn event_names_are_the_consumer_contract() {
        assert_eq!(EventKind::RecorderStarted.event_name(), "recorderStarted");
        assert_eq!(
            EventKind::VideoProcessingFailed.event_name(),
            "videoProcessingFailed"
        );
        assert_eq!(
            EventKind::CoverageProcessingFailed.event_name(),
            "coverageProcessingFailed"
        );
    }
}
