//! Connection tracking: one tracker per [`ConnKey`], from [`TlsEvent`]s to [`ExchangeEvent`]s.
//!
//! Per connection: two ordered byte streams ([`stream`]), the protocol parser chosen from the
//! first bytes ([`detect`]: HTTP/2 preface or frames, else HTTP/1.1), idle expiry, and memory
//! caps per connection and overall (a connection over its cap, or the least recently active one
//! when the total is over, is closed: its open exchanges end as abandoned, and the drop is
//! counted). A `PROCESS_EXIT` record closes every connection of the process, a `CONN_CLOSED`
//! record its one connection.

pub mod detect;
pub mod stream;

use std::collections::BTreeMap;

use crate::call::Origin;
use crate::event::{flags, ConnKey, Direction, TlsEvent};
use crate::http::h1::H1Connection;
use crate::http::{count_drop, ConnectionParser, DropCounts, EndReason, ExchangeEvent, HttpConfig};
use detect::Protocol;
use stream::{DirStream, ReorderLimits, Step};

/// Limits of the connection tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    pub http: HttpConfig,
    /// How long a record ahead of a hole waits for the missing one (capture clock).
    pub reorder_window_ns: u64,
    /// Bytes and records held per direction while waiting.
    pub max_reorder_bytes: usize,
    pub max_reorder_records: usize,
    /// A connection with no record for this long is closed (open exchanges: abandoned). Long,
    /// because a non-streamed reasoning call can take minutes to answer.
    pub idle_timeout_ns: u64,
    /// Bytes one connection may hold (parser buffers, decoder state, reordering).
    pub max_conn_bytes: usize,
    /// Bytes all connections together may hold.
    pub max_total_bytes: usize,
    pub max_connections: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            http: HttpConfig::default(),
            reorder_window_ns: 200_000_000,
            max_reorder_bytes: 4 << 20,
            max_reorder_records: 256,
            idle_timeout_ns: 15 * 60 * 1_000_000_000,
            max_conn_bytes: 64 << 20,
            max_total_bytes: 1 << 30,
            max_connections: 1 << 16,
        }
    }
}

impl TrackerConfig {
    fn reorder(&self) -> ReorderLimits {
        ReorderLimits {
            window_ns: self.reorder_window_ns,
            max_bytes: self.max_reorder_bytes,
            max_records: self.max_reorder_records,
        }
    }
}

/// Where the tracker's output goes.
pub trait ExchangeSink {
    /// One event of the connection `origin`, in order.
    fn exchange(&mut self, origin: &Origin, event: ExchangeEvent);
    /// The connection is gone (closed, expired, evicted) at `ts_ns`: nothing more comes for it.
    fn closed(&mut self, origin: &Origin, ts_ns: u64) {
        let _ = (origin, ts_ns);
    }
    /// Bytes the sink holds for the connection `origin` (e.g. a response body kept whole for
    /// the LLM layer): counted in that connection's memory, so the caps bound them too.
    fn held_bytes(&self, origin: &Origin) -> usize {
        let _ = origin;
        0
    }
}

/// Collects `(origin, event)` pairs (tests, tools).
impl ExchangeSink for Vec<(Origin, ExchangeEvent)> {
    fn exchange(&mut self, origin: &Origin, event: ExchangeEvent) {
        self.push((origin.clone(), event));
    }
}

/// The HTTP/2 parser ([`crate::http::h2::H2Connection`]): it handles both a connection seen
/// from its preface and one attached mid-way (frames first). Kept as one function so the
/// dispatch stays a small match (`None` would ignore the connection as `conn_h2_unsupported`).
fn new_h2_parser(cfg: &HttpConfig) -> Option<Box<dyn ConnectionParser + Send>> {
    Some(Box::new(crate::http::h2::H2Connection::from_http_config(
        cfg,
    )))
}

enum Parser {
    /// Protocol not known yet: the first bytes, in order, with their direction and time.
    Undecided(Vec<(Direction, u64, Vec<u8>)>),
    H1(Box<H1Connection>),
    H2(Box<dyn ConnectionParser + Send>),
    /// Not parsed (no parser for its protocol).
    Ignored,
}

impl Parser {
    fn as_dyn(&mut self) -> Option<&mut dyn ConnectionParser> {
        match self {
            Parser::H1(p) => Some(p.as_mut()),
            Parser::H2(p) => Some(p.as_mut()),
            Parser::Undecided(_) | Parser::Ignored => None,
        }
    }

