//! Unwrapping message bodies: SNS notifications, S3 event notifications, Lambda-style
//! `Records`, the ReceiveMessage `Messages` shape, and base64 — detected automatically or as
//! the Pipeline's `source.sqs.envelope` says.
//!
//! Exactly one transport layer is removed: what a processor receives may itself contain
//! `Records` (the infrastructure events do), and those belong to the processor.

use wharf_crds::pipeline::Envelope;

/// One unit of work for a processor, cut out of a message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub body: String,
    /// Where in the message it came from, for errors and logs (`body`, `Records[1].Sns.Message`).
    pub origin: String,
}

/// A body that does not have the shape the envelope setting promises.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("envelope {expected}: {reason}")]
pub struct EnvelopeError {
    /// The envelope setting, e.g. `sns`.
    pub expected: &'static str,
    pub reason: String,
}

/// Unwraps `body` into the payloads it carries (one or more).
pub fn unwrap(body: &str, envelope: Envelope) -> Result<Vec<Payload>, EnvelopeError> {
    let _ = (body, envelope);
    Err(EnvelopeError {
        expected: "auto",
        reason: "envelope unwrapping is not implemented yet".to_owned(),
    })
}
