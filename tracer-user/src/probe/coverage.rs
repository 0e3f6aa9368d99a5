//! The coverage report: every running process, its TLS stack(s), and whether the probes see it.
//! `llm-tracer check` prints it; the agent can keep a [`Scanner`] to report new processes.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::tlsstack::{self, ExeTls, MappedLib, StackVerdict, Support};

/// One process in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessTls {
    pub pid: u32,
    pub comm: String,
    /// The executable's path as the process sees it (`/proc/PID/exe`).
    pub exe: String,
    /// Empty when no TLS library or runtime was recognised.
    pub stacks: Vec<StackVerdict>,
}

impl ProcessTls {
    /// `None`: no TLS seen. `Some(true)`: every stack is covered.
    pub fn covered(&self) -> Option<bool> {
        (!self.stacks.is_empty()).then(|| self.stacks.iter().all(|s| s.covered))
    }

    /// The first reason a stack is not covered.
    pub fn reason(&self) -> Option<&str> {
        self.stacks.iter().find_map(|s| s.reason.as_deref())
    }
}

/// File identity, so a binary shared by many processes is analysed once.
type FileId = (u64, u64);

/// Scans processes under a procfs root, caching per-file analysis.
#[derive(Debug)]
pub struct Scanner {
    proc_root: PathBuf,
    support: Support,
    exes: HashMap<FileId, Arc<ExeTls>>,
    lib_versions: HashMap<FileId, Option<String>>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new("/proc", Support::CURRENT)
    }
}

impl Scanner {
    pub fn new(proc_root: impl Into<PathBuf>, support: Support) -> Self {
        Self {
            proc_root: proc_root.into(),
            support,
            exes: HashMap::new(),
            lib_versions: HashMap::new(),
        }
    }

    /// Every user-space process (kernel threads and processes that vanish mid-scan are
    /// skipped), sorted by pid.
    pub fn scan_all(&mut self) -> Vec<ProcessTls> {
        let mut pids: Vec<u32> = std::fs::read_dir(&self.proc_root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        pids.into_iter().filter_map(|p| self.process(p)).collect()
    }

    /// One process, or `None` if it is a kernel thread, gone, or unreadable.
    pub fn process(&mut self, pid: u32) -> Option<ProcessTls> {
        let dir = self.proc_root.join(pid.to_string());
        let exe_link = dir.join("exe");
        let exe = std::fs::read_link(&exe_link).ok()?;
        let comm = std::fs::read_to_string(dir.join("comm"))
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default();
        let maps = std::fs::read_to_string(dir.join("maps")).ok()?;

        // Opening /proc/PID/exe reaches the file even inside another mount namespace or after
        // it was deleted on disk.
        let exe_tls = self.exe_tls(&exe_link).unwrap_or_default();
        let libs = self.mapped_libs(&dir, &maps);
        let exe_str = exe.to_string_lossy().into_owned();
        Some(ProcessTls {
            pid,
            comm,
            stacks: tlsstack::classify(&exe_str, &exe_tls, &libs, self.support),
            exe: exe_str,
        })
    }

    fn exe_tls(&mut self, exe: &Path) -> Option<Arc<ExeTls>> {
        let meta = std::fs::metadata(exe).ok()?;
        let id = (meta.dev(), meta.ino());
        if let Some(hit) = self.exes.get(&id) {
            return Some(hit.clone());
        }
        let file = std::fs::File::open(exe).ok()?;
        // SAFETY: read-only map of an executable; see gobin::analyze_path.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        // Every page of the file is read (marker searches): drop each window's pages from the
        // agent's resident set once searched, or a 200 MB executable makes a 200 MB RSS peak.
        let tls = Arc::new(tlsstack::analyze_exe_windowed(
            &map,
            SCAN_WINDOW,
            |offset, len| {
                // SAFETY: a read-only shared file mapping: MADV_DONTNEED only unmaps the pages,
                // a later read faults them back in from the page cache with the same bytes.
                let _ = unsafe {
                    map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
                };
            },
        ));
        self.exes.insert(id, tls.clone());
        Some(tls)
    }

    fn mapped_libs(&mut self, dir: &Path, maps: &str) -> Vec<MappedLib> {
        let mut out: Vec<MappedLib> = Vec::new();
        for path in map_paths(maps) {
            let Some(kind) = tlsstack::lib_kind(path) else {
                continue;
            };
            if out.iter().any(|l| l.path == path) {
                continue;
            }
            // The library as the agent can open it, inside the process's mount namespace.
            let seen = dir.join("root").join(path.trim_start_matches('/'));
            let version = match std::fs::metadata(&seen) {
                Ok(m) => self
                    .lib_versions
                    .entry((m.dev(), m.ino()))
                    .or_insert_with(|| tlsstack::lib_version(kind, path, &seen))
                    .clone(),
                Err(_) => tlsstack::lib_version(kind, path, Path::new("")),
            };
            out.push(MappedLib {
                kind,
                path: path.to_owned(),
                version,
            });
        }
        out
    }
}

/// Bytes of an executable searched at a time by the coverage scan (a multiple of the page size).
const SCAN_WINDOW: usize = 4 << 20;

/// The file paths in a `/proc/PID/maps` text (sixth field onwards; may contain spaces).
pub fn map_paths(maps: &str) -> impl Iterator<Item = &str> {
    maps.lines().filter_map(|line| {
        let mut rest = line;
        for _ in 0..5 {
            rest = rest.trim_start();
            rest = &rest[rest.find(' ')?..];
        }
        let path = rest.trim();
        path.starts_with('/').then_some(path)
    })
}

/// The agent's running view of coverage: the latest verdict per process, and which uncovered
/// processes are new since the last update (to log each once, and to export as a metric).
#[derive(Debug, Default)]
pub struct CoverageTracker {
    current: Vec<ProcessTls>,
    /// (pid, exe) of processes already reported as uncovered; a pid reused by another
    /// program is reported again.
    reported: std::collections::HashSet<(u32, String)>,
}

impl CoverageTracker {
    /// Replaces the view with a new scan; returns the processes that are uncovered and were
    /// not reported before. Processes that are gone are forgotten.
    pub fn update(&mut self, scan: Vec<ProcessTls>) -> Vec<ProcessTls> {
        let alive: std::collections::HashSet<(u32, String)> =
            scan.iter().map(|p| (p.pid, p.exe.clone())).collect();
        self.reported.retain(|k| alive.contains(k));
        let mut new = Vec::new();
        for p in &scan {
            if p.covered() == Some(false) && self.reported.insert((p.pid, p.exe.clone())) {
                new.push(p.clone());
            }
        }
        self.current = scan;
        new
    }