    fn buffered_bytes(&self) -> usize {
        match self {
            Parser::Undecided(held) => held.iter().map(|(_, _, d)| d.len()).sum(),
            Parser::H1(p) => p.buffered_bytes(),
            Parser::H2(p) => p.buffered_bytes(),
            Parser::Ignored => 0,
        }
    }
}

struct Conn {
    origin: Origin,
    parser: Parser,
    write: DirStream,
    read: DirStream,
    last_ts: u64,
    /// Bytes this connection was last counted for in the total.
    accounted: usize,
}

impl Conn {
    fn new(ev: &TlsEvent) -> Self {
        Conn {
            origin: Origin {
                pid: ev.pid,
                tid: ev.tid,
                comm: ev.comm.clone(),
                conn: ev.conn,
            },
            parser: Parser::Undecided(Vec::new()),
            write: DirStream::default(),
            read: DirStream::default(),
            last_ts: ev.ts_ns,
            accounted: 0,
        }
    }

    fn memory(&self) -> usize {
        self.parser.buffered_bytes() + self.write.held_bytes() + self.read.held_bytes()
    }

    /// Hand ordered steps of `direction` to the parser (choosing it first if need be).
    fn deliver(
        &mut self,
        direction: Direction,
        steps: &mut Vec<Step>,
        cfg: &HttpConfig,
        out: &mut Vec<ExchangeEvent>,
        drops: &mut DropCounts,
    ) {
        for step in steps.drain(..) {
            if let Parser::Undecided(held) = &mut self.parser {
                match step {
                    Step::Data { ts_ns, data } => {
                        held.push((direction, ts_ns, data));
                        if let Some(p) = detect::detect(held) {
                            self.choose(p, cfg, out, drops);
                        }
                        continue;
                    }
                    // A hole before the protocol is known: HTTP/1.1 resynchronises on its own.
                    Step::Gap { .. } => self.choose(Protocol::Http1, cfg, out, drops),
                }
            }
            let Some(p) = self.parser.as_dyn() else {
                continue;
            };
            match step {
                Step::Data { ts_ns, data } => p.feed(direction, ts_ns, &data, out),
                Step::Gap { ts_ns, missing } => p.gap(direction, ts_ns, missing, out),
            }
        }
    }

    fn choose(
        &mut self,
        protocol: Protocol,
        cfg: &HttpConfig,
        out: &mut Vec<ExchangeEvent>,
        drops: &mut DropCounts,
    ) {
        let held = match std::mem::replace(&mut self.parser, Parser::Ignored) {
            Parser::Undecided(held) => held,
            other => {
                self.parser = other;
                return;
            }
        };
        self.parser = match protocol {
            Protocol::Http1 => Parser::H1(Box::new(H1Connection::new(cfg.clone()))),
            Protocol::Http2 => match new_h2_parser(cfg) {
                Some(p) => Parser::H2(p),
                None => {
                    count_drop(drops, "conn_h2_unsupported");
                    Parser::Ignored
                }
            },
        };
        if let Some(p) = self.parser.as_dyn() {
            for (direction, ts, data) in held {
                p.feed(direction, ts, &data, out);
            }
        }
    }

    /// Deliver everything held, then end the connection.
    fn close(
        &mut self,
        ts_ns: u64,
        reason: EndReason,
        cfg: &HttpConfig,
        out: &mut Vec<ExchangeEvent>,
        drops: &mut DropCounts,
    ) {
        let mut steps = Vec::new();
        self.write.flush(&mut steps, drops);
        self.deliver(Direction::Write, &mut steps, cfg, out, drops);
        self.read.flush(&mut steps, drops);
        self.deliver(Direction::Read, &mut steps, cfg, out, drops);
        if matches!(self.parser, Parser::Undecided(_)) {
            self.choose(Protocol::Http1, cfg, out, drops);
        }
        if let Some(p) = self.parser.as_dyn() {
            p.close(ts_ns, reason, out);
            p.drain_drops(drops);
        }
    }
}

/// Counters of the tracker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub connections_expired: u64,
    /// A connection key seen again from offset 0 (the connection object's address reused).
    pub connections_reused: u64,
    /// Bytes currently held by all connections.
    pub memory_bytes: usize,
}

/// All connections of the host.
pub struct Tracker {
    cfg: TrackerConfig,
    conns: BTreeMap<ConnKey, Conn>,
    total: usize,
    stats: TrackerStats,
    drops: DropCounts,
    steps: Vec<Step>,
    events: Vec<ExchangeEvent>,
    /// Recently exited processes and when: records of theirs that come later (ring buffer
    /// order) with an earlier timestamp are dropped, not taken for a new connection.
    exited: BTreeMap<u32, u64>,
}

