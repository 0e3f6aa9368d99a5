//! The embedded eBPF object: loading it, its maps, and attaching its programs.

use std::path::Path;

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        uprobe::{UProbeAttachLocation, UProbeLinkId, UProbeScope},
        BtfTracePoint, UProbe,
    },
    Btf, Ebpf, EbpfLoader,
};
use tracer_common::{config, limits, names, stats, ConnId};

/// The object built by build.rs (empty when the eBPF build was skipped).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// Names of the programs in the object (see tracer-ebpf).
pub mod programs {
    pub const SSL_WRITE_ENTRY: &str = "ssl_write_entry";
    pub const SSL_WRITE_EX_ENTRY: &str = "ssl_write_ex_entry";
    pub const SSL_READ_ENTRY: &str = "ssl_read_entry";
    pub const SSL_READ_EX_ENTRY: &str = "ssl_read_ex_entry";
    pub const SSL_RW_RETURN: &str = "ssl_rw_return";
    pub const SSL_FREE_ENTRY: &str = "ssl_free_entry";
    pub const GO_TLS_WRITE_ENTRY: &str = "go_tls_write_entry";
    pub const GO_TLS_READ_ENTRY: &str = "go_tls_read_entry";
    pub const GO_TLS_RET: &str = "go_tls_ret";
    pub const GO_TLS_CLOSE: &str = "go_tls_close";
    pub const NSS_IMPORT_FD_RETURN: &str = "nss_import_fd_return";
    pub const NSS_CLOSE_ENTRY: &str = "nss_close_entry";
    pub const NSS_WRITE_ENTRY: &str = "nss_write_entry";
    pub const NSS_READ_ENTRY: &str = "nss_read_entry";
    pub const NSS_RW_RETURN: &str = "nss_rw_return";
    pub const UPROBES: [&str; 15] = [
        GO_TLS_WRITE_ENTRY,
        GO_TLS_READ_ENTRY,
        GO_TLS_RET,
        GO_TLS_CLOSE,
        SSL_WRITE_ENTRY,
        SSL_WRITE_EX_ENTRY,
        SSL_READ_ENTRY,
        SSL_READ_EX_ENTRY,
        SSL_RW_RETURN,
        SSL_FREE_ENTRY,
        NSS_IMPORT_FD_RETURN,
        NSS_CLOSE_ENTRY,
        NSS_WRITE_ENTRY,
        NSS_READ_ENTRY,
        NSS_RW_RETURN,
    ];
    /// Do-nothing entry and return programs (benchmarks only: the cost floor of a probe pair).
    pub const BENCH_EMPTY_ENTRY: &str = "bench_empty_entry";
    pub const BENCH_EMPTY_RETURN: &str = "bench_empty_return";
    /// (program, BTF tracepoint)
    pub const TRACEPOINTS: [(&str, &str); 2] = [
        ("sched_process_exec", "sched_process_exec"),
        ("sched_process_exit", "sched_process_exit"),
    ];
}

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(
        "this binary was built without its eBPF programs (AYA_BUILD_SKIP or clippy build); rebuild it with `cargo xtask build`"
    )]
    NoObject,
    #[error(
        "the capture cap {0} bytes is out of range: use 1..={max} (--max-capture-bytes)",
        max = limits::MAX_CAPTURE_CAP
    )]
    BadCap(u64),
    #[error(
        "the ring buffer size {0} bytes must be a power of two of at least 4096 (--ring-bytes)"
    )]
    BadRing(u32),
    #[error("loading the eBPF programs failed: {0}")]
    Load(String),
    // Not `source`: the message already carries the cause (shortened), and a `source` field
    // would make `{:#}` print it a second time.
    #[error("eBPF program {name}: {}", short(error))]
    Program {
        name: &'static str,
        error: aya::programs::ProgramError,
    },
    #[error("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): {0}")]
    Btf(String),
    #[error("eBPF program {0} is missing from the object")]
    MissingProgram(&'static str),
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, String),
}

/// An error without the verifier's whole log (it can be megabytes): its last lines say why.
fn short(e: &aya::programs::ProgramError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= 12 {
        return text;
    }
    tracing::debug!("{text}");
    format!(
        "{} [...] {}",
        lines[0],
        lines[lines.len() - 10..].join("\n")
    )
}

/// Options of the kernel side.
#[derive(Debug, Clone, Copy)]
pub struct KernelOptions {
    /// Bytes captured per TLS call at most (the rest is flagged truncated).
    pub max_capture_bytes: u64,
    /// Ring buffer size in bytes.
    pub ring_bytes: u32,
    /// Wake the agent only when the unread data crosses a multiple of this (0: for every
    /// record); see `tracer_common::config::WAKE_BYTES`.
    pub wake_bytes: u64,
}

