//! Turns AWS SDK errors into [`IoError`]s: the kind of failure (which decides whether the
//! caller retries) and a message a person can act on. Messages are built from the error code,
//! the service's own message and the transport error chain — never from the request — and are
//! scrubbed of anything that looks like a credential before they leave this module.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::io::{EntryFailure, IoError, IoErrorKind};

/// Codes meaning "slow down" or "the service had a bad moment": retrying later may succeed.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "KMSThrottlingException",
    "KmsThrottled",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
];

/// Codes meaning the queue, topic, stream, bucket, table or key does not exist.
const NOT_FOUND_CODES: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "ResourceNotFoundException",
    "NoSuchKey",
    "NoSuchBucket",
    "NotFound",
];

/// Codes meaning the credentials are missing, wrong, expired or lack a permission.
const ACCESS_DENIED_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthorizationError",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
];

/// The [`IoError`] for a failed SDK call of `operation` on `resource`.
pub(crate) fn io_error<E>(
    operation: &'static str,
    resource: &str,
    error: SdkError<E, HttpResponse>,
) -> IoError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (kind, message) = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => (
            IoErrorKind::Transient,
            DisplayErrorContext(&error).to_string(),
        ),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            let kind = kind_for_code(code, Some(status));
            let message = match (code, service.err().message()) {
                (Some(code), Some(text)) => format!("{code}: {text}"),
                (Some(code), None) => format!("{code} (HTTP {status})"),
                (None, Some(text)) => format!("HTTP {status}: {text}"),
                (None, None) => format!("HTTP {status} without an error code"),
            };
            (kind, message)
        }
        // Construction failures (an invalid request built here) and kinds added in later SDK
        // versions: sending the same request again will not help.
        _ => (
            IoErrorKind::Rejected,
            DisplayErrorContext(&error).to_string(),
        ),
    };
    IoError::new(operation, resource, kind, redact_credentials(&message))
}

/// The kind of failure a service error code (and, when known, HTTP status) stands for.
pub(crate) fn kind_for_code(code: Option<&str>, status: Option<u16>) -> IoErrorKind {
    if let Some(code) = code {
        if NOT_FOUND_CODES.contains(&code) {
            return IoErrorKind::NotFound;
        }
        if code.starts_with("AccessDenied") || ACCESS_DENIED_CODES.contains(&code) {
            return IoErrorKind::AccessDenied;
        }
        if TRANSIENT_CODES.contains(&code) {
            return IoErrorKind::Transient;
        }
    }
    match status {
        Some(429 | 500..=599) => IoErrorKind::Transient,
        // Only without a code: a coded 4xx says more than its status.
        Some(404) if code.is_none() => IoErrorKind::NotFound,
        Some(401 | 403) if code.is_none() => IoErrorKind::AccessDenied,
        _ => IoErrorKind::Rejected,
    }
}

/// One failed entry of an SQS or SNS batch call, located by the id the request gave it (its
/// index). An id this adapter did not hand out fails the whole call, so that the caller treats
/// every entry as failed rather than losing track of one.
pub(crate) fn batch_entry_failure(
    operation: &'static str,
    resource: &str,
    entries: usize,
    id: &str,
    code: &str,
    message: Option<&str>,
    sender_fault: bool,
) -> Result<EntryFailure, IoError> {
    let index = id
        .parse::<usize>()
        .ok()
        .filter(|index| *index < entries)
        .ok_or_else(|| {
            IoError::new(
                operation,
                resource,
                IoErrorKind::Transient,
                format!(
                    "the response reports a failed entry with id `{id}`, which is not one of the \
                     {entries} entries sent"
                ),
            )
        })?;
    Ok(EntryFailure {
        index,
        code: code.to_owned(),
        message: redact_credentials(message.unwrap_or(code)),
        retryable: !sender_fault || kind_for_code(Some(code), None) == IoErrorKind::Transient,
    })
}

/// Refuses a batch larger than the service takes: a caller bug the service would reject anyway,
/// reported before anything is sent.
pub(crate) fn check_batch_size(
    operation: &'static str,
    resource: &str,
    entries: usize,
    limit: usize,
) -> Result<(), IoError> {
    if entries > limit {
        return Err(IoError::new(
            operation,
            resource,
            IoErrorKind::Rejected,
            format!("{entries} entries in one batch; {operation} takes at most {limit}"),
        ));
    }
    Ok(())
}

/// An [`IoError`] for a request this adapter could not build (a required field missing).
pub(crate) fn build_error(
    operation: &'static str,
    resource: &str,
    error: impl std::fmt::Display,
) -> IoError {
    IoError::new(
        operation,
        resource,
        IoErrorKind::Rejected,
        format!("invalid request: {error}"),
    )
}