/// How long an exited pid is remembered (capture clock).
const EXITED_MEMORY_NS: u64 = 5_000_000_000;

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        Tracker {
            cfg,
            conns: BTreeMap::new(),
            total: 0,
            stats: TrackerStats::default(),
            drops: DropCounts::new(),
            steps: Vec::new(),
            events: Vec::new(),
            exited: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    pub fn stats(&self) -> TrackerStats {
        TrackerStats {
            memory_bytes: self.total,
            ..self.stats.clone()
        }
    }

    /// Move the drop counters (tracker and parsers) into `into`.
    pub fn drain_drops(&mut self, into: &mut DropCounts) {
        for (k, v) in std::mem::take(&mut self.drops) {
            *into.entry(k).or_default() += v;
        }
    }

    /// Take one record.
    pub fn feed(&mut self, ev: TlsEvent, sink: &mut impl ExchangeSink) {
        if ev.has(flags::PROCESS_EXIT) {
            self.close_pid(ev.pid, ev.ts_ns, sink);
            if self.exited.len() < self.cfg.max_connections {
                self.exited.insert(ev.pid, ev.ts_ns);
            }
            return;
        }
        if ev.has(flags::CONN_CLOSED) {
            // The connection object was freed: end it now rather than at idle expiry, so its
            // state is freed at once and a new connection at the same address starts fresh.
            self.close(ev.key(), ev.ts_ns, EndReason::ConnectionClosed, sink);
            return;
        }
        if let Some(&exit_ts) = self.exited.get(&ev.pid) {
            if ev.ts_ns <= exit_ts {
                count_drop(&mut self.drops, "conn_record_after_exit");
                return;
            }
            // A later process with the same pid.
            self.exited.remove(&ev.pid);
        }
        if ev.data.is_empty()
            && !ev.has(flags::TRUNCATED)
            && !ev.has(flags::LOST_BEFORE)
            && !ev.has(flags::SKIPPED_BEFORE)
        {
            // Failed calls and empty reads carry nothing.
            return;
        }
        let key = ev.key();
        if ev.offset == 0 && !ev.data.is_empty() {
            let restarted = self.conns.get(&key).is_some_and(|c| match ev.direction {
                Direction::Write => c.write.started(),
                Direction::Read => c.read.started(),
            });
            if restarted {
                // Offsets start again: the TLS library reused the connection object's address
                // for a new connection, so the old one is over.
                self.stats.connections_reused += 1;
                self.close(key, ev.ts_ns, EndReason::ConnectionClosed, sink);
            }
        }
        if !self.conns.contains_key(&key) {
            if self.conns.len() >= self.cfg.max_connections {
                count_drop(&mut self.drops, "conn_max_connections");
                self.evict_oldest(ev.ts_ns, sink);
            }
            self.conns.insert(key, Conn::new(&ev));
            self.stats.connections_opened += 1;
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.last_ts = conn.last_ts.max(ev.ts_ns);
        if ev.direction == Direction::Write {
            // The thread that writes the request is the one making the call.
            conn.origin.tid = ev.tid;
            if conn.origin.comm != ev.comm {
                conn.origin.comm.clone_from(&ev.comm);
            }
        }
        let (other, other_dir) = match ev.direction {
            Direction::Write => (&mut conn.read, Direction::Read),
            Direction::Read => (&mut conn.write, Direction::Write),
        };
        if other.is_holding() {
            // Traffic the other way means what this connection was waiting for in that
            // direction is not coming (one ring buffer keeps a connection's records in order):
            // the holes are losses, and the request must reach the parser before its response.
            count_drop(&mut self.drops, "conn_hole_before_other_direction");
            other.flush(&mut self.steps, &mut self.drops);
            conn.deliver(
                other_dir,
                &mut self.steps,
                &self.cfg.http,
                &mut self.events,
                &mut self.drops,
            );
        }
        let limits = self.cfg.reorder();
        // A muted response (skipped on purpose) is a known hole too: no wait for reordering.
        let lost = ev.has(flags::LOST_BEFORE) || ev.has(flags::SKIPPED_BEFORE);
        let truncated = ev.has(flags::TRUNCATED);
        let dir = match ev.direction {
            Direction::Write => &mut conn.write,
            Direction::Read => &mut conn.read,
        };
        dir.push(
            ev.offset,
            ev.ts_ns,
            ev.data,
            lost,
            truncated,
            &limits,
            &mut self.steps,
            &mut self.drops,
        );
        conn.deliver(
            ev.direction,
            &mut self.steps,
            &self.cfg.http,
            &mut self.events,
            &mut self.drops,
        );
        if let Some(p) = conn.parser.as_dyn() {
            p.drain_drops(&mut self.drops);
        }
        for e in self.events.drain(..) {
            sink.exchange(&conn.origin, e);
        }
        self.account(key, ev.ts_ns, sink);
    }

    /// Update the memory figures after `key` changed; enforce the caps.
    fn account(&mut self, key: ConnKey, ts_ns: u64, sink: &mut impl ExchangeSink) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let now = conn.memory() + sink.held_bytes(&conn.origin);
        self.total = self.total - conn.accounted + now;
        conn.accounted = now;
        if now > self.cfg.max_conn_bytes {
            count_drop(&mut self.drops, "conn_memory_cap");
            self.close(key, ts_ns, EndReason::Abandoned, sink);
        }
        while self.total > self.cfg.max_total_bytes && !self.conns.is_empty() {
            count_drop(&mut self.drops, "conn_global_memory_cap");
            self.evict_oldest(ts_ns, sink);
        }
    }

    fn evict_oldest(&mut self, ts_ns: u64, sink: &mut impl ExchangeSink) {
        if let Some(key) = self
            .conns
            .iter()
            .min_by_key(|(_, c)| c.last_ts)
            .map(|(k, _)| *k)
        {
            self.close(key, ts_ns, EndReason::Abandoned, sink);
        }
    }

    /// End one connection and forget it.
    fn close(&mut self, key: ConnKey, ts_ns: u64, reason: EndReason, sink: &mut impl ExchangeSink) {
        let Some(mut conn) = self.conns.remove(&key) else {
            return;
        };
        self.total -= conn.accounted;
        self.stats.connections_closed += 1;
        conn.close(
            ts_ns,
            reason,
            &self.cfg.http,
            &mut self.events,
            &mut self.drops,
        );
        for e in self.events.drain(..) {
            sink.exchange(&conn.origin, e);
        }
        sink.closed(&conn.origin, ts_ns);
    }

    /// Where a mute of the current response of `key` may hold: the connection's write offset,
    /// when it is HTTP/1.1, its write side holds nothing back and no request is in progress. None for HTTP/2 (a response
    /// shares the connection with other streams), undecided or unknown connections.
    pub fn h1_write_end(&self, key: ConnKey) -> Option<u64> {
        let conn = self.conns.get(&key)?;
        match &conn.parser {
            // A request still in progress (its head or body partly written) could be an LLM
            // call: never mute behind it.
            Parser::H1(p) if p.request_side_idle() => conn.write.settled_end(),
            _ => None,
        }
    }

    /// The process exited: close all its connections.
    pub fn close_pid(&mut self, pid: u32, ts_ns: u64, sink: &mut impl ExchangeSink) {
        let keys: Vec<ConnKey> = self
            .conns
            .range(
                ConnKey { pid, conn: 0 }..=ConnKey {
                    pid,
                    conn: u64::MAX,
                },
            )
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.close(key, ts_ns, EndReason::Abandoned, sink);
        }
    }

    /// Time passes: give up waiting for late records, expire idle connections.
    pub fn tick(&mut self, now_ns: u64, sink: &mut impl ExchangeSink) {
        self.exited
            .retain(|_, ts| now_ns.saturating_sub(*ts) <= EXITED_MEMORY_NS);
        let limits = self.cfg.reorder();
        let mut idle = Vec::new();
        let mut touched = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            if now_ns.saturating_sub(conn.last_ts) > self.cfg.idle_timeout_ns {
                idle.push(*key);
                continue;
            }
            for direction in [Direction::Write, Direction::Read] {
                let dir = match direction {
                    Direction::Write => &mut conn.write,
                    Direction::Read => &mut conn.read,
                };
                dir.expire(now_ns, &limits, &mut self.steps, &mut self.drops);
                if !self.steps.is_empty() {
                    conn.deliver(
                        direction,
                        &mut self.steps,
                        &self.cfg.http,
                        &mut self.events,
                        &mut self.drops,
                    );
                    touched.push(*key);
                }
            }
            for e in self.events.drain(..) {
                sink.exchange(&conn.origin, e);
            }
        }
        for key in touched {
            self.account(key, now_ns, sink);
        }
        for key in idle {
            self.stats.connections_expired += 1;
            self.close(key, now_ns, EndReason::Abandoned, sink);
        }
    }

    /// End every connection (shutdown, end of a replay).
    pub fn finish(&mut self, now_ns: u64, sink: &mut impl ExchangeSink) {
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for key in keys {
            self.close(key, now_ns, EndReason::Abandoned, sink);
        }
    }
}