impl KernelOptions {
    /// The default wake-up threshold: a sixteenth of the ring, so a burst wakes the agent long
    /// before the ring fills, while steady traffic is drained by the poll timer.
    pub fn default_wake_bytes(ring_bytes: u32) -> u64 {
        u64::from(ring_bytes) / 16
    }
}

impl Default for KernelOptions {
    fn default() -> Self {
        KernelOptions {
            max_capture_bytes: limits::DEFAULT_CAPTURE_CAP,
            ring_bytes: limits::DEFAULT_RING_BYTES,
            wake_bytes: KernelOptions::default_wake_bytes(limits::DEFAULT_RING_BYTES),
        }
    }
}

/// Kernel counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub ringbuf_lost: u64,
    pub ringbuf_lost_bytes: u64,
    pub no_args: u64,
    pub read_failed: u64,
    pub call_failed: u64,
    pub muted: u64,
    pub records: u64,
    /// Wake-ups forced by the unread data crossing the threshold.
    pub wakeups: u64,
    /// Connections the kernel saw freed (CLOSE records sent).
    pub closes: u64,
    /// Bytes of muted reads (skipped, not copied).
    pub muted_bytes: u64,
}

/// The loaded object: programs loaded (not yet attached) and maps.
pub struct Kernel {
    ebpf: Ebpf,
    /// Every uprobe attached, so they can be detached side by side ([`Kernel::detach_uprobes`]).
    links: Vec<(&'static str, UProbeLinkId)>,
}

impl Kernel {
    pub fn load(opts: KernelOptions) -> Result<Kernel, KernelError> {
        if EBPF_OBJECT.is_empty() {
            return Err(KernelError::NoObject);
        }
        if opts.max_capture_bytes == 0 || opts.max_capture_bytes > limits::MAX_CAPTURE_CAP {
            return Err(KernelError::BadCap(opts.max_capture_bytes));
        }
        if opts.ring_bytes < 4096 || !opts.ring_bytes.is_power_of_two() {
            return Err(KernelError::BadRing(opts.ring_bytes));
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(names::EVENTS, opts.ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| KernelError::Load(e.to_string()))?;
        {
            let map = ebpf
                .map_mut(names::CONFIG)
                .ok_or(KernelError::Map(names::CONFIG, "missing".into()))?;
            let mut cfg: Array<_, u64> =
                Array::try_from(map).map_err(|e| KernelError::Map(names::CONFIG, e.to_string()))?;
            cfg.set(config::MAX_CAPTURE, opts.max_capture_bytes, 0)
                .map_err(|e| KernelError::Map(names::CONFIG, e.to_string()))?;
            cfg.set(config::WAKE_BYTES, opts.wake_bytes, 0)
                .map_err(|e| KernelError::Map(names::CONFIG, e.to_string()))?;
        }
        for name in programs::UPROBES {
            let prog: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or(KernelError::MissingProgram(name))?
                .try_into()
                .map_err(|source| KernelError::Program {
                    name,
                    error: source,
                })?;
            prog.load().map_err(|source| KernelError::Program {
                name,
                error: source,
            })?;
        }
        let btf = Btf::from_sys_fs().map_err(|e| KernelError::Btf(e.to_string()))?;
        for (name, tp) in programs::TRACEPOINTS {
            let prog: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or(KernelError::MissingProgram(name))?
                .try_into()
                .map_err(|source| KernelError::Program {
                    name,
                    error: source,
                })?;
            prog.load(tp, &btf).map_err(|source| KernelError::Program {
                name,
                error: source,
            })?;
            prog.attach().map_err(|source| KernelError::Program {
                name,
                error: source,
            })?;
        }
        Ok(Kernel {
            ebpf,
            links: Vec::new(),
        })
    }

    /// Loads a uprobe program that [`Kernel::load`] leaves out (the benchmark's empty pair).
    pub fn load_uprobe(&mut self, name: &'static str) -> Result<(), KernelError> {
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(name)
            .ok_or(KernelError::MissingProgram(name))?
            .try_into()
            .map_err(|error| KernelError::Program { name, error })?;
        prog.load()
            .map_err(|error| KernelError::Program { name, error })
    }

    /// Attaches one loaded uprobe program (entry or return, as compiled) at file offset
    /// `offset` of the ELF file at `path`, for every process that maps that file.
    pub fn attach_uprobe(
        &mut self,
        program: &'static str,
        offset: u64,
        path: &Path,
    ) -> Result<(), KernelError> {
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(program)
            .ok_or(KernelError::MissingProgram(program))?
            .try_into()
            .map_err(|source| KernelError::Program {
                name: program,
                error: source,
            })?;
        let link = prog
            .attach(
                UProbeAttachLocation::AbsoluteOffset(offset),
                path,
                UProbeScope::AllProcesses,
            )
            .map_err(|source| KernelError::Program {
                name: program,
                error: source,
            })?;
        self.links.push((program, link));
        Ok(())
    }

    /// Detaches every uprobe, side by side. Each detach waits for a kernel RCU grace period
    /// (0.2-0.25 s per link measured on Linux 6.18 here); one after the other, as dropping the
    /// object would, 36 links took 7 s of SIGTERM. Concurrent detaches share grace periods.
    /// Returns how many were detached.
    pub fn detach_uprobes(&mut self) -> usize {
        let mut links = Vec::with_capacity(self.links.len());
        for (name, id) in self.links.drain(..) {
            let prog: Option<&mut UProbe> =
                self.ebpf.program_mut(name).and_then(|p| p.try_into().ok());
            if let Some(link) = prog.and_then(|p| p.take_link(id).ok()) {
                links.push(link);
            }
        }
        const THREADS: usize = 32;
        let n = links.len();
        let per = n.div_ceil(THREADS).max(1);
        std::thread::scope(|s| {
            while !links.is_empty() {
                let part: Vec<_> = links.drain(..per.min(links.len())).collect();
                s.spawn(move || drop(part));
            }
        });
        n
    }

    /// Takes the ring buffer out (for the reader task).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        let map = self
            .ebpf
            .take_map(names::EVENTS)
            .ok_or(KernelError::Map(names::EVENTS, "missing".into()))?;
        RingBuf::try_from(map).map_err(|e| KernelError::Map(names::EVENTS, e.to_string()))
    }