    /// The latest verdict of every process that has a TLS stack.
    pub fn with_tls(&self) -> impl Iterator<Item = &ProcessTls> {
        self.current.iter().filter(|p| p.covered().is_some())
    }
}

/// The latest coverage verdicts, shared with whoever exports them (a self-metric per process).
pub type SharedCoverage = std::sync::Arc<std::sync::Mutex<Vec<ProcessTls>>>;

/// Rescans every process every `every` on a background thread, logs each newly seen
/// uncovered process once (so "no spans" can be told apart from "no LLM calls"), and keeps the
/// latest verdicts in `shared` (processes that exit drop out at the next scan). The thread lives
/// as long as the process.
pub fn spawn_coverage_watch(
    every: std::time::Duration,
    shared: SharedCoverage,
) -> std::io::Result<()> {
    let own_pid = std::process::id();
    std::thread::Builder::new()
        .name("coverage".into())
        .spawn(move || {
            let mut scanner = Scanner::default();
            let mut tracker = CoverageTracker::default();
            loop {
                let scan: Vec<ProcessTls> = scanner
                    .scan_all()
                    .into_iter()
                    .filter(|p| p.pid != own_pid)
                    .collect();
                for p in tracker.update(scan) {
                    tracing::warn!(
                        "pid {} ({}, {}): TLS not covered: {}",
                        p.pid,
                        p.comm,
                        p.exe,
                        p.reason().unwrap_or("unknown")
                    );
                }
                if let Ok(mut s) = shared.lock() {
                    *s = tracker.with_tls().cloned().collect();
                }
                std::thread::sleep(every);
            }
        })?;
    Ok(())
}

/// The report as text: one line per process with TLS, then a summary.
pub fn render_text(procs: &[ProcessTls], all: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7}  {:<15}  {:<8}  {:<40}  DETAIL",
        "PID", "COMM", "COVERED", "TLS STACK"
    );
    let (mut with_tls, mut covered) = (0, 0);
    for p in procs {
        let state = match p.covered() {
            None if !all => continue,
            None => "-",
            Some(true) => "yes",
            Some(false) => "NO",
        };
        if let Some(c) = p.covered() {
            with_tls += 1;
            covered += usize::from(c);
        }
        let stacks = p
            .stacks
            .iter()
            .map(|s| match &s.version {
                Some(v) => format!("{} {v}", s.stack.label()),
                None => s.stack.label().to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" + ");
        let detail = p.reason().unwrap_or(&p.exe);
        let _ = writeln!(
            out,
            "{:>7}  {:<15}  {:<8}  {:<40}  {}",
            p.pid,
            p.comm,
            state,
            if stacks.is_empty() { "none" } else { &stacks },
            detail
        );
    }
    let _ = writeln!(
        out,
        "{with_tls} processes with TLS: {covered} covered, {} not covered",
        with_tls - covered
    );
    out
}

