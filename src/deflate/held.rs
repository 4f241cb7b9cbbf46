//! A zlib context held only while messages need it, beside the history that
//! stands in for it between them: the one set of rules the compressor and the
//! decompressor share (created on first use, primed on waking, given back after a
//! message without context takeover, never let go of in the middle of one).

use super::history::History;
use crate::error::Error;

/// A zlib context held only while messages need it, and the history that stands
/// in for it between them (under context takeover: what the peer may still refer
/// back to).
#[derive(Debug)]
pub(super) struct Held<T> {
    /// `None` until a message needs it, between messages without context
    /// takeover, and while hibernating.
    pub(super) context: Option<T>,
    /// `Some` with context takeover.
    history: Option<History>,
    /// A message is under way: its context may not go.
    pub(super) in_message: bool,
}

impl<T> Held<T> {
    pub(super) fn new(history: Option<History>) -> Held<T> {
        Held {
            context: None,
            history,
            in_message: false,
        }
    }

    /// Whether it keeps a history across messages (context takeover).
    pub(super) fn keeps_history(&self) -> bool {
        self.history.is_some()
    }

    /// The context, and the history to record into. Without a context, one comes
    /// from `take` and is primed with the history by `prime` (RFC 7692 §7.2.1:
    /// back-references may reach into earlier messages).
    pub(super) fn get_or_wake(
        &mut self,
        take: impl FnOnce() -> T,
        prime: impl FnOnce(&mut T, &[u8]) -> Result<(), Error>,
    ) -> Result<(&mut T, Option<&mut History>), Error> {
        if self.context.is_none() {
            let mut context = take();
            if let Some(history) = self.history.as_mut().filter(|history| !history.is_empty()) {
                prime(&mut context, history.as_slice())?;
            }
            self.context = Some(context);
        }
        let context = self.context.as_mut().expect("set above");
        Ok((context, self.history.as_mut()))
    }

    /// A message ended: without context takeover the next one starts afresh, so
    /// the context goes to `give_back`.
    pub(super) fn end_message(&mut self, give_back: impl FnOnce(T)) {
        self.in_message = false;
        if self.history.is_none()
            && let Some(context) = self.context.take()
        {
            give_back(context);
        }
    }

    /// Gives the context to `give_back`, keeping only the history; nothing in the
    /// middle of a message. Returns whether it let go of a context.
    pub(super) fn hibernate(&mut self, give_back: impl FnOnce(T)) -> bool {
        if self.in_message {
            return false;
        }
        self.context.take().map(give_back).is_some()
    }
}
