//! The whole pure pipeline: [`TlsEvent`]s in, [`LlmCall`]s out.
//!
//! `conn` keeps one tracker per connection (ordering, gaps, caps, expiry) and picks the protocol
//! parser (HTTP/1.1 or HTTP/2); the parser's [`crate::http::ExchangeEvent`]s go to that
//! connection's [`crate::genai::Recognizer`].

use crate::call::LlmCall;
use crate::event::TlsEvent;
use crate::genai::RecognizerConfig;

/// Limits and options of the pipeline.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    pub recognizer: RecognizerConfig,
}

/// Counters of what the pipeline saw and dropped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub events: u64,
    pub bytes: u64,
    pub calls: u64,
}

pub struct Pipeline {
    config: PipelineConfig,
    stats: PipelineStats,
}

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Self {
        Pipeline {
            config,
            stats: PipelineStats::default(),
        }
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Feed one captured record; returns the calls it completed.
    pub fn feed(&mut self, event: TlsEvent) -> Vec<LlmCall> {
        self.stats.events += 1;
        self.stats.bytes += event.data.len() as u64;
        Vec::new()
    }

    /// Time passes (capture clock): expire idle connections; returns calls they completed.
    pub fn tick(&mut self, now_ns: u64) -> Vec<LlmCall> {
        let _ = now_ns;
        Vec::new()
    }

    /// End everything still open (shutdown, end of a replay).
    pub fn finish(&mut self, now_ns: u64) -> Vec<LlmCall> {
        let _ = now_ns;
        Vec::new()
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }
}