/// Markers after which a value is a secret (signed URLs, signature headers, credential files).
const SECRET_MARKERS: &[&str] = &[
    "x-amz-credential=",
    "x-amz-signature=",
    "x-amz-security-token:",
    "x-amz-security-token=",
    "authorization:",
    "credential=",
    "signature=",
    "awsaccesskeyid=",
    "aws_secret_access_key=",
    "aws_session_token=",
];

const REDACTED: &str = "<redacted>";

/// `text` with secret values after [`SECRET_MARKERS`] and anything shaped like an access key id
/// (`AKIA…`/`ASIA…`) replaced by `<redacted>`.
pub(crate) fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let lower = text.to_ascii_lowercase();
    let mut rest = 0;
    while rest < text.len() {
        let next_marker = SECRET_MARKERS
            .iter()
            .filter_map(|marker| {
                lower[rest..]
                    .find(marker)
                    .map(|at| (rest + at, marker.len()))
            })
            .min_by_key(|(at, _)| *at);
        let Some((at, len)) = next_marker else {
            out.push_str(&text[rest..]);
            break;
        };
        let value_start = at + len;
        // Skip the blanks between `Authorization:` and its value, keep them in the output.
        let value_start = value_start
            + text[value_start..]
                .find(|c: char| c != ' ')
                .unwrap_or(text.len() - value_start);
        let value_end = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ',' | '"' | '\'' | ';'))
            .map_or(text.len(), |end| value_start + end);
        out.push_str(&text[rest..value_start]);
        out.push_str(REDACTED);
        rest = value_end;
    }
    redact_access_key_ids(&out)
}

