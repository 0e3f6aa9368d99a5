//! Finding TLS libraries in processes and attaching to each distinct file once.
//!
//! At start: every running process's executable mappings (`/proc/PID/maps`), reached through
//! `/proc/PID/root/...` so files in other mount namespaces (containers) resolve, plus the
//! libraries of the standard directories. After start: each exec'd process is scanned a few
//! times over its first seconds (the dynamic loader maps libraries after exec, python loads
//! libssl at `import ssl`), and everything is rescanned periodically for late `dlopen`s.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use tracing::{debug, info, warn};

use super::gobin::{self, GoBinary};
use super::{
    elf::defined_dynamic_symbols,
    maps::{executable_files, FileId, Mapping},
    targets::{Family, FAMILIES, LIBRARY_DIRS},
};
use crate::capture::ebpf::{programs, Kernel};

/// What can attach a program (the kernel; a fake in tests).
pub trait Attach {
    /// Attaches `program` at file offset `offset` of `path` (the code of `symbol`).
    fn attach(
        &mut self,
        program: &'static str,
        symbol: &str,
        offset: u64,
        path: &Path,
    ) -> Result<(), String>;
}

impl Attach for Kernel {
    fn attach(
        &mut self,
        program: &'static str,
        _symbol: &str,
        offset: u64,
        path: &Path,
    ) -> Result<(), String> {
        self.attach_uprobe(program, offset, path)
            .map_err(|e| format!("{e:#}"))
    }
}

/// A file the probes are attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedTarget {
    pub family: &'static str,
    pub id: FileId,
    /// The path as the process (or the host, for library directories) sees it.
    pub path: String,
    /// The path we opened it by (e.g. `/proc/PID/root/usr/lib/...`).
    pub access_path: PathBuf,
    /// The process it was found in, if found in one.
    pub pid: Option<u32>,
    /// The hooked symbols.
    pub symbols: Vec<&'static str>,
}

/// Counters of discovery work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    pub processes_scanned: u64,
    pub files_examined: u64,
    pub attach_failures: u64,
    pub exec_dropped: u64,
    /// Scans that skipped reading `/proc/PID/maps` because the address space had not changed.
    pub processes_unchanged: u64,
}

#[derive(Debug, Clone)]
enum Verdict {
    NotTls,
    Attached,
    Failed,
}

/// Discovery state: which files were examined, what is attached.
pub struct Discovery<A: Attach> {
    attacher: A,
    seen: HashMap<FileId, Verdict>,
    targets: Arc<Mutex<Vec<AttachedTarget>>>,
    stats: DiscoveryStats,
    proc_root: PathBuf,
    own_pid: u32,
    /// Files under these paths are never attached (`--exclude-path`).
    exclude: Vec<PathBuf>,
    /// The address-space shape of each process at its last maps read (see [`shape`]).
    shapes: HashMap<u32, Shape>,
}

/// A process's virtual memory size in pages (`/proc/PID/statm`, first field). A new executable
/// mapping (a `dlopen`) changes it. Reading `/proc/PID/maps` walks every mapping with a path
/// lookup each; `statm` reads a few counters (`stat` costs more: it sums over every thread). So
/// the periodic rescan reads the maps of a process only when its size changed. An exec, which
/// replaces the whole image, always reads them again ([`Discovery::forget_shape`]); a fork
/// inherits its parent's mappings.
type Shape = u64;

/// The shape from a `statm` line.
fn parse_shape(statm: &str) -> Option<Shape> {
    statm.split_ascii_whitespace().next()?.parse().ok()
}

fn shape(proc_dir: &Path) -> Option<Shape> {
    parse_shape(&fs::read_to_string(proc_dir.join("statm")).ok()?)
}

impl<A: Attach> Discovery<A> {
    /// The attacher (to detach everything at the end).
    pub fn attacher_mut(&mut self) -> &mut A {
        &mut self.attacher
    }

    pub fn new(attacher: A) -> Self {
        Self::with_proc(attacher, PathBuf::from("/proc"))
    }

    /// With another procfs root (tests).
    pub fn with_proc(attacher: A, proc_root: PathBuf) -> Self {
        Discovery {
            attacher,
            seen: HashMap::new(),
            targets: Arc::new(Mutex::new(Vec::new())),
            stats: DiscoveryStats::default(),
            proc_root,
            own_pid: std::process::id(),
            exclude: Vec::new(),
            shapes: HashMap::new(),
        }
    }