/// The report as JSON: an array of processes, each with its stacks and an overall `covered`
/// (`null` when no TLS stack was seen).
pub fn render_json(procs: &[ProcessTls], all: bool) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        #[serde(flatten)]
        process: &'a ProcessTls,
        covered: Option<bool>,
    }
    let rows: Vec<Row> = procs
        .iter()
        .filter(|p| all || p.covered().is_some())
        .map(|process| Row {
            process,
            covered: process.covered(),
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_paths_reads_the_sixth_field_with_spaces() {
        let maps = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 123 /usr/bin/python3.11
7f0000000000-7f0000001000 r-xp 00001000 fd:01 456                        /usr/lib/x86_64-linux-gnu/libssl.so.3
7f0000002000-7f0000003000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0                          [stack]
7f0000004000-7f0000005000 r--p 00000000 fd:01 789 /opt/my app/lib x.so (deleted)
";
        let got: Vec<_> = map_paths(maps).collect();
        assert_eq!(
            got,
            [
                "/usr/bin/python3.11",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "/opt/my app/lib x.so (deleted)"
            ]
        );
        assert_eq!(map_paths("garbage\n\n1 2 3").count(), 0);
    }

    fn proc(pid: u32, exe: &str, covered: bool) -> ProcessTls {
        ProcessTls {
            pid,
            comm: "x".into(),
            exe: exe.into(),
            stacks: vec![StackVerdict {
                stack: tlsstack::StackKind::Rustls,
                version: None,
                path: exe.into(),
                covered,
                reason: (!covered).then(|| "rustls: not supported".into()),
            }],
        }
    }

    #[test]
    fn tracker_reports_each_uncovered_process_once() {
        let mut t = CoverageTracker::default();
        let new = t.update(vec![proc(1, "/a", false), proc(2, "/b", true)]);
        assert_eq!(new.iter().map(|p| p.pid).collect::<Vec<_>>(), [1]);
        assert!(t.update(vec![proc(1, "/a", false)]).is_empty());
        // pid 1 now runs another program: reported again.
        assert_eq!(t.update(vec![proc(1, "/c", false)]).len(), 1);
        // Gone, then back: reported again.
        t.update(vec![]);
        assert_eq!(t.update(vec![proc(1, "/c", false)]).len(), 1);
        assert_eq!(t.with_tls().count(), 1);
    }

    #[test]
    fn text_report_lists_tls_processes_and_counts() {
        let text = render_text(
            &[proc(7, "/usr/bin/codex", false), proc(8, "/x", true)],
            false,
        );
        assert!(text.contains("rustls: not supported"), "{text}");
        assert!(
            text.contains("2 processes with TLS: 1 covered, 1 not covered"),
            "{text}"
        );
    }

    #[test]
    fn scanning_this_test_process_never_fails() {
        let mut s = Scanner::default();
        let me = s.process(std::process::id()).expect("own process readable");
        assert_eq!(me.pid, std::process::id());
        assert_eq!(
            Path::new(&me.exe),
            std::env::current_exe().unwrap().as_path()
        );
        // A pid that cannot exist.
        assert!(s.process(u32::MAX).is_none());
    }
}
