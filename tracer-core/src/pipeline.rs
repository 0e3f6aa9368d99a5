//! The whole pure pipeline: [`TlsEvent`]s in, [`LlmCall`]s out.
//!
//! [`conn::Tracker`] keeps one tracker per connection (ordering, gaps, caps, expiry) and picks the
//! protocol parser (HTTP/1.1 or HTTP/2); the parser's [`crate::http::ExchangeEvent`]s go to that
//! connection's [`crate::genai::Recognizer`] (one per connection, dropped with it).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::call::{LlmCall, Origin};
use crate::conn::{self, ExchangeSink, TrackerConfig};
use crate::event::{ConnKey, TlsEvent};
use crate::genai::{Recognizer, RecognizerConfig};
use crate::http::ExchangeEvent;

/// Limits and options of the pipeline.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    pub recognizer: RecognizerConfig,
    /// Connection tracking and HTTP limits.
    pub tracker: TrackerConfig,
}

/// Counters of what the pipeline saw and dropped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub events: u64,
    pub bytes: u64,
    pub calls: u64,
    /// HTTP requests seen (recognised as LLM calls or not).
    pub requests: u64,
    /// Requests no provider claimed (not LLM traffic), counted when their connection ends.
    pub unclaimed_requests: u64,
    pub connections_open: u64,
    pub connections_opened: u64,
    pub connections_expired: u64,
    /// Bytes held by the connection trackers now.
    pub memory_bytes: u64,
    /// Input dropped or skipped, by reason (`conn_*`, `h1_*`, `h2_*`).
    pub drops: BTreeMap<&'static str, u64>,
}

/// Routes a connection's exchange events to its recogniser.
struct Recognizers {
    config: RecognizerConfig,
    by_conn: HashMap<ConnKey, Recognizer>,
    calls: Vec<LlmCall>,
    requests: u64,
    /// Requests of closed connections that no provider claimed.
    unclaimed: u64,
    /// Recogniser drops (`genai_*`), by reason.
    drops: BTreeMap<&'static str, u64>,
    /// Connections whose latest request no provider claimed, not yet taken by
    /// [`Pipeline::take_not_llm`].
    not_llm: BTreeSet<ConnKey>,
}

/// Most not-LLM connections kept for [`Pipeline::take_not_llm`] when nobody takes them (replay).
const MAX_NOT_LLM_PENDING: usize = 4096;

/// A response the kernel may skip: the latest request on `key` is not an LLM call, and nothing
/// was written after it up to `write_offset` (the contract of the kernel's MUTED map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLlm {
    pub key: ConnKey,
    pub write_offset: u64,
}

impl ExchangeSink for Recognizers {
    fn exchange(&mut self, origin: &Origin, event: ExchangeEvent) {
        if matches!(event, ExchangeEvent::Request { .. }) {
            self.requests += 1;
        }
        let key = ConnKey {
            pid: origin.pid,
            conn: origin.conn,
        };
        let is_request = matches!(event, ExchangeEvent::Request { .. });
        let config = &self.config;
        let r = self
            .by_conn
            .entry(key)
            .or_insert_with(|| Recognizer::new(config.clone()));
        let unclaimed_before = r.stats().unclaimed;
        self.calls.extend(r.on_event(origin, event));
        r.drain_drops(&mut self.drops);
        if is_request {
            // Per exchange: only the latest request decides (a later LLM call on the same
            // keep-alive connection takes its connection off the list again).
            if r.stats().unclaimed > unclaimed_before {
                if self.not_llm.len() < MAX_NOT_LLM_PENDING {
                    self.not_llm.insert(key);
                }
            } else {
                self.not_llm.remove(&key);
            }
        }
    }

    fn closed(&mut self, origin: &Origin, ts_ns: u64) {
        let key = ConnKey {
            pid: origin.pid,
            conn: origin.conn,
        };
        self.not_llm.remove(&key);
        if let Some(mut r) = self.by_conn.remove(&key) {
            // The parser ended what it knew of; anything the recogniser still holds is cut.
            self.calls.extend(r.finish(ts_ns));
            self.unclaimed += r.stats().unclaimed;
            r.drain_drops(&mut self.drops);
        }
    }

    fn held_bytes(&self, origin: &Origin) -> usize {
        let key = ConnKey {
            pid: origin.pid,
            conn: origin.conn,
        };
        self.by_conn.get(&key).map_or(0, Recognizer::buffered_bytes)
    }
}

pub struct Pipeline {
    config: PipelineConfig,
    tracker: conn::Tracker,
    recognizers: Recognizers,
    stats: PipelineStats,
}

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Self {
        Pipeline {
            tracker: conn::Tracker::new(config.tracker.clone()),
            recognizers: Recognizers {
                config: config.recognizer.clone(),
                by_conn: HashMap::new(),
                calls: Vec::new(),
                requests: 0,
                unclaimed: 0,
                drops: BTreeMap::new(),
                not_llm: BTreeSet::new(),
            },
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
        self.tracker.feed(event, &mut self.recognizers);
        self.take_calls()
    }

    /// Time passes (capture clock): expire idle connections; returns calls they completed.
    pub fn tick(&mut self, now_ns: u64) -> Vec<LlmCall> {
        self.tracker.tick(now_ns, &mut self.recognizers);
        self.take_calls()
    }

    /// End everything still open (shutdown, end of a replay).
    pub fn finish(&mut self, now_ns: u64) -> Vec<LlmCall> {
        self.tracker.finish(now_ns, &mut self.recognizers);
        self.take_calls()
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// Responses the kernel may skip, found since the last call: HTTP/1.1 connections whose
    /// latest request no provider claimed (e.g. `GET /v1/models`, a file download), with the
    /// write offset right after it. The agent mutes their reads in the kernel until the next
    /// write, so the next request and its response are always seen in full. HTTP/2
    /// connections are never reported (streams share the connection).
    pub fn take_not_llm(&mut self) -> Vec<NotLlm> {
        let keys = std::mem::take(&mut self.recognizers.not_llm);
        keys.into_iter()
            .filter_map(|key| {
                let write_offset = self.tracker.h1_write_end(key)?;
                Some(NotLlm { key, write_offset })
            })
            .collect()
    }

    fn take_calls(&mut self) -> Vec<LlmCall> {
        let t = self.tracker.stats();
        self.stats.connections_open = self.tracker.open_connections() as u64;
        self.stats.connections_opened = t.connections_opened;
        self.stats.connections_expired = t.connections_expired;
        self.stats.memory_bytes = t.memory_bytes as u64;
        self.stats.requests = self.recognizers.requests;
        self.stats.unclaimed_requests = self.recognizers.unclaimed;
        self.tracker.drain_drops(&mut self.stats.drops);
        for (reason, n) in std::mem::take(&mut self.recognizers.drops) {
            *self.stats.drops.entry(reason).or_default() += n;
        }
        let calls = std::mem::take(&mut self.recognizers.calls);
        self.stats.calls += calls.len() as u64;
        calls
    }
}
