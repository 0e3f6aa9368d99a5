//! Container id -> pod metadata, from a watch on the pods of this node (feature `k8s`).
//!
//! One `watch` on `pods?fieldSelector=spec.nodeName=<node>` (kube-rs `watcher`, which lists,
//! watches, resumes and backs off on errors) keeps an index of the node's pods; lookups read
//! the index. Memory is bounded by the pods of one node (kubelet caps them, 110 by default)
//! plus a bounded set of recent misses. Deleted pods stay resolvable for a short while, so a
//! call that finished as its pod went away still gets its names.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    runtime::{watcher, WatchStreamExt},
    Api, Client,
};
use tokio::{sync::watch, time::Instant};

use super::{container_id_from_cgroup, pod_uid_from_cgroup, PodMeta};

/// How long a deleted pod stays resolvable.
const DELETED_TTL: Duration = Duration::from_secs(120);
/// Cap on remembered misses (container ids of non-pod containers, e.g. a node's own docker).
const MAX_MISSES: usize = 4096;

/// Counters of the resolver's work, for the agent's own metrics.
#[derive(Debug, Default)]
pub struct ResolverStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub watch_events: AtomicU64,
    pub watch_errors: AtomicU64,
}

/// Resolves container ids of processes on this node to their pod's metadata.
#[derive(Clone)]
pub struct PodResolver {
    index: Arc<RwLock<Index>>,
    version: watch::Receiver<u64>,
    lookup_timeout: Duration,
    stats: Arc<ResolverStats>,
}

#[derive(Default)]
struct Index {
    /// pod uid -> that pod's entry
    pods: HashMap<String, PodEntry>,
    /// container id -> pod uid
    containers: HashMap<String, String>,
    /// pods seen in the current (re)list, until `InitDone`
    relist: Option<HashSet<String>>,
    /// (expiry, uid) of deleted pods, oldest first
    deleted: VecDeque<(Instant, String)>,
    synced: bool,
    misses: HashSet<String>,
}

struct PodEntry {
    /// Pod-level metadata (no container name).
    pod: Arc<PodMeta>,
    /// container id -> metadata with that container's name.
    containers: HashMap<String, Arc<PodMeta>>,
    deleted: bool,
}

impl PodResolver {
    /// Starts watching the pods of `node_name` with `client`. The watch runs on the current
    /// tokio runtime until every clone of the resolver is dropped.
    pub fn start(client: Client, node_name: &str, lookup_timeout: Duration) -> Self {
        let api: Api<Pod> = Api::all(client);
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
        let index = Arc::new(RwLock::new(Index::default()));
        let stats = Arc::new(ResolverStats::default());
        let (tx, version) = watch::channel(0u64);
        let resolver = Self {
            index: Arc::clone(&index),
            version,
            lookup_timeout,
            stats: Arc::clone(&stats),
        };
        let node = node_name.to_owned();
        tokio::spawn(async move {
            let mut events = watcher(api, config).default_backoff().boxed();
            loop {
                let event = tokio::select! {
                    // Every resolver dropped: nobody will look again.
                    () = tx.closed() => break,
                    event = events.next() => event,
                };
                let Some(event) = event else { break };
                match event {
                    Ok(event) => {
                        stats.watch_events.fetch_add(1, Ordering::Relaxed);
                        index
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .apply(event, Instant::now());
                        tx.send_modify(|v| *v = v.wrapping_add(1));
                    }
                    Err(e) => {
                        stats.watch_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(node = %node, error = %e, "watching pods failed; retrying");
                    }
                }
            }
        });
        resolver
    }

    pub fn stats(&self) -> &ResolverStats {
        &self.stats
    }

    /// The pod metadata of the container with this runtime id, waiting up to the lookup
    /// timeout for the first list or for a just-started container to show up in its pod's
    /// status. A miss is remembered so that a non-pod container costs the wait only once.
    pub async fn resolve(&self, container_id: &str) -> Option<Arc<PodMeta>> {
        self.lookup(Some(container_id), None).await
    }

    /// The pod metadata of a process from the text of its `/proc/PID/cgroup`: by container id,
    /// else (after the lookup timeout) by the pod UID in the cgroup path, then without a
    /// container name.
    pub async fn resolve_cgroup(&self, cgroup_file_text: &str) -> Option<Arc<PodMeta>> {
        let id = container_id_from_cgroup(cgroup_file_text);
        let uid = pod_uid_from_cgroup(cgroup_file_text);
        self.lookup(id.as_deref(), uid.as_deref()).await
    }

    /// [`Self::resolve_cgroup`] for a host process id (the agent runs in the host's PID
    /// namespace).
    pub async fn resolve_pid(&self, pid: u32) -> Option<Arc<PodMeta>> {
        let text = tokio::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .await
            .ok()?;
        self.resolve_cgroup(&text).await
    }

