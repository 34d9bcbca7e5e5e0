//! Running a processor over one message body: unwrap the envelope, process every payload,
//! combine the outcomes. Shared by the runtime and `wharf invoke`, so both judge a message the
//! same way.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use wharf_crds::pipeline::Envelope;

use crate::envelope;
use crate::processors::{MessageContext, Outcome, Processor};

/// The combined outcome of one message, and whether the processor panicked on it.
#[derive(Debug, PartialEq)]
pub struct MessageResult {
    pub outcome: Outcome,
    pub panicked: bool,
}

/// Runs `processor` on every payload in `body`. The first permanent or transient failure
/// decides the message (with the payload's origin in the reason when there are several);
/// otherwise the outputs of all payloads, in order. A panic is a transient failure.
pub async fn process_body(
    processor: &dyn Processor,
    body: &str,
    envelope_setting: Envelope,
    context: &MessageContext,
) -> MessageResult {
    let payloads = match envelope::unwrap(body, envelope_setting) {
        Ok(payloads) => payloads,
        Err(error) => {
            return MessageResult {
                outcome: Outcome::Permanent(error.to_string()),
                panicked: false,
            };
        }
    };
    let several = payloads.len() > 1;
    let qualify = |origin: &str, reason: String| {
        if several {
            format!("{origin}: {reason}")
        } else {
            reason
        }
    };
    let mut outputs = Vec::new();
    for payload in &payloads {
        let processed = AssertUnwindSafe(processor.process(payload, context))
            .catch_unwind()
            .await;
        let outcome = match processed {
            Ok(Outcome::Ok(mut produced)) => {
                outputs.append(&mut produced);
                continue;
            }
            Ok(Outcome::Permanent(reason)) => Outcome::Permanent(qualify(&payload.origin, reason)),
            Ok(Outcome::Transient(reason)) => Outcome::Transient(qualify(&payload.origin, reason)),
            Err(panic) => {
                return MessageResult {
                    outcome: Outcome::Transient(format!(
                        "the processor panicked on {}: {}",
                        payload.origin,
                        panic_text(panic.as_ref())
                    )),
                    panicked: true,
                };
            }
        };
        return MessageResult {
            outcome,
            panicked: false,
        };
    }
    MessageResult {
        outcome: Outcome::Ok(outputs),
        panicked: false,
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