    /// Takes the exec notification ring out (for the reader task).
    pub fn take_execs(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        let map = self
            .ebpf
            .take_map(names::EXECS)
            .ok_or(KernelError::Map(names::EXECS, "missing".into()))?;
        RingBuf::try_from(map).map_err(|e| KernelError::Map(names::EXECS, e.to_string()))
    }

    /// Takes the counters out (for whoever reports them).
    pub fn take_stats(&mut self) -> Result<StatsReader, KernelError> {
        let map = self
            .ebpf
            .take_map(names::STATS)
            .ok_or(KernelError::Map(names::STATS, "missing".into()))?;
        let map = PerCpuArray::try_from(map)
            .map_err(|e| KernelError::Map(names::STATS, e.to_string()))?;
        Ok(StatsReader { map })
    }

    /// Takes the mute map out (for the policy that decides what is not LLM traffic).
    pub fn take_mute(&mut self) -> Result<MuteMap, KernelError> {
        let map = self
            .ebpf
            .take_map(names::MUTED)
            .ok_or(KernelError::Map(names::MUTED, "missing".into()))?;
        let map =
            HashMap::try_from(map).map_err(|e| KernelError::Map(names::MUTED, e.to_string()))?;
        Ok(MuteMap { map })
    }
}

/// Reads the per-CPU kernel counters.
pub struct StatsReader {
    map: PerCpuArray<MapData, u64>,
}

impl StatsReader {
    pub fn read(&self) -> KernelStats {
        let get = |i: u32| -> u64 {
            self.map
                .get(&i, 0)
                .map(|v| v.iter().copied().fold(0u64, u64::wrapping_add))
                .unwrap_or(0)
        };
        KernelStats {
            ringbuf_lost: get(stats::RINGBUF_LOST),
            ringbuf_lost_bytes: get(stats::RINGBUF_LOST_BYTES),
            no_args: get(stats::NO_ARGS),
            read_failed: get(stats::READ_FAILED),
            call_failed: get(stats::CALL_FAILED),
            muted: get(stats::MUTED),
            records: get(stats::RECORDS),
            wakeups: get(stats::WAKEUPS),
            closes: get(stats::CLOSES),
            muted_bytes: get(stats::MUTED_BYTES),
        }
    }
}

/// Responses the probes must not copy (the contract is on `tracer_common::CallArgs::skip`).
pub struct MuteMap {
    map: HashMap<MapData, ConnId, u64>,
}

impl MuteMap {
    /// Mutes the reads of `conn` while its write offset is `write_offset` (the end of a request
    /// that is not an LLM call); the kernel ends the mute itself at the next write.
    pub fn mute(&mut self, pid: u32, conn: u64, write_offset: u64) -> Result<(), KernelError> {
        let key = ConnId { conn, pid, _pad: 0 };
        self.map
            .insert(key, write_offset, 0)
            .map_err(|e| KernelError::Map(names::MUTED, e.to_string()))
    }

    pub fn unmute(&mut self, pid: u32, conn: u64) {
        let key = ConnId { conn, pid, _pad: 0 };
        let _ = self.map.remove(&key);
    }
}