    /// Never attach to files under these paths (as the process, or the host, names them).
    pub fn set_exclude(&mut self, prefixes: Vec<PathBuf>) {
        self.exclude = prefixes;
    }

    /// The attached targets, shared (the list grows as discovery finds more).
    pub fn targets(&self) -> Arc<Mutex<Vec<AttachedTarget>>> {
        Arc::clone(&self.targets)
    }

    pub fn targets_snapshot(&self) -> Vec<AttachedTarget> {
        self.targets.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub fn stats(&self) -> &DiscoveryStats {
        &self.stats
    }

    /// Scans every process; returns how many files were newly attached.
    pub fn scan_all(&mut self) -> usize {
        let Ok(dir) = fs::read_dir(&self.proc_root) else {
            warn!("cannot list {}", self.proc_root.display());
            return 0;
        };
        let pids: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let attached = pids.iter().map(|&pid| self.scan_pid(pid)).sum();
        // Forget the processes that are gone (bounds the map by the live processes).
        let live: std::collections::HashSet<u32> = pids.into_iter().collect();
        self.shapes.retain(|pid, _| live.contains(pid));
        attached
    }

    /// The next scan of `pid` reads its maps whatever its shape (it exec'd: a new image).
    pub fn forget_shape(&mut self, pid: u32) {
        self.shapes.remove(&pid);
    }

    /// Scans one process; returns how many files were newly attached. A process that is gone
    /// or unreadable is simply skipped.
    pub fn scan_pid(&mut self, pid: u32) -> usize {
        if pid == self.own_pid {
            return 0;
        }
        let proc_dir = self.proc_root.join(pid.to_string());
        // Read before the maps: a mapping added after this read changes the shape next time.
        let shape = shape(&proc_dir);
        if shape.is_some() && self.shapes.get(&pid) == shape.as_ref() {
            self.stats.processes_unchanged += 1;
            return 0;
        }
        let Ok(maps) = fs::read_to_string(proc_dir.join("maps")) else {
            return 0;
        };
        self.stats.processes_scanned += 1;
        if let Some(shape) = shape {
            self.shapes.insert(pid, shape);
        }
        let mut attached = 0;
        for m in executable_files(&maps) {
            if self.seen.contains_key(&m.id) {
                continue;
            }
            let access = access_path(&proc_dir, &m);
            if self.examine(m.id, &m.path, &access, Some(pid)) {
                attached += 1;
            }
        }
        attached
    }

    /// Looks for the families' libraries in the standard directories (host view).
    pub fn scan_library_dirs(&mut self) -> usize {
        let mut attached = 0;
        for dir in LIBRARY_DIRS {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let wanted = FAMILIES
                    .iter()
                    .any(|f| f.library_prefixes.iter().any(|p| name.starts_with(p)));
                if !wanted {
                    continue;
                }
                let path = entry.path();
                // stat follows symlinks: libssl.so -> libssl.so.3 is one file.
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let id = FileId {
                    major: libc::major(meta.dev()),
                    minor: libc::minor(meta.dev()),
                    inode: meta.ino(),
                };
                if self.seen.contains_key(&id) {
                    continue;
                }
                let shown = fs::canonicalize(&path)
                    .unwrap_or_else(|_| path.clone())
                    .to_string_lossy()
                    .into_owned();
                if self.examine(id, &shown, &path, None) {
                    attached += 1;
                }
            }
        }
        attached
    }

    /// Decides what a file is and attaches to it if it belongs to a family. Returns true when
    /// it was attached now.
    fn examine(&mut self, id: FileId, path: &str, access: &Path, pid: Option<u32>) -> bool {
        self.stats.files_examined += 1;
        if self.exclude.iter().any(|p| Path::new(path).starts_with(p)) {
            debug!("{path}: excluded (--exclude-path)");
            self.seen.insert(id, Verdict::NotTls);
            return false;
        }
        let began = Instant::now();
        let attached = self.examine_families(id, path, access, pid);
        debug!("examined {path} in {} ms", began.elapsed().as_millis());
        attached
    }

