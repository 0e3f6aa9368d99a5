//! Who made a call: process identity read from `/proc`, turned into an OTel resource.
//!
//! Read as early as possible (a client such as `curl` often exits before its call is exported)
//! and cached per pid; a reused pid is told apart by the process start time.

use std::collections::{HashMap, VecDeque};
use std::ffi::CStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracer_core::call::Origin;

/// Bytes read at most from `/proc/PID/environ` (it can be large; we want two variables).
const ENVIRON_CAP: u64 = 512 * 1024;
/// Bytes read at most from `/proc/PID/cmdline`.
const CMDLINE_CAP: u64 = 64 * 1024;
/// Processes remembered at most.
const CACHE_CAP: usize = 8192;
/// How often a cached pid is checked for reuse.
const REVALIDATE: Duration = Duration::from_secs(1);
/// How long a containerised process whose pod is not (yet) in the pod index is looked up again
/// (at each revalidation): the watch learns of a new pod a moment after its first container
/// starts, and a process traced in that moment would otherwise keep no `k8s.*` attributes.
const POD_RETRY_FOR: Duration = Duration::from_secs(30);

/// The identity of a traced process, as exported (`process.*`, `service.name`, `container.id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    pub pid: u32,
    /// `service.name`: the process's own `OTEL_SERVICE_NAME`, else `service.name` from its
    /// `OTEL_RESOURCE_ATTRIBUTES`, else its executable name, else its `comm`.
    pub service_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable_path: Option<String>,
    /// Arguments joined by spaces, secrets replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The process's own `OTEL_RESOURCE_ATTRIBUTES` (and attributes added by enrichers such as
    /// Kubernetes metadata), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
    /// Start time in clock ticks after boot (`/proc/PID/stat` field 22): tells a reused pid apart.
    #[serde(skip)]
    pub start_ticks: Option<u64>,
}

impl ProcessInfo {
    /// What we know when `/proc/PID` is gone already: the captured pid and `comm`.
    pub fn from_origin(origin: &Origin) -> Self {
        let name = if origin.comm.is_empty() {
            "unknown_service".to_string()
        } else {
            origin.comm.clone()
        };
        ProcessInfo {
            pid: origin.pid,
            service_name: name,
            ..Default::default()
        }
    }

    /// A stable key for this process incarnation (pid + start time).
    pub fn key(&self) -> u64 {
        (u64::from(self.pid) << 32) ^ self.start_ticks.unwrap_or(0)
    }
}

/// Reads process facts under a `/proc` root (a fake tree in tests).
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs {
            root: PathBuf::from("/proc"),
        }
    }
}

