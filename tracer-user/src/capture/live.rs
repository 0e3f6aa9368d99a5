//! The live source: load the programs, attach to every TLS library found, and read the ring
//! buffer (tokio `AsyncFd`) into [`TlsEvent`]s.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tracer_common::limits;
use tracer_core::event::{flags, TlsEvent};
use tracer_core::pipeline::NotLlm;
use tracing::{debug, info, warn};

use super::{
    decode::{decode, KernelRecord},
    ebpf::{Kernel, KernelError, KernelOptions, KernelStats, MuteMap, StatsReader},
    preflight::{check_kernel, check_privileges, PreflightError},
};
use crate::probe::discovery::{spawn_watcher, AttachedTarget, Discovery, DiscoveryStats};

/// Options of the live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub kernel: KernelOptions,
    /// How often every process is rescanned for libraries loaded late (dlopen).
    pub rescan_every: Duration,
    /// Files under these paths are never attached.
    pub exclude: Vec<PathBuf>,
    /// Benchmarks: attach the do-nothing probe pair to this file.
    pub bench_empty_probes: Option<PathBuf>,
    /// Mute (in the kernel) the responses of requests the pipeline finds are not LLM calls.
    pub mute_non_llm: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            kernel: KernelOptions::default(),
            rescan_every: Duration::from_secs(2),
            exclude: Vec::new(),
            bench_empty_probes: None,
            mute_non_llm: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(
        "no TLS library found: no running process maps libssl or a binary exporting SSL_write, and none is in the standard library directories; install OpenSSL (libssl3) or start the program to trace first"
    )]
    NoTlsLibrary,
    #[error("--bench-empty-probes {0}")]
    BenchProbes(String),
    #[error("cannot watch the ring buffer: {0}")]
    Poll(std::io::Error),
}

/// Counters of the user side of the live source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub records: u64,
    pub decode_errors: u64,
    pub execs: u64,
    pub execs_dropped: u64,
}

pub struct LiveCapture {
    ring: AsyncFd<RingBuf<MapData>>,
    execs: AsyncFd<RingBuf<MapData>>,
    stats_map: StatsReader,
    mute: Option<MuteMap>,
    exec_tx: Option<mpsc::SyncSender<u32>>,
    watcher: Option<thread::JoinHandle<Discovery<Kernel>>>,
    targets: Arc<Mutex<Vec<AttachedTarget>>>,
    stats: SourceStats,
    /// Processes that sent TLS records (their exit is forwarded).
    tls_pids: HashSet<u32>,
    /// Connections with a mute entry by process, removed when the process exits (its `SSL*`
    /// addresses mean nothing after that) or the kernel reports the connection freed (the
    /// kernel deletes its entry then). None when muting is off.
    muted: Option<HashMap<u32, HashSet<u64>>>,
    muted_count: usize,
    /// Drains the data ring even without a wake-up.
    poll: tokio::time::Interval,
    /// The last drain stopped at [`MAX_BATCH`].
    more_waiting: bool,
}

/// How long stopping waits for the discovery thread.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How often the data ring is drained without a wake-up: the most a record waits when the
/// traffic is too light to cross the wake-up threshold.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Records handed over per batch at most.
const MAX_BATCH: usize = 1024;

/// Bound on the processes remembered for exit reporting.
const MAX_TLS_PIDS: usize = 1 << 16;

impl LiveCapture {
    /// Loads and attaches everything. Must run inside a tokio runtime. When it returns, every
    /// probe found at start is attached.
    pub fn start(opts: LiveOptions) -> Result<LiveCapture, StartError> {
        check_privileges()?;
        check_kernel()?;
        let mut kernel = Kernel::load(opts.kernel)?;
        if let Some(path) = &opts.bench_empty_probes {
            attach_empty_pair(&mut kernel, path)?;
        }
        let ring = kernel.take_events()?;
        let execs = kernel.take_execs()?;
        let stats_map = kernel.take_stats()?;
        let mute = kernel.take_mute()?;
        let mut discovery = Discovery::new(kernel);
        discovery.set_exclude(opts.exclude.clone());
        discovery.scan_library_dirs();
        discovery.scan_all();
        if discovery.targets_snapshot().is_empty() {
            return Err(StartError::NoTlsLibrary);
        }
        let targets = discovery.targets();
        let (exec_tx, exec_rx) = mpsc::sync_channel(4096);
        let watcher = spawn_watcher(discovery, exec_rx, opts.rescan_every);
        // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, while it lives
        // inside the AsyncFd.
        let ring = unsafe { AsyncFd::register(ring) }.map_err(|e| StartError::Poll(e.into()))?;
        // SAFETY: as above.
        let execs = unsafe { AsyncFd::register(execs) }.map_err(|e| StartError::Poll(e.into()))?;
        Ok(LiveCapture {
            ring,
            execs,
            stats_map,
            mute: Some(mute),
            exec_tx: Some(exec_tx),
            watcher: Some(watcher),
            targets,
            stats: SourceStats::default(),
            tls_pids: HashSet::new(),
            muted: opts.mute_non_llm.then(HashMap::new),
            muted_count: 0,
            poll: {
                let mut t = tokio::time::interval(POLL_EVERY);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            },
            more_waiting: false,
        })
    }