    fn examine_families(
        &mut self,
        id: FileId,
        path: &str,
        access: &Path,
        pid: Option<u32>,
    ) -> bool {
        // Every family's symbols in one pass over the file's symbol tables.
        let wanted: Vec<&str> = FAMILIES
            .iter()
            .flat_map(|f| f.hooks.iter().map(|h| h.symbol).chain([f.marker]))
            .collect();
        let found = match defined_dynamic_symbols(access, &wanted) {
            Ok(found) => found,
            Err(e) => {
                debug!("skipping {path} ({}): {e}", access.display());
                // Not remembered: it may be readable on a later scan (a process that died
                // mid-read), and unreadable files are rare.
                return false;
            }
        };
        for family in FAMILIES {
            if !found.contains_key(family.marker) {
                continue;
            }
            let verdict = self.attach_family(family, &found, id, path, access, pid);
            let attached = matches!(verdict, Verdict::Attached);
            self.seen.insert(id, verdict);
            return attached;
        }
        let verdict = match gobin::analyze_path(access) {
            Ok(Some(bin)) => self.attach_go(&bin, id, path, access, pid),
            Ok(None) => Verdict::NotTls,
            Err(e) => {
                debug!("{path}: not analysable as a Go program: {e}");
                Verdict::NotTls
            }
        };
        let attached = matches!(verdict, Verdict::Attached);
        self.seen.insert(id, verdict);
        attached
    }

    /// Go's crypto/tls: entry probes on `(*Conn).Write`/`Read` and an entry-style probe on
    /// every RET instruction of both (never a uretprobe: Go moves stacks).
    fn attach_go(
        &mut self,
        bin: &GoBinary,
        id: FileId,
        path: &str,
        access: &Path,
        pid: Option<u32>,
    ) -> Verdict {
        let (write, read) = match bin.attachable() {
            Ok(f) => f,
            Err(reason) => {
                // `llm-tracer check` lists these; a Go program without crypto/tls is normal.
                debug!("{path}: Go program not hooked: {reason}");
                return Verdict::NotTls;
            }
        };
        // Return points first (see attach_family), then the entries.
        let mut result = Ok(());
        for off in write.ret_offsets.iter().chain(&read.ret_offsets) {
            result = result.and_then(|()| {
                self.attacher
                    .attach(programs::GO_TLS_RET, "RET", *off, access)
            });
        }
        result = result
            .and_then(|()| {
                self.attacher.attach(
                    programs::GO_TLS_WRITE_ENTRY,
                    write.name,
                    write.entry_offset,
                    access,
                )
            })
            .and_then(|()| {
                self.attacher.attach(
                    programs::GO_TLS_READ_ENTRY,
                    read.name,
                    read.entry_offset,
                    access,
                )
            });
        if let Err(e) = result {
            self.stats.attach_failures += 1;
            warn!("{path}: attaching to Go crypto/tls failed: {e}");
            return Verdict::Failed;
        }
        // Optional: without it a Go connection ends at exit, idle expiry or address reuse.
        if let Some(close) = &bin.close {
            if let Err(e) = self.attacher.attach(
                programs::GO_TLS_CLOSE,
                close.name,
                close.entry_offset,
                access,
            ) {
                self.stats.attach_failures += 1;
                warn!("{path}: attaching to {} failed: {e}", close.name);
            }
        }
        info!(
            "attached go probes to {path} ({}, {} RET points{})",
            bin.version_string
                .as_deref()
                .unwrap_or("unknown Go version"),
            write.ret_offsets.len() + read.ret_offsets.len(),
            pid.map(|p| format!(", found in pid {p}"))
                .unwrap_or_default()
        );
        if let Ok(mut t) = self.targets.lock() {
            t.push(AttachedTarget {
                family: "go",
                id,
                path: path.to_string(),
                access_path: access.to_path_buf(),
                pid,
                symbols: if bin.close.is_some() {
                    vec![gobin::TLS_WRITE, gobin::TLS_READ, gobin::TLS_CLOSE]
                } else {
                    vec![gobin::TLS_WRITE, gobin::TLS_READ]
                },
            });
        }
        Verdict::Attached
    }