impl ProcFs {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        ProcFs { root: root.into() }
    }

    fn path(&self, pid: u32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    fn read_capped(&self, path: &Path, cap: u64) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        fs::File::open(path)
            .ok()?
            .take(cap)
            .read_to_end(&mut buf)
            .ok()?;
        Some(buf)
    }

    /// The machine's host name.
    pub fn host_name(&self) -> Option<String> {
        let text = fs::read_to_string(self.root.join("sys/kernel/hostname")).ok()?;
        let name = text.trim();
        (!name.is_empty()).then(|| name.to_string())
    }

    pub fn start_ticks(&self, pid: u32) -> Option<u64> {
        let stat = fs::read_to_string(self.path(pid, "stat")).ok()?;
        parse_start_ticks(&stat)
    }

    /// Everything about `pid` that `/proc` still tells; `None` when the process is gone.
    pub fn read(&self, origin: &Origin) -> Option<ProcessInfo> {
        let pid = origin.pid;
        let start_ticks = Some(self.start_ticks(pid)?);
        let executable_path = fs::read_link(self.path(pid, "exe")).ok().map(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_suffix(" (deleted)")
                .map(str::to_string)
                .unwrap_or(s)
        });
        let executable_name = executable_path
            .as_deref()
            .and_then(|p| Path::new(p).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .or_else(|| (!origin.comm.is_empty()).then(|| origin.comm.clone()));
        let command_line = self
            .read_capped(&self.path(pid, "cmdline"), CMDLINE_CAP)
            .map(|raw| split_nul(&raw))
            .filter(|args| !args.is_empty())
            .map(|args| tracer_core::redact::redact_command_line(&args).join(" "));
        let owner = fs::read_to_string(self.path(pid, "status"))
            .ok()
            .and_then(|s| parse_real_uid(&s))
            .and_then(user_name);
        let container_id = fs::read_to_string(self.path(pid, "cgroup"))
            .ok()
            .and_then(|s| crate::k8s::container_id_from_cgroup(&s));
        let env = self
            .read_capped(&self.path(pid, "environ"), ENVIRON_CAP)
            .map(|raw| OtelEnv::from_environ(&raw))
            .unwrap_or_default();
        let service_name = env
            .service_name
            .clone()
            .or_else(|| {
                env.resource_attributes
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .or_else(|| executable_name.clone())
            .unwrap_or_else(|| ProcessInfo::from_origin(origin).service_name);
        Some(ProcessInfo {
            pid,
            service_name,
            executable_name,
            executable_path,
            command_line,
            owner,
            container_id,
            attributes: env.resource_attributes,
            start_ticks,
        })
    }
}

/// The two variables we take from a traced process's environment. Nothing else is kept: the
/// environment is full of secrets.
#[derive(Debug, Default)]
struct OtelEnv {
    service_name: Option<String>,
    resource_attributes: Vec<(String, String)>,
}

impl OtelEnv {
    fn from_environ(raw: &[u8]) -> Self {
        let mut env = OtelEnv::default();
        for var in raw.split(|&b| b == 0) {
            if let Some(v) = var.strip_prefix(b"OTEL_SERVICE_NAME=") {
                let v = String::from_utf8_lossy(v).trim().to_string();
                if !v.is_empty() {
                    env.service_name = Some(v);
                }
            } else if let Some(v) = var.strip_prefix(b"OTEL_RESOURCE_ATTRIBUTES=") {
                env.resource_attributes = parse_resource_attributes(&String::from_utf8_lossy(v));
            }
        }
        env
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES` syntax: `key=value,key2=value2`, values percent-encoded. Malformed
/// members are skipped (the spec says to ignore them), never fatal.
pub fn parse_resource_attributes(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|member| {
            let (k, v) = member.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            let v = percent_encoding::percent_decode_str(v.trim())
                .decode_utf8()
                .ok()?
                .into_owned();
            Some((k.to_string(), v))
        })
        .collect()
}

fn split_nul(raw: &[u8]) -> Vec<String> {
    raw.split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Field 22 of `/proc/PID/stat`. `comm` (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After `)`: field 3 (state) is the first; field 22 is the 20th.
    after.split_whitespace().nth(19)?.parse().ok()
}

fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The user name of `uid` (NSS lookup), or the number when it has no name.
fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids); getpwuid_r fills it.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the stated length; on success `result` points at `pwd`,
    // whose string fields point into `buf`, which outlives their use below.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: pw_name is a NUL-terminated string inside `buf` (checked non-null above).
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
    Some(uid.to_string())
}

#[derive(Debug)]
struct Entry {
    info: Arc<ProcessInfo>,
    /// When the pid was last checked for reuse.
    checked: Instant,
    /// Until when a missing pod lookup is retried (a containerised process whose pod the
    /// index did not know yet).
    pod_retry_until: Option<Instant>,
}

enum PodAnswer {
    Found(Arc<crate::k8s::PodMeta>),
    /// In a container, but its pod is not in the index (yet).
    NotYet,
    /// No lookup configured, the process is gone, or it runs outside any container.
    NotInAPod,
}

fn pod_of(procfs: &ProcFs, pods: Option<&crate::k8s::PodLookup>, pid: u32) -> PodAnswer {
    let Some(pods) = pods else {
        return PodAnswer::NotInAPod;
    };
    let Ok(cgroup) = fs::read_to_string(procfs.path(pid, "cgroup")) else {
        return PodAnswer::NotInAPod;
    };
    match pods.lookup_now(&cgroup) {
        Some(pod) => PodAnswer::Found(pod),
        None if crate::k8s::container_id_from_cgroup(&cgroup).is_some() => PodAnswer::NotYet,
        None => PodAnswer::NotInAPod,
    }
}

fn add_pod_attributes(info: &mut ProcessInfo, pod: &crate::k8s::PodMeta) {
    let attrs = pod.attributes().into_iter();
    info.attributes
        .extend(attrs.map(|(k, v)| (k.to_string(), v)));
}

/// Process facts cached per pid.
#[derive(Debug)]
pub struct ProcessCache {
    procfs: ProcFs,
    /// pid -> facts.
    entries: HashMap<u32, Entry>,
    order: VecDeque<u32>,
    revalidate: Duration,
    /// Kubernetes pod metadata (`k8s.*` attributes), when running in a cluster.
    pods: Option<crate::k8s::PodLookup>,
}

impl Default for ProcessCache {
    fn default() -> Self {
        Self::new(ProcFs::default())
    }
}

impl ProcessCache {
    pub fn new(procfs: ProcFs) -> Self {
        ProcessCache {
            procfs,
            entries: HashMap::new(),
            order: VecDeque::new(),
            revalidate: REVALIDATE,
            pods: None,
        }
    }

    /// How often a cached pid is checked for reuse by a new process (default 1 s; a stat read
    /// per call would cost more than the rest of the export edge).
    pub fn with_revalidate_interval(mut self, every: Duration) -> Self {
        self.revalidate = every;
        self
    }

    /// Adds the `k8s.*` attributes of each process's pod (from `crate::k8s::start`).
    pub fn set_pod_lookup(&mut self, pods: crate::k8s::PodLookup) {
        self.pods = Some(pods);
    }

    pub fn procfs(&self) -> &ProcFs {
        &self.procfs
    }

    /// Read a process as soon as it is seen (first captured event of the pid), before it can
    /// exit. A map lookup when the pid is known (call it for every event); a reused pid is
    /// noticed by [`ProcessCache::get`], at export.
    pub fn observe(&mut self, origin: &Origin) {
        if !self.entries.contains_key(&origin.pid) {
            self.get(origin);
        }
    }

    /// The process behind `origin`: cached, re-read when the pid was reused, or as much as the
    /// capture tells when the process is gone and was never read.
    pub fn get(&mut self, origin: &Origin) -> Arc<ProcessInfo> {
        if let Some(e) = self.entries.get_mut(&origin.pid) {
            if e.checked.elapsed() < self.revalidate {
                return e.info.clone();
            }
            match self.procfs.start_ticks(origin.pid) {
                // Still the same process, or gone: the cached facts are the best we have.
                Some(t) if Some(t) == e.info.start_ticks => {
                    let now = Instant::now();
                    e.checked = now;
                    if let Some(until) = e.pod_retry_until {
                        match pod_of(&self.procfs, self.pods.as_ref(), origin.pid) {
                            PodAnswer::Found(pod) => {
                                let mut info = (*e.info).clone();
                                add_pod_attributes(&mut info, &pod);
                                e.info = Arc::new(info);
                                e.pod_retry_until = None;
                            }
                            _ if now >= until => e.pod_retry_until = None,
                            _ => {}
                        }
                    }
                    return e.info.clone();
                }
                None => return e.info.clone(),
                // A new process reused the pid.
                Some(_) => {}
            }
        }
        let mut info = self
            .procfs
            .read(origin)
            .unwrap_or_else(|| ProcessInfo::from_origin(origin));
        let now = Instant::now();
        let pod_retry_until = match pod_of(&self.procfs, self.pods.as_ref(), origin.pid) {
            PodAnswer::Found(pod) => {
                add_pod_attributes(&mut info, &pod);
                None
            }
            PodAnswer::NotYet => Some(now + POD_RETRY_FOR),
            PodAnswer::NotInAPod => None,
        };
        let info = Arc::new(info);
        let entry = Entry {
            info: info.clone(),
            checked: now,
            pod_retry_until,
        };
        if self.entries.insert(origin.pid, entry).is_none() {
            self.order.push_back(origin.pid);
        }
        while self.entries.len() > CACHE_CAP {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        info
    }

    /// Let go of a process that exited (after its last call was exported).
    pub fn forget(&mut self, pid: u32) {
        if self.entries.remove(&pid).is_some() {
            self.order.retain(|p| *p != pid);
        }
    }

    /// Whether `pid` has been read already.
    pub fn knows(&self, pid: u32) -> bool {
        self.entries.contains_key(&pid)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_attributes_parse_and_decode() {
        let attrs = parse_resource_attributes(
            "service.name=my%20app, deployment.environment=prod,broken,=x,team=a%2Cb",
        );
        assert_eq!(
            attrs,
            vec![
                ("service.name".to_string(), "my app".to_string()),
                ("deployment.environment".to_string(), "prod".to_string()),
                ("team".to_string(), "a,b".to_string()),
            ]
        );
        assert!(parse_resource_attributes("").is_empty());
    }

    #[test]
    fn start_ticks_survive_odd_comm() {
        let stat =
            "42 (we ird) (x)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    fn fake_proc(dir: &Path, pid: u32, start: u64, environ: &[u8], cmdline: &[u8]) {
        let p = dir.join(pid.to_string());
        fs::create_dir_all(&p).unwrap();
        fs::write(
            p.join("stat"),
            format!("{pid} (python3) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0"),
        )
        .unwrap();
        fs::write(p.join("environ"), environ).unwrap();
        fs::write(p.join("cmdline"), cmdline).unwrap();
        fs::write(p.join("status"), "Name:\tpython3\nUid:\t0\t0\t0\t0\n").unwrap();
        fs::write(
            p.join("cgroup"),
            "0::/system.slice/docker-3f4b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b.scope\n",
        )
        .unwrap();
        let _ = std::os::unix::fs::symlink("/usr/bin/python3.11", p.join("exe"));
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("llm-tracer-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("sys/kernel")).unwrap();
        fs::write(d.join("sys/kernel/hostname"), "node-1\n").unwrap();
        d
    }

    #[test]
    fn pod_metadata_joins_the_process_attributes() {
        let dir = tempdir("podmeta");
        fake_proc(
            &dir,
            77,
            5,
            b"OTEL_RESOURCE_ATTRIBUTES=team=search\0",
            b"python3\0",
        );
        let mut cache = ProcessCache::new(ProcFs::at(&dir));
        let id = "3f4b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b";
        cache.set_pod_lookup(crate::k8s::PodLookup::fixed([(
            id.to_string(),
            crate::k8s::PodMeta {
                pod_name: "chat-api-7d4b9c8f6d-x2k9p".into(),
                pod_uid: "4c0f8d52-1b7a-4e63-9a0e-2f4d6b8c1a3e".into(),
                namespace: "llm-apps".into(),
                container_name: Some("api".into()),
                deployment: Some("chat-api".into()),
                ..Default::default()
            },
        )]));
        let origin = Origin {
            pid: 77,
            tid: 77,
            comm: "python3".into(),
            conn: 1,
        };
        let info = cache.get(&origin);
        let attrs: Vec<(&str, &str)> = info
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            [
                ("team", "search"),
                ("k8s.pod.name", "chat-api-7d4b9c8f6d-x2k9p"),
                ("k8s.pod.uid", "4c0f8d52-1b7a-4e63-9a0e-2f4d6b8c1a3e"),
                ("k8s.namespace.name", "llm-apps"),
                ("k8s.container.name", "api"),
                ("k8s.deployment.name", "chat-api"),
            ]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pod_the_index_learns_of_later_is_added_at_revalidation() {
        let dir = tempdir("podlater");
        fake_proc(&dir, 78, 5, b"", b"python3\0");
        let pods = crate::k8s::PodLookup::fixed([]);
        let mut cache =
            ProcessCache::new(ProcFs::at(&dir)).with_revalidate_interval(Duration::ZERO);
        cache.set_pod_lookup(pods.clone());
        let origin = Origin {
            pid: 78,
            tid: 78,
            comm: "python3".into(),
            conn: 1,
        };
        let pod_name = |info: &ProcessInfo| {
            info.attributes
                .iter()
                .find(|(k, _)| k == "k8s.pod.name")
                .map(|(_, v)| v.clone())
        };
        // Read before the watch knows the pod: no k8s attributes, and none invented.
        assert_eq!(pod_name(&cache.get(&origin)), None);
        assert_eq!(pod_name(&cache.get(&origin)), None);
        pods.insert_fixed(
            "3f4b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b",
            crate::k8s::PodMeta {
                pod_name: "late-pod".into(),
                namespace: "ns".into(),
                ..Default::default()
            },
        );
        let info = cache.get(&origin);
        assert_eq!(pod_name(&info).as_deref(), Some("late-pod"));
        // Added once: later revalidations keep one copy.
        let info = cache.get(&origin);
        let n = info
            .attributes
            .iter()
            .filter(|(k, _)| k == "k8s.pod.name")
            .count();
        assert_eq!(n, 1);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_a_process_and_redacts_its_command_line() {
        let dir = tempdir("procread");
        fake_proc(
            &dir,
            4242,
            100,
            b"PATH=/bin\0OPENAI_API_KEY=CANARY-not-a-real-key-000\0OTEL_SERVICE_NAME=chatbot\0OTEL_RESOURCE_ATTRIBUTES=deployment.environment=dev,service.name=ignored\0",
            b"python3\0agent.py\0--api-key\0CANARY-not-a-real-key-000\0--model=gpt-4o\0",
        );
        let fs_ = ProcFs::at(&dir);
        assert_eq!(fs_.host_name().as_deref(), Some("node-1"));
        let origin = Origin {
            pid: 4242,
            tid: 4242,
            comm: "python3".into(),
            conn: 1,
        };
        let info = fs_.read(&origin).unwrap();
        assert_eq!(info.pid, 4242);
        assert_eq!(info.service_name, "chatbot");
        assert_eq!(info.executable_path.as_deref(), Some("/usr/bin/python3.11"));
        assert_eq!(info.executable_name.as_deref(), Some("python3.11"));
        assert_eq!(info.owner.as_deref(), Some("root"));
        assert_eq!(
            info.container_id.as_deref(),
            Some("3f4b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b")
        );
        assert_eq!(
            info.attributes,
            vec![
                ("deployment.environment".into(), "dev".into()),
                ("service.name".into(), "ignored".into())
            ]
        );
        let cmd = info.command_line.clone().unwrap();
        assert!(cmd.starts_with("python3 agent.py --api-key "), "{cmd}");
        assert!(cmd.ends_with(" --model=gpt-4o"), "{cmd}");
        assert!(!format!("{info:?}").contains("CANARY"), "{info:?}");

        // Without OTEL_SERVICE_NAME: service.name from OTEL_RESOURCE_ATTRIBUTES, then the exe.
        fake_proc(
            &dir,
            7,
            5,
            b"OTEL_RESOURCE_ATTRIBUTES=service.name=from%20attrs\0",
            b"x\0",
        );
        assert_eq!(
            fs_.read(&Origin {
                pid: 7,
                ..origin.clone()
            })
            .unwrap()
            .service_name,
            "from attrs"
        );
        fake_proc(&dir, 8, 5, b"", b"");
        let i8 = fs_
            .read(&Origin {
                pid: 8,
                ..origin.clone()
            })
            .unwrap();
        assert_eq!(i8.service_name, "python3.11");
        assert_eq!(i8.command_line, None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn cache_keeps_exited_processes_and_notices_pid_reuse() {
        let dir = tempdir("proccache");
        fake_proc(&dir, 9, 100, b"OTEL_SERVICE_NAME=first\0", b"a\0");
        let mut cache =
            ProcessCache::new(ProcFs::at(&dir)).with_revalidate_interval(Duration::ZERO);
        let origin = Origin {
            pid: 9,
            tid: 9,
            comm: "a".into(),
            conn: 1,
        };
        cache.observe(&origin);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&origin).service_name, "first");
        // The process exits: the cached facts remain.
        fs::remove_dir_all(dir.join("9")).unwrap();
        assert_eq!(cache.get(&origin).service_name, "first");
        // A new process takes the pid.
        fake_proc(&dir, 9, 200, b"OTEL_SERVICE_NAME=second\0", b"b\0");
        assert_eq!(cache.get(&origin).service_name, "second");
        // Never seen and already gone: what the capture says.
        let gone = Origin {
            pid: 31337,
            tid: 1,
            comm: "curl".into(),
            conn: 2,
        };
        let info = cache.get(&gone);
        assert_eq!((info.pid, info.service_name.as_str()), (31337, "curl"));
        cache.forget(9);
        assert_eq!(cache.len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