    async fn lookup(&self, id: Option<&str>, pod_uid: Option<&str>) -> Option<Arc<PodMeta>> {
        let key = id.or(pod_uid)?; // not in a container: nothing to wait for
        let deadline = Instant::now() + self.lookup_timeout;
        let mut version = self.version.clone();
        loop {
            {
                let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
                let found = match id {
                    Some(id) => ix.by_container(id),
                    None => pod_uid.and_then(|uid| ix.by_pod_uid(uid)),
                };
                if found.is_some() {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    return found;
                }
                if ix.synced && ix.misses.contains(key) {
                    break;
                }
            }
            // Wait for the index to change, or give up at the deadline.
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let mut ix = self.index.write().unwrap_or_else(|p| p.into_inner());
        if ix.synced {
            if ix.misses.len() >= MAX_MISSES {
                ix.misses.clear();
            }
            ix.misses.insert(key.to_owned());
        }
        // The container id is unknown to the API (yet): the pod is still worth naming.
        let fallback = id.and(pod_uid).and_then(|uid| ix.by_pod_uid(uid));
        let counter = match fallback {
            Some(_) => &self.stats.hits,
            None => &self.stats.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        fallback
    }
}

impl Index {
    fn by_container(&self, id: &str) -> Option<Arc<PodMeta>> {
        let uid = self.containers.get(id)?;
        self.pods.get(uid)?.containers.get(id).cloned()
    }

    fn by_pod_uid(&self, uid: &str) -> Option<Arc<PodMeta>> {
        self.pods.get(uid).map(|e| Arc::clone(&e.pod))
    }

    fn apply(&mut self, event: watcher::Event<Pod>, now: Instant) {
        match event {
            watcher::Event::Init => self.relist = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(uid) = self.upsert(&pod) {
                    self.relist.get_or_insert_with(HashSet::new).insert(uid);
                }
            }
            watcher::Event::InitDone => {
                // Pods missing from the fresh list went away while we were not watching.
                let listed = self.relist.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|uid| !listed.contains(*uid))
                    .cloned()
                    .collect();
                for uid in gone {
                    self.mark_deleted(uid, now);
                }
                self.synced = true;
            }
            watcher::Event::Apply(pod) => {
                self.upsert(&pod);
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid {
                    self.mark_deleted(uid, now);
                }
            }
        }
        self.expire(now);
    }

    fn upsert(&mut self, pod: &Pod) -> Option<String> {
        let (meta, containers) = pod_meta(pod)?;
        let uid = meta.pod_uid.clone();
        // A container can only belong to one pod; a restarted container brings a new id, and
        // the old id stays until the pod goes (a process of the old one may still be traced).
        let old = self.pods.remove(&uid);
        let mut by_id: HashMap<String, Arc<PodMeta>> =
            old.map(|e| e.containers).unwrap_or_default();
        for (id, name) in containers {
            self.containers.insert(id.clone(), uid.clone());
            self.misses.remove(&id);
            let mut m = meta.clone();
            m.container_name = Some(name);
            by_id.insert(id, Arc::new(m));
        }
        self.misses.remove(&uid);
        self.pods.insert(
            uid.clone(),
            PodEntry {
                pod: Arc::new(meta),
                containers: by_id,
                deleted: false,
            },
        );
        Some(uid)
    }

    fn mark_deleted(&mut self, uid: String, now: Instant) {
        if let Some(entry) = self.pods.get_mut(&uid) {
            if !entry.deleted {
                entry.deleted = true;
                self.deleted.push_back((now + DELETED_TTL, uid));
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while self.deleted.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, uid)) = self.deleted.pop_front() else {
                break;
            };
            // Only if it was not seen alive again in between.
            if self.pods.get(&uid).is_some_and(|e| e.deleted) {
                if let Some(entry) = self.pods.remove(&uid) {
                    for id in entry.containers.keys() {
                        self.containers.remove(id);
                    }
                }
            }
        }
    }
}

/// Pod-level metadata and (runtime container id, container name) pairs of one pod; `None` for
/// an object without name, namespace or uid (never seen from a real API server).
pub(crate) fn pod_meta(pod: &Pod) -> Option<(PodMeta, Vec<(String, String)>)> {
    let md = &pod.metadata;
    let mut meta = PodMeta {
        pod_name: md.name.clone()?,
        pod_uid: md.uid.clone()?,
        namespace: md.namespace.clone()?,
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ..PodMeta::default()
    };
    let template_hash = md
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .map(String::as_str);
    if let Some(owner) = md
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    {
        meta.set_workload(&owner.kind, &owner.name, template_hash);
    }
    let containers = pod
        .status
        .iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .chain(s.ephemeral_container_statuses.iter().flatten())
        })
        .filter_map(|cs| {
            // `containerd://<id>`, `cri-o://<id>`, `docker://<id>`
            let id = cs.container_id.as_deref()?.split_once("://")?.1;
            Some((id.to_owned(), cs.name.clone()))
        })
        .collect();
    Some((meta, containers))
}