/// Replaces words shaped like AWS access key ids: `AKIA`/`ASIA` and 16 more upper-case letters
/// or digits.
fn redact_access_key_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let shaped = word.len() == 20
            && (word.starts_with("AKIA") || word.starts_with("ASIA"))
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        out.push_str(if shaped { REDACTED } else { word });
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::primitives::SdkBody;
    use aws_sdk_sqs::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_sqs::operation::receive_message::ReceiveMessageError;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(
            status.try_into().expect("valid status code"),
            SdkBody::empty(),
        )
    }

    fn service_error(
        code: Option<&str>,
        message: Option<&str>,
        status: u16,
    ) -> SdkError<ReceiveMessageError, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        if let Some(message) = message {
            meta = meta.message(message);
        }
        SdkError::service_error(ReceiveMessageError::generic(meta.build()), response(status))
    }

    fn kind(code: &str, status: u16) -> IoErrorKind {
        io_error(
            "ReceiveMessage",
            "q",
            service_error(Some(code), None, status),
        )
        .kind
    }

    #[test]
    fn throttling_and_server_trouble_are_transient() {
        for code in [
            "ThrottlingException",
            "Throttling",
            "RequestThrottled",
            "ProvisionedThroughputExceededException",
            "ServiceUnavailable",
            "InternalError",
            "InternalFailure",
            "RequestLimitExceeded",
            "SlowDown",
        ] {
            assert_eq!(kind(code, 400), IoErrorKind::Transient, "{code}");
        }
        assert_eq!(kind("SomethingNew", 503), IoErrorKind::Transient);
        assert_eq!(kind("SomethingNew", 500), IoErrorKind::Transient);
    }

    #[test]
    fn missing_resources_are_not_found() {
        for code in [
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
            "ResourceNotFoundException",
            "NoSuchKey",
            "NoSuchBucket",
            "NotFound",
        ] {
            assert_eq!(kind(code, 400), IoErrorKind::NotFound, "{code}");
        }
    }

    #[test]
    fn credential_and_permission_errors_are_access_denied() {
        for code in [
            "AccessDenied",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "ExpiredToken",
            "AuthorizationError",
        ] {
            assert_eq!(kind(code, 403), IoErrorKind::AccessDenied, "{code}");
        }
    }

    #[test]
    fn other_client_errors_are_rejected() {
        assert_eq!(kind("ValidationException", 400), IoErrorKind::Rejected);
        assert_eq!(kind("InvalidParameterValue", 400), IoErrorKind::Rejected);
        assert_eq!(kind("BatchEntryIdsNotDistinct", 400), IoErrorKind::Rejected);
    }

    #[test]
    fn a_bare_status_decides_when_there_is_no_code() {
        let error = io_error("GetObject", "b", service_error(None, None, 404));
        assert_eq!(error.kind, IoErrorKind::NotFound);
        assert_eq!(error.message, "HTTP 404 without an error code");
        let error = io_error("GetObject", "b", service_error(None, None, 403));
        assert_eq!(error.kind, IoErrorKind::AccessDenied);
        let error = io_error("GetObject", "b", service_error(None, None, 429));
        assert_eq!(error.kind, IoErrorKind::Transient);
        let error = io_error("GetObject", "b", service_error(None, None, 400));
        assert_eq!(error.kind, IoErrorKind::Rejected);
    }

    #[test]
    fn the_message_names_the_code_and_the_service_text() {
        let error = io_error(
            "ReceiveMessage",
            "http://sqs/q",
            service_error(
                Some("QueueDoesNotExist"),
                Some("The specified queue does not exist."),
                400,
            ),
        );
        assert_eq!(error.operation, "ReceiveMessage");
        assert_eq!(error.resource, "http://sqs/q");
        assert_eq!(
            error.message,
            "QueueDoesNotExist: The specified queue does not exist."
        );
        assert_eq!(
            error.to_string(),
            "ReceiveMessage on http://sqs/q failed: QueueDoesNotExist: The specified queue does \
             not exist."
        );
    }

    #[test]
    fn transport_failures_are_transient() {
        let refused: SdkError<ReceiveMessageError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        let error = io_error("ReceiveMessage", "q", refused);
        assert_eq!(error.kind, IoErrorKind::Transient);
        assert!(
            error.message.contains("connection refused"),
            "{}",
            error.message
        );

        let timeout: SdkError<ReceiveMessageError, HttpResponse> =
            SdkError::timeout_error("read timed out");
        assert_eq!(
            io_error("ReceiveMessage", "q", timeout).kind,
            IoErrorKind::Transient
        );

        let garbled: SdkError<ReceiveMessageError, HttpResponse> =
            SdkError::response_error("unexpected end of body", response(200));
        assert_eq!(
            io_error("ReceiveMessage", "q", garbled).kind,
            IoErrorKind::Transient
        );
    }

    #[test]
    fn requests_that_cannot_be_built_are_rejected() {
        let invalid: SdkError<ReceiveMessageError, HttpResponse> =
            SdkError::construction_failure("queue_url was not specified");
        assert_eq!(
            io_error("ReceiveMessage", "q", invalid).kind,
            IoErrorKind::Rejected
        );
    }

    #[test]
    fn messages_never_carry_credentials() {
        let leaked = "request to https://b.s3/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101\
                      &X-Amz-Signature=abcdef0123 failed; Authorization: AWS4-HMAC-SHA256 \
                      Credential=AKIAIOSFODNN7EXAMPLE/20260101, Signature=deadbeef; key \
                      ASIAZZZZZZZZZZZZZZZZ in use";
        let error = io_error(
            "GetObject",
            "b",
            service_error(Some("InvalidRequest"), Some(leaked), 400),
        );
        for secret in [
            "AKIAIOSFODNN7EXAMPLE",
            "abcdef0123",
            "deadbeef",
            "ASIAZZZZZZZZZZZZZZZZ",
        ] {
            assert!(
                !error.message.contains(secret),
                "{secret} in {}",
                error.message
            );
        }
        assert!(
            error.message.contains("X-Amz-Credential=<redacted>"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("https://b.s3/k"),
            "{}",
            error.message
        );
        assert!(
            error.message.ends_with("key <redacted> in use"),
            "{}",
            error.message
        );

        let refused: SdkError<ReceiveMessageError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::io("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG refused".into()),
        );
        let error = io_error("ReceiveMessage", "q", refused);
        assert!(
            !error.message.contains("wJalrXUtnFEMI"),
            "{}",
            error.message
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let text = "The specified queue does not exist for this wsdl version. AKIA is a prefix.";
        assert_eq!(redact_credentials(text), text);
    }

    #[test]
    fn batch_entries_are_located_by_their_id() {
        let failure = batch_entry_failure(
            "DeleteMessageBatch",
            "q",
            3,
            "2",
            "ReceiptHandleIsInvalid",
            Some("The receipt handle is not valid."),
            true,
        )
        .expect("known id");
        assert_eq!(
            failure,
            EntryFailure {
                index: 2,
                code: "ReceiptHandleIsInvalid".into(),
                message: "The receipt handle is not valid.".into(),
                retryable: false,
            }
        );
        let server_side = batch_entry_failure(
            "SendMessageBatch",
            "q",
            3,
            "0",
            "InternalError",
            None,
            false,
        )
        .expect("known id");
        assert!(server_side.retryable);
        assert_eq!(server_side.message, "InternalError");
        let throttled = batch_entry_failure("PublishBatch", "t", 1, "0", "Throttling", None, true)
            .expect("known id");
        assert!(throttled.retryable);
    }

    #[test]
    fn an_unknown_entry_id_fails_the_whole_call() {
        for id in ["3", "x", "-1"] {
            let error = batch_entry_failure("SendMessageBatch", "q", 3, id, "Oops", None, false)
                .expect_err("unknown id");
            assert_eq!(error.kind, IoErrorKind::Transient);
            assert!(
                error.message.contains(&format!("`{id}`")),
                "{}",
                error.message
            );
        }
    }
}
