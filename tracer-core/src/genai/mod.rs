//! LLM recognition: one file per provider, tried in an ordered detector chain on each request,
//! then fed that exchange's response events, normalised into [`crate::call::LlmCall`].

use crate::call::{LlmCall, Origin};
use crate::http::ExchangeEvent;

/// Options of the recogniser.
#[derive(Debug, Clone, Default)]
pub struct RecognizerConfig {
    /// Export message content (opt-in) and cap each content attribute at this many bytes.
    pub capture_content: Option<usize>,
}

/// Recognises LLM calls on one connection's exchange events (one `Recognizer` per connection).
///
/// Contract: `on_event` is called with a connection's [`ExchangeEvent`]s in order. A `Request`
/// that no provider claims is dropped (its response events are ignored). A claimed exchange
/// yields exactly one `LlmCall` when its `ResponseEnd` arrives (or when a `Request` arrives for an
/// exchange that never got a response end: then it is yielded as incomplete).
pub struct Recognizer {
    pub config: RecognizerConfig,
}

impl Recognizer {
    pub fn new(config: RecognizerConfig) -> Self {
        Recognizer { config }
    }

    /// Feed one event of the connection `origin`; returns the calls it completed.
    pub fn on_event(&mut self, origin: &Origin, event: ExchangeEvent) -> Vec<LlmCall> {
        let _ = (origin, event);
        Vec::new()
    }
}