    fn attach_family(
        &mut self,
        family: &'static Family,
        found: &HashMap<&str, u64>,
        id: FileId,
        path: &str,
        access: &Path,
        pid: Option<u32>,
    ) -> Verdict {
        let mut symbols = Vec::new();
        for hook in family.hooks {
            let Some(&offset) = found.get(hook.symbol) else {
                if hook.required {
                    warn!("{path}: required symbol {} is missing", hook.symbol);
                    self.stats.attach_failures += 1;
                    return Verdict::Failed;
                }
                continue;
            };
            // Return probe first: an entry without its return would stash arguments that
            // nothing consumes; a return without its entry is only counted.
            let result =
                hook.ret.iter().chain(&hook.entry).try_for_each(|program| {
                    self.attacher.attach(program, hook.symbol, offset, access)
                });
            match result {
                Ok(()) => symbols.push(hook.symbol),
                Err(e) => {
                    self.stats.attach_failures += 1;
                    warn!("{path}: attaching to {} failed: {e}", hook.symbol);
                    if hook.required {
                        return Verdict::Failed;
                    }
                }
            }
        }
        info!(
            "attached {} probes to {path} ({} symbols{})",
            family.name,
            symbols.len(),
            pid.map(|p| format!(", found in pid {p}"))
                .unwrap_or_default()
        );
        if let Ok(mut t) = self.targets.lock() {
            t.push(AttachedTarget {
                family: family.name,
                id,
                path: path.to_string(),
                access_path: access.to_path_buf(),
                pid,
                symbols,
            });
        }
        Verdict::Attached
    }
}

/// How to open a mapped file from here. The same path in our own mount namespace when it is
/// the same file (it stays valid after the process exits, and a short-lived process is often
/// gone by the time we attach); else through the process's root (its mount namespace, e.g. a
/// container); for a deleted file, through `map_files` (the exact mapped inode).
fn access_path(proc_dir: &Path, m: &Mapping) -> PathBuf {
    if !m.deleted {
        let host = Path::new(&m.path);
        if let Ok(meta) = fs::metadata(host) {
            let id = FileId {
                major: libc::major(meta.dev()),
                minor: libc::minor(meta.dev()),
                inode: meta.ino(),
            };
            if id == m.id {
                return host.to_path_buf();
            }
        }
        let through_root = proc_dir.join("root").join(m.path.trim_start_matches('/'));
        if through_root.exists() {
            return through_root;
        }
    }
    proc_dir
        .join("map_files")
        .join(format!("{:x}-{:x}", m.start, m.end))
}

/// When an exec'd process is scanned again (after the exec event): the dynamic loader maps
/// libraries within milliseconds; interpreters load TLS modules later.
const EXEC_RESCANS_MS: &[u64] = &[0, 5, 15, 30, 60, 100, 200, 400, 800, 1600, 3200];
/// Most exec'd processes followed at once; more are dropped (counted) and left to the
/// periodic rescan.
const MAX_FOLLOWED: usize = 4096;

