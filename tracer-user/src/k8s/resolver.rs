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

    /// Waits until the first list of the node's pods is in the index (or `timeout` passes);
    /// true when it is. Callers that look up without waiting call this once at start-up, so
    /// processes seen in the first second still get their pod.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut version = self.version.clone();
        loop {
            if self.index.read().unwrap_or_else(|p| p.into_inner()).synced {
                return true;
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return false,
            }
        }
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
        // A procfs read of a few hundred bytes never blocks on a disk.
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        self.resolve_cgroup(&text).await
    }

    /// What the index knows now about the process with this `/proc/PID/cgroup` text, without
    /// waiting: for synchronous callers (the export layer's process cache), which read a
    /// process when it first makes a TLS call, usually long after its container started.
    pub fn resolve_cgroup_now(&self, cgroup_file_text: &str) -> Option<Arc<PodMeta>> {
        let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
        let found = container_id_from_cgroup(cgroup_file_text)
            .and_then(|id| ix.by_container(&id))
            .or_else(|| pod_uid_from_cgroup(cgroup_file_text).and_then(|uid| ix.by_pod_uid(&uid)));
        let counter = match found {
            Some(_) => &self.stats.hits,
            None => &self.stats.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
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

#[cfg(test)]
mod tests {
    //! The resolver against recorded API server answers: a pod list and a watch stream of this
    //! node's pods, served to the real kube-rs client and watcher through a mock transport.
    use http::{Request, Response};
    use kube::client::Body;
    use tokio::sync::{mpsc, oneshot};

    use super::*;

    const API: &str = "8f1c4a4f2ad36c8a1b7f1e0f52bd2b6c7f3c9d1e4a5b6c7d8e9f0a1b2c3d4e5f";
    const ENVOY: &str = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988";
    const MIGRATE: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    const EVAL: &str = "5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b";
    const EMBEDDER: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const RAG: &str = "5e5e5e5e00000000111111112222222233333333444444445555555566666666";
    const API_RESTARTED: &str = "9999aaaabbbbccccddddeeeeffff00001111222233334444555566667777888a";

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A fake API server: answers the first list with the recorded pod list, the first watch
    /// with the recorded events once `release_watch` fires, and leaves later watches open.
    /// Every request URI goes to the returned channel.
    fn fake_api_server() -> (Client, oneshot::Sender<()>, mpsc::UnboundedReceiver<String>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let (uri_tx, uri_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut release = Some(release_rx);
            let mut parked = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let uri = request.uri().to_string();
                let _ = uri_tx.send(uri.clone());
                if !uri.contains("watch=true") {
                    let body = Body::from(fixture("k8s/pods-node-a.json"));
                    send.send_response(Response::builder().body(body).unwrap());
                } else if let Some(release) = release.take() {
                    let _ = release.await;
                    let body = Body::from(fixture("k8s/watch-node-a.jsonl"));
                    send.send_response(Response::builder().body(body).unwrap());
                } else {
                    parked.push(send); // a long watch with nothing new
                }
            }
        });
        (client, release_tx, uri_rx)
    }

    fn names(m: &PodMeta) -> (&str, &str, Option<&str>) {
        (&m.namespace, &m.pod_name, m.container_name.as_deref())
    }

    #[tokio::test]
    async fn resolves_listed_pods_with_workloads() {
        let (client, _release, mut uris) = fake_api_server();
        let r = PodResolver::start(client, "node-a", Duration::from_secs(5));

        let api = r.resolve(API).await.expect("api container");
        assert_eq!(
            names(&api),
            ("llm-apps", "chat-api-7d4b9c8f6d-x2k9p", Some("api"))
        );
        assert_eq!(api.pod_uid, "4c0f8d52-1b7a-4e63-9a0e-2f4d6b8c1a3e");
        assert_eq!(api.node_name.as_deref(), Some("node-a"));
        assert_eq!(api.deployment.as_deref(), Some("chat-api"));
        assert_eq!(api.replicaset.as_deref(), Some("chat-api-7d4b9c8f6d"));
        assert_eq!(api.job, None);

        assert_eq!(
            r.resolve(ENVOY).await.unwrap().container_name.as_deref(),
            Some("envoy")
        );
        assert_eq!(
            r.resolve(MIGRATE).await.unwrap().container_name.as_deref(),
            Some("migrate")
        );

        let eval = r.resolve(EVAL).await.expect("eval container (cri-o)");
        assert_eq!(
            names(&eval),
            ("batch", "nightly-eval-29411520-q7w8e", Some("eval"))
        );
        assert_eq!(eval.job.as_deref(), Some("nightly-eval-29411520"));
        assert_eq!(eval.cronjob.as_deref(), Some("nightly-eval"));
        assert_eq!(eval.deployment, None);

        // Only this node's pods were asked for.
        let first = uris.recv().await.unwrap();
        assert!(first.starts_with("/api/v1/pods?"), "{first}");
        assert!(
            first.contains("fieldSelector=spec.nodeName%3Dnode-a"),
            "{first}"
        );
    }

    #[tokio::test]
    async fn follows_the_watch() {
        let (client, release, mut uris) = fake_api_server();
        let r = PodResolver::start(client, "node-a", Duration::from_secs(5));
        assert!(r.resolve(API).await.is_some()); // list done

        // The embedder pod only arrives with the watch: a lookup started before waits for it.
        let waiting = tokio::spawn({
            let r = r.clone();
            async move { r.resolve(EMBEDDER).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();
        let emb = waiting.await.unwrap().expect("embedder from the watch");
        assert_eq!(names(&emb), ("llm-apps", "embedder-0", Some("embedder")));
        assert_eq!(emb.statefulset.as_deref(), Some("embedder"));

        // Wait until the whole recorded stream is applied (list: Init, 3 InitApply, InitDone;
        // watch: 3 Apply (the bookmark is no event), 1 Delete), then check each event's effect.
        let deadline = Instant::now() + Duration::from_secs(5);
        while r.stats().watch_events.load(Ordering::Relaxed) < 9 {
            assert!(
                Instant::now() < deadline,
                "watch events not applied: {}",
                r.stats().watch_events.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let restarted = r
            .resolve(API_RESTARTED)
            .await
            .expect("restarted api container");
        assert_eq!(restarted.container_name.as_deref(), Some("api"));
        // The old id of the restarted container still names its pod.
        assert_eq!(
            r.resolve(API).await.unwrap().pod_name,
            "chat-api-7d4b9c8f6d-x2k9p"
        );
        // The pending pod's container started.
        assert_eq!(
            r.resolve(RAG).await.unwrap().container_name.as_deref(),
            Some("worker")
        );
        // The deleted pod stays resolvable for a while (a call may finish as its pod goes).
        assert_eq!(
            r.resolve(EVAL).await.unwrap().pod_name,
            "nightly-eval-29411520-q7w8e"
        );

        let watch = loop {
            let uri = uris.recv().await.unwrap();
            if uri.contains("watch=true") {
                break uri;
            }
        };
        assert!(
            watch.contains("fieldSelector=spec.nodeName%3Dnode-a"),
            "{watch}"
        );
        assert!(watch.contains("resourceVersion=48213"), "{watch}");
        assert_eq!(r.stats().watch_events.load(Ordering::Relaxed), 9);
        assert_eq!(r.stats().watch_errors.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn lookup_handle_is_usable_at_once_after_start() {
        let (client, _release, _uris) = fake_api_server();
        let lookup =
            crate::k8s::PodLookup::start_with(client, "node-a", Duration::from_secs(5)).await;
        let cgroup = String::from_utf8(fixture("cgroup/crio-systemd-v2.txt")).unwrap();
        // No waiting in lookup_now: the first list is already in.
        let m = lookup
            .lookup_now(&cgroup)
            .expect("listed before start returned");
        assert_eq!(
            names(&m),
            ("batch", "nightly-eval-29411520-q7w8e", Some("eval"))
        );
        assert!(lookup.resolver().is_some());
    }

    #[tokio::test]
    async fn unknown_container_misses_once_then_fast() {
        let (client, _release, _uris) = fake_api_server();
        let r = PodResolver::start(client, "node-a", Duration::from_millis(300));
        assert!(r.resolve(API).await.is_some());
        let stranger = "e".repeat(64);
        let t = Instant::now();
        assert!(r.resolve(&stranger).await.is_none());
        assert!(t.elapsed() >= Duration::from_millis(300));
        let t = Instant::now();
        assert!(r.resolve(&stranger).await.is_none());
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(r.stats().misses.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn resolves_processes_from_their_cgroup_files() {
        let (client, _release, _uris) = fake_api_server();
        let r = PodResolver::start(client, "node-a", Duration::from_millis(300));
        let cgroup = |f: &str| String::from_utf8(fixture(&format!("cgroup/{f}"))).unwrap();

        let m = r.resolve_cgroup(&cgroup("containerd-systemd-v2.txt")).await;
        assert_eq!(
            m.as_deref().map(names),
            Some(("llm-apps", "chat-api-7d4b9c8f6d-x2k9p", Some("api")))
        );
        let m = r.resolve_cgroup(&cgroup("crio-systemd-v2.txt")).await;
        assert_eq!(
            m.as_deref().map(names),
            Some(("batch", "nightly-eval-29411520-q7w8e", Some("eval")))
        );
        // CRI-O's monitor process: no container, but its pod is known.
        let m = r
            .resolve_cgroup(&cgroup("crio-conmon-systemd-v2.txt"))
            .await;
        assert_eq!(
            m.as_deref().map(names),
            Some(("batch", "nightly-eval-29411520-q7w8e", None))
        );
        // The same without waiting (the index is complete by now).
        let m = r.resolve_cgroup_now(&cgroup("containerd-systemd-v2.txt"));
        assert_eq!(
            m.as_deref().map(names),
            Some(("llm-apps", "chat-api-7d4b9c8f6d-x2k9p", Some("api")))
        );
        assert!(r
            .resolve_cgroup_now(&cgroup("docker-systemd-v2.txt"))
            .is_none());
        // A host process: not in a pod, answered at once.
        let t = Instant::now();
        assert!(r
            .resolve_cgroup(&cgroup("host-process-hybrid.txt"))
            .await
            .is_none());
        assert!(t.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn deleted_pods_expire_and_relist_drops_vanished_pods() {
        let list: kube::core::ObjectList<Pod> =
            serde_json::from_slice(&fixture("k8s/pods-node-a.json")).unwrap();
        let [chat, eval, _pending] = <[Pod; 3]>::try_from(list.items).unwrap();
        let t0 = Instant::now();
        let mut ix = Index::default();
        ix.apply(watcher::Event::Init, t0);
        ix.apply(watcher::Event::InitApply(chat.clone()), t0);
        ix.apply(watcher::Event::InitApply(eval.clone()), t0);
        ix.apply(watcher::Event::InitDone, t0);
        assert!(ix.synced && ix.by_container(EVAL).is_some());

        ix.apply(watcher::Event::Delete(eval), t0);
        ix.apply(watcher::Event::Apply(chat.clone()), t0 + DELETED_TTL / 2);
        assert!(ix.by_container(EVAL).is_some(), "kept for a while");
        ix.apply(watcher::Event::Apply(chat.clone()), t0 + DELETED_TTL);
        assert!(ix.by_container(EVAL).is_none(), "gone after the TTL");
        assert!(!ix.containers.contains_key(EVAL));

        // A relist without the chat pod (it went while the watch was down) retires it too.
        ix.apply(watcher::Event::Init, t0 + DELETED_TTL);
        ix.apply(watcher::Event::InitDone, t0 + DELETED_TTL);
        assert!(ix.by_container(API).is_some());
        ix.apply(watcher::Event::Init, t0 + DELETED_TTL * 3);
        assert!(ix.by_container(API).is_none());
        assert!(ix.pods.is_empty() && ix.containers.is_empty());
    }

    #[test]
    fn pod_without_identity_is_skipped() {
        let pod: Pod = serde_json::from_str(r#"{"metadata":{"name":"x"}}"#).unwrap();
        assert!(pod_meta(&pod).is_none());
    }
}