    /// Waits for records and appends every one available to `out` (at least one, unless the
    /// wait itself fails). Exec notifications go to discovery first, not to `out`.
    pub async fn next_batch(&mut self, out: &mut Vec<TlsEvent>) -> std::io::Result<()> {
        let before = out.len();
        if self.more_waiting {
            // The last drain stopped at the batch limit: the rest needs no wake-up to be read.
            let (ended, full) = drain(
                self.ring.get_mut(),
                &mut self.stats,
                &mut self.tls_pids,
                out,
            );
            self.more_waiting = full;
            if self.finish_batch(ended, out.len() > before) {
                return Ok(());
            }
        }
        loop {
            tokio::select! {
                biased;
                guard = self.execs.readable_mut() => {
                    let mut guard = guard?;
                    let ring = guard.get_inner_mut();
                    while let Some(item) = ring.next() {
                        match decode(&item) {
                            Ok(KernelRecord::Exec { pid }) => {
                                self.stats.execs += 1;
                                let sent = self.exec_tx.as_ref().map(|tx| tx.try_send(pid).is_ok());
                                if sent == Some(false) {
                                    self.stats.execs_dropped += 1;
                                }
                            }
                            Ok(_) => self.stats.decode_errors += 1,
                            Err(e) => {
                                self.stats.decode_errors += 1;
                                warn!("bad exec record from the kernel: {e}");
                            }
                        }
                    }
                    guard.clear_ready();
                }
                guard = self.ring.readable_mut() => {
                    let mut guard = guard?;
                    let (ended, full) =
                        drain(guard.get_inner_mut(), &mut self.stats, &mut self.tls_pids, out);
                    if !full {
                        guard.clear_ready();
                    }
                    drop(guard);
                    self.more_waiting = full;
                    if self.finish_batch(ended, out.len() > before) {
                        return Ok(());
                    }
                }
                // Records are submitted without a wake-up (see `config::WAKE_BYTES`): what
                // sits below the wake-up threshold is read here.
                _ = self.poll.tick() => {
                    let (ended, full) =
                        drain(self.ring.get_mut(), &mut self.stats, &mut self.tls_pids, out);
                    self.more_waiting = full;
                    if self.finish_batch(ended, out.len() > before) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// After a drain: forgets the mutes of what ended; true when the batch has records.
    fn finish_batch(&mut self, ended: Ended, got: bool) -> bool {
        for (pid, conn) in ended {
            match conn {
                None => self.unmute_process(pid),
                Some(conn) => self.forget_mute(pid, conn),
            }
        }
        got
    }

    pub fn kernel_stats(&self) -> KernelStats {
        self.stats_map.read()
    }

    pub fn source_stats(&self) -> SourceStats {
        self.stats
    }

    pub fn targets(&self) -> Vec<AttachedTarget> {
        self.targets.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Mutes the responses of requests that are not LLM calls (from
    /// [`tracer_core::pipeline::Pipeline::take_not_llm`]) when muting is on: the kernel skips
    /// the reads of each such connection until its next write. Past the kernel map's size,
    /// responses stay traced.
    pub fn mute_not_llm(&mut self, found: Vec<NotLlm>) {
        let (Some(muted), Some(map)) = (self.muted.as_mut(), self.mute.as_mut()) else {
            return;
        };
        for NotLlm { key, write_offset } in found {
            let conns = muted.entry(key.pid).or_default();
            let new = !conns.contains(&key.conn);
            if new && self.muted_count >= limits::MAX_MUTED as usize {
                return;
            }
            match map.mute(key.pid, key.conn, write_offset) {
                Ok(()) => {
                    if new {
                        conns.insert(key.conn);
                        self.muted_count += 1;
                    }
                    debug!(
                        "muted pid {} conn {:#x} until its next write (offset {write_offset}): not an LLM call",
                        key.pid, key.conn
                    );
                }
                Err(e) => warn!("cannot mute a connection: {e}"),
            }
        }
    }

    /// The kernel dropped the connection's mute itself when it was freed.
    fn forget_mute(&mut self, pid: u32, conn: u64) {
        let Some(muted) = self.muted.as_mut() else {
            return;
        };
        if let Some(conns) = muted.get_mut(&pid) {
            if conns.remove(&conn) {
                self.muted_count -= 1;
            }
            if conns.is_empty() {
                muted.remove(&pid);
            }
        }
    }

    fn unmute_process(&mut self, pid: u32) {
        let (Some(muted), Some(map)) = (self.muted.as_mut(), self.mute.as_mut()) else {
            return;
        };
        for conn in muted.remove(&pid).unwrap_or_default() {
            map.unmute(pid, conn);
            self.muted_count -= 1;
        }
    }

    /// The map of connections the probes must not copy (taken once, by the muting policy).
    pub fn take_mute(&mut self) -> Option<MuteMap> {
        self.mute.take()
    }

    /// Stops discovery and returns its counters.
    pub fn stop(&mut self) -> Option<DiscoveryStats> {
        self.exec_tx = None;
        let watcher = self.watcher.take()?;
        // Discovery may be in the middle of a scan of a busy host (ELF and Go symbol tables):
        // wait a little, not for ever. The kernel removes the probes when the agent exits.
        let deadline = std::time::Instant::now() + STOP_WAIT;
        while !watcher.is_finished() {
            if std::time::Instant::now() >= deadline {
                warn!(
                    "discovery still busy {} s after stop; not waiting for it",
                    STOP_WAIT.as_secs()
                );
                return None;
            }
            thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut d = watcher.join().ok()?;
        let t0 = std::time::Instant::now();
        let n = d.attacher_mut().detach_uprobes();
        info!(
            "detached {n} probe link(s) in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        Some(d.stats().clone())
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// What ended in a batch: a process (`None`) or one of its connections.
type Ended = Vec<(u32, Option<u64>)>;

/// Reads the data ring into `out` (at most [`MAX_BATCH`] records); returns the processes and
/// connections that ended and whether the batch stopped full (more may be waiting).
fn drain(
    ring: &mut RingBuf<MapData>,
    stats: &mut SourceStats,
    tls_pids: &mut HashSet<u32>,
    out: &mut Vec<TlsEvent>,
) -> (Ended, bool) {
    let before = out.len();
    let mut ended = Vec::new();
    while let Some(item) = ring.next() {
        stats.records += 1;
        match decode(&item) {
            Ok(KernelRecord::Event(e)) => {
                if e.has(flags::PROCESS_EXIT) {
                    ended.push((e.pid, None));
                } else if e.has(flags::CONN_CLOSED) {
                    ended.push((e.pid, Some(e.conn)));
                }
                accept(tls_pids, e, out)
            }
            Ok(KernelRecord::Exec { .. }) => stats.decode_errors += 1,
            Err(e) => {
                stats.decode_errors += 1;
                warn!("bad record from the kernel: {e}");
            }
        }
        // Keep batches bounded so exec notifications are not starved.
        if out.len() - before >= MAX_BATCH {
            return (ended, true);
        }
    }
    (ended, false)
}

/// Passes an event on; exits matter only for processes that had TLS traffic.
fn accept(tls_pids: &mut HashSet<u32>, e: TlsEvent, out: &mut Vec<TlsEvent>) {
    if e.has(flags::PROCESS_EXIT) {
        if tls_pids.remove(&e.pid) {
            out.push(e);
        }
    } else {
        if tls_pids.len() < MAX_TLS_PIDS {
            tls_pids.insert(e.pid);
        }
        out.push(e);
    }
}

/// Benchmarks: the do-nothing entry+return pair on the four OpenSSL read/write functions of
/// `path`, the cost floor our probes are compared with (`cargo xtask bench`).
fn attach_empty_pair(kernel: &mut Kernel, path: &Path) -> Result<(), StartError> {
    use super::ebpf::programs::{BENCH_EMPTY_ENTRY, BENCH_EMPTY_RETURN};
    const SYMBOLS: [&str; 4] = ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"];
    let found = crate::probe::elf::defined_dynamic_symbols(path, &SYMBOLS)
        .map_err(|e| StartError::BenchProbes(format!("{}: {e}", path.display())))?;
    kernel.load_uprobe(BENCH_EMPTY_ENTRY)?;
    kernel.load_uprobe(BENCH_EMPTY_RETURN)?;
    for (symbol, &offset) in &found {
        kernel.attach_uprobe(BENCH_EMPTY_RETURN, offset, path)?;
        kernel.attach_uprobe(BENCH_EMPTY_ENTRY, offset, path)?;
        tracing::debug!("bench: empty pair on {symbol}");
    }
    tracing::info!(
        "bench: empty probe pair attached to {} ({} symbols)",
        path.display(),
        found.len()
    );
    Ok(())
}

/// The monotonic clock the kernel stamps records with (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}