/// Runs discovery on its own thread: exec'd pids come in through `exec_rx`; everything is
/// rescanned every `rescan_every`. Ends when `exec_rx` is closed.
pub fn spawn_watcher<A: Attach + Send + 'static>(
    mut discovery: Discovery<A>,
    exec_rx: mpsc::Receiver<u32>,
    rescan_every: Duration,
) -> thread::JoinHandle<Discovery<A>> {
    thread::Builder::new()
        .name("discovery".into())
        .spawn(move || {
            // (due, pid, index into EXEC_RESCANS_MS, exec seen at)
            let mut followed: Vec<(Instant, u32, usize, Instant)> = Vec::new();
            let mut next_full = Instant::now() + rescan_every;
            loop {
                let now = Instant::now();
                let next_due = followed
                    .iter()
                    .map(|f| f.0)
                    .min()
                    .unwrap_or(next_full)
                    .min(next_full);
                match exec_rx.recv_timeout(next_due.saturating_duration_since(now)) {
                    Ok(pid) => {
                        discovery.forget_shape(pid);
                        if followed.len() >= MAX_FOLLOWED {
                            discovery.stats.exec_dropped += 1;
                        } else {
                            let t = Instant::now();
                            followed.push((t, pid, 0, t));
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return discovery,
                }
                let now = Instant::now();
                let mut i = 0;
                while i < followed.len() {
                    let (due, pid, step, exec_at) = followed[i];
                    if due > now {
                        i += 1;
                        continue;
                    }
                    let n = discovery.scan_pid(pid);
                    if n > 0 {
                        debug!(
                            "pid {pid}: {n} new target(s) attached {} ms after exec",
                            exec_at.elapsed().as_millis()
                        );
                    }
                    let gone = !discovery.proc_root.join(pid.to_string()).exists();
                    match EXEC_RESCANS_MS.get(step + 1) {
                        Some(ms) if !gone => {
                            followed[i] =
                                (exec_at + Duration::from_millis(*ms), pid, step + 1, exec_at);
                            i += 1;
                        }
                        _ => {
                            followed.swap_remove(i);
                        }
                    }
                }
                if now >= next_full {
                    discovery.scan_all();
                    next_full = Instant::now() + rescan_every;
                }
            }
        })
        .expect("spawning a thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records attach calls instead of attaching.
    #[derive(Default)]
    struct Fake {
        calls: Vec<(&'static str, String, u64, PathBuf)>,
    }

    impl Attach for Fake {
        fn attach(
            &mut self,
            program: &'static str,
            symbol: &str,
            offset: u64,
            path: &Path,
        ) -> Result<(), String> {
            self.calls
                .push((program, symbol.to_string(), offset, path.to_path_buf()));
            Ok(())
        }
    }

    fn system_libssl() -> Option<PathBuf> {
        LIBRARY_DIRS
            .iter()
            .map(|d| Path::new(d).join("libssl.so.3"))
            .find(|p| p.exists())
    }

    #[test]
    fn statm_shape_is_the_virtual_size() {
        assert_eq!(parse_shape("4869 1024 512 100 0 900 0\n"), Some(4869));
        assert_eq!(parse_shape(""), None);
        assert_eq!(parse_shape("garbage 1 2"), None);
    }

    #[test]
    fn maps_are_read_again_only_when_the_address_space_changed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("4242");
        fs::create_dir_all(&dir).unwrap();
        let set_size = |pages: u64| {
            fs::write(dir.join("statm"), format!("{pages} 300 200 10 0 500 0\n")).unwrap()
        };
        set_size(5000);
        // Nothing executable: the scan reads the maps and examines no file.
        fs::write(
            dir.join("maps"),
            "00400000-00452000 r--p 00000000 08:02 173521 /usr/bin/app\n",
        )
        .unwrap();
        let mut d = Discovery::with_proc(Fake::default(), root.path().to_path_buf());
        let scanned =
            |d: &Discovery<Fake>| (d.stats().processes_scanned, d.stats().processes_unchanged);
        d.scan_pid(4242);
        assert_eq!(scanned(&d), (1, 0));
        d.scan_pid(4242);
        assert_eq!(scanned(&d), (1, 1), "same shape: maps not read");
        set_size(9000); // a dlopen grew the address space
        d.scan_pid(4242);
        assert_eq!(scanned(&d), (2, 1));
        d.forget_shape(4242); // it exec'd
        d.scan_pid(4242);
        assert_eq!(scanned(&d), (3, 1));
        d.scan_pid(4242);
        assert_eq!(scanned(&d), (3, 2));
        // Unreadable statm: the maps are read every time.
        fs::remove_file(dir.join("statm")).unwrap();
        d.scan_pid(4242);
        d.scan_pid(4242);
        assert_eq!(scanned(&d), (5, 2));
        // The process is gone: a full scan forgets it.
        set_size(9000);
        d.scan_pid(4242);
        assert_eq!(d.shapes.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
        d.scan_all();
        assert!(d.shapes.is_empty());
    }

    #[test]
    fn attaches_each_libssl_once_with_all_four_hooks() {
        let Some(libssl) = system_libssl() else {
            eprintln!("SKIPPED: no libssl.so.3 on this machine");
            return;
        };
        let mut d = Discovery::new(Fake::default());
        let n = d.scan_library_dirs();
        assert!(n >= 1, "libssl.so.3 at {} not attached", libssl.display());
        let again = d.scan_library_dirs();
        assert_eq!(again, 0, "no file is attached twice");
        let targets = d.targets_snapshot();
        let t = targets
            .iter()
            .find(|t| t.path.ends_with("libssl.so.3"))
            .unwrap();
        assert_eq!(t.family, "openssl");
        assert_eq!(
            t.symbols,
            [
                "SSL_write",
                "SSL_read",
                "SSL_write_ex",
                "SSL_read_ex",
                "SSL_free"
            ]
        );
        // (return + entry) per hooked symbol of every attached file; one program for the
        // entry-only (free/close) and return-only (SSL_ImportFD) hooks.
        let one_program = ["SSL_free", "gnutls_deinit", "PR_Close", "SSL_ImportFD"];
        let hooks: usize = targets
            .iter()
            .flat_map(|t| t.symbols.iter())
            .map(|s| if one_program.contains(s) { 1 } else { 2 })
            .sum();
        assert_eq!(d.attacher.calls.len(), hooks);
        assert!(d.attacher.calls.iter().any(|c| c.0 == "ssl_free_entry"));
        assert!(d.attacher.calls.iter().any(|c| c.0 == "ssl_read_ex_entry"));
        // Entry and return of one symbol go to the same, non-zero file offset.
        let offsets: Vec<u64> = d
            .attacher
            .calls
            .iter()
            .filter(|c| c.3 == t.access_path)
            .map(|c| c.2)
            .collect();
        assert!(offsets.iter().all(|&o| o > 0));
        assert_eq!(offsets[0], offsets[1]);
        assert_ne!(offsets[0], offsets[2]);
    }

    #[test]
    fn attaches_nss_import_and_the_nspr_io_calls() {
        let dir = LIBRARY_DIRS
            .iter()
            .find(|d| Path::new(d).join("libnspr4.so").exists());
        assert!(
            dir.is_some(),
            "TEST CANNOT RUN: libnspr4.so is missing; install libnss3 (cargo xtask setup)"
        );
        let mut d = Discovery::new(Fake::default());
        d.scan_library_dirs();
        assert!(
            !d.targets_snapshot()
                .iter()
                .any(|t| t.family == "nss" || t.family == "nspr"),
            "NSS is attached when a process maps it, not ahead"
        );
        // A process that maps NSS.
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import ctypes, sys; ctypes.CDLL('libnspr4.so'); ctypes.CDLL('libssl3.so'); \
                 sys.stdout.write('up\\n'); sys.stdout.flush(); sys.stdin.read()",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        use std::io::BufRead as _;
        let _ = std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line);
        let n = d.scan_pid(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(line.trim(), "up");
        assert!(n >= 2, "libssl3 and libnspr4 attached");
        let targets = d.targets_snapshot();
        let nss = targets.iter().find(|t| t.family == "nss").expect("libssl3");
        let nspr = targets
            .iter()
            .find(|t| t.family == "nspr")
            .expect("libnspr4");
        assert!(nss.path.ends_with("libssl3.so"), "{}", nss.path);
        assert!(nspr.path.ends_with("libnspr4.so"), "{}", nspr.path);
        assert_eq!(nss.symbols, ["SSL_ImportFD"]);
        assert_eq!(
            nspr.symbols,
            ["PR_Close", "PR_Write", "PR_Read", "PR_Send", "PR_Recv"]
        );
        let progs = |t: &AttachedTarget| -> Vec<(&'static str, String)> {
            d.attacher
                .calls
                .iter()
                .filter(|c| c.3 == t.access_path)
                .map(|c| (c.0, c.1.clone()))
                .collect()
        };
        assert_eq!(
            progs(nss),
            [(programs::NSS_IMPORT_FD_RETURN, "SSL_ImportFD".to_string())]
        );
        let nspr_calls = progs(nspr);
        let of = |sym: &str| -> Vec<&'static str> {
            nspr_calls
                .iter()
                .filter(|c| c.1 == sym)
                .map(|c| c.0)
                .collect()
        };
        assert_eq!(of("PR_Close"), [programs::NSS_CLOSE_ENTRY]);
        assert_eq!(
            of("PR_Write"),
            [programs::NSS_RW_RETURN, programs::NSS_WRITE_ENTRY]
        );
        assert_eq!(
            of("PR_Recv"),
            [programs::NSS_RW_RETURN, programs::NSS_READ_ENTRY]
        );
        // NSS's libssl3 exports SSL_* names but is not OpenSSL.
        assert!(!targets
            .iter()
            .any(|t| t.family == "openssl" && t.path.ends_with("libssl3.so")));
    }

    #[test]
    fn excluded_paths_are_never_attached() {
        let Some(libssl) = system_libssl() else {
            eprintln!("SKIPPED: no libssl.so.3 on this machine");
            return;
        };
        let mut d = Discovery::new(Fake::default());
        // Every standard library directory excluded: nothing is attached, the files are
        // remembered as not to be traced.
        d.set_exclude(LIBRARY_DIRS.iter().map(PathBuf::from).collect());
        assert_eq!(d.scan_library_dirs(), 0, "{} attached", libssl.display());
        assert!(d.attacher.calls.is_empty());
        assert!(d.targets_snapshot().is_empty());
        assert!(d.stats().files_examined >= 1);
        // A prefix that is not a whole path component does not exclude.
        let mut d = Discovery::new(Fake::default());
        d.set_exclude(vec![PathBuf::from("/us")]);
        assert!(d.scan_library_dirs() >= 1);
    }

    #[test]
    fn finds_libssl_in_a_running_process() {
        if system_libssl().is_none() {
            eprintln!("SKIPPED: no libssl.so.3 on this machine");
            return;
        }
        // A child process that maps libssl: python with the ssl module, if present.
        let Ok(mut child) = std::process::Command::new("python3")
            .args([
                "-c",
                "import ssl, sys; sys.stdout.write('up\\n'); sys.stdout.flush(); sys.stdin.read()",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("SKIPPED: no python3");
            return;
        };
        let mut line = String::new();
        use std::io::BufRead as _;
        let _ = std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line);
        let mut d = Discovery::new(Fake::default());
        let n = d.scan_pid(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(line.trim(), "up");
        assert!(n >= 1, "no TLS library found in python3");
        let t = d.targets_snapshot();
        // Same mount namespace: the host path is used (it outlives the process).
        assert_eq!(t[0].access_path, Path::new(&t[0].path));
        assert_eq!(t[0].pid, Some(child.id()));
    }

    #[test]
    fn attaches_go_probes_at_entries_and_every_ret_of_a_running_go_client() {
        let go = Path::new("/usr/bin/go");
        assert!(
            go.exists(),
            "TEST CANNOT RUN: /usr/bin/go is missing; install golang-go (cargo xtask setup)"
        );
        let dir = std::env::temp_dir().join(format!("disc-go-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("c.go");
        std::fs::write(
            &src,
            "package main\nimport (\"crypto/tls\"; \"net\"; \"os\")\nfunc main() {\n\
             c, err := net.Dial(\"tcp\", os.Args[1]); if err != nil { os.Exit(2) }\n\
             t := tls.Client(c, &tls.Config{InsecureSkipVerify: true}); t.Write([]byte(\"x\"))\n\
             t.Read(make([]byte, 9)); t.Close()\n}\n",
        )
        .unwrap();
        let bin = dir.join("c");
        let status = std::process::Command::new(go)
            .args(["build", "-ldflags=-s -w", "-o"])
            .arg(&bin)
            .arg(&src)
            .env(
                "GOCACHE",
                std::env::temp_dir().join("llm-tracer-test-gocache"),
            )
            .env("HOME", &dir)
            .env("GO111MODULE", "off")
            .status()
            .unwrap();
        assert!(status.success());
        // A listener that never answers: the client blocks in the handshake.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut child = std::process::Command::new(&bin)
            .arg(silent.local_addr().unwrap().to_string())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut d = Discovery::new(Fake::default());
        let n = d.scan_pid(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(n, 1, "the Go executable is attached");
        let t = d.targets_snapshot();
        assert_eq!(t[0].family, "go");
        assert_eq!(
            t[0].symbols,
            [gobin::TLS_WRITE, gobin::TLS_READ, gobin::TLS_CLOSE]
        );
        let calls = &d.attacher.calls;
        let rets = calls.iter().filter(|c| c.0 == programs::GO_TLS_RET).count();
        assert!(rets >= 2, "{calls:?}");
        // Returns first, then the entries, then Close's entry.
        assert_eq!(calls.len(), rets + 3, "{calls:?}");
        assert_eq!(calls[calls.len() - 3].0, programs::GO_TLS_WRITE_ENTRY);
        assert_eq!(calls[calls.len() - 2].0, programs::GO_TLS_READ_ENTRY);
        assert_eq!(calls[calls.len() - 1].0, programs::GO_TLS_CLOSE);
    }
}
