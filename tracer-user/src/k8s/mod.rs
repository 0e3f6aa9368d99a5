//! Kubernetes pod metadata for traced processes.
//!
//! A process's `/proc/PID/cgroup` names its container (runtime container id) and pod (UID);
//! [`PodResolver`] maps those to `k8s.pod.name`, `k8s.namespace.name`, `k8s.container.name`,
//! workload names, ... from a watch on this node's pods through the Kubernetes API.
//!
//! - The cgroup parsing ([`container_id_from_cgroup`], [`pod_uid_from_cgroup`]) and
//!   [`PodMeta`] are always built: they are plain string work.
//! - The API client (kube-rs) is behind the cargo feature `k8s`, off by default so that the
//!   workspace builds and tests fast; the container image is built with it
//!   (`deploy/image/build.sh`). Without the feature, `--k8s on` is an error and `--k8s auto`
//!   logs that pod metadata is unavailable.
//! - Outside a cluster (no `KUBERNETES_SERVICE_HOST`) `--k8s auto` (the default) is simply off.
//!
//! The agent calls [`start`] once; the export layer's process cache asks the returned
//! [`PodLookup`] when it reads a process; [`PodMeta::attributes`] gives the key/value pairs.

mod cgroup;
mod meta;
#[cfg(feature = "k8s")]
mod resolver;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

pub use cgroup::{container_id_from_cgroup, pod_uid_from_cgroup};
pub use meta::PodMeta;
#[cfg(feature = "k8s")]
pub use resolver::{PodResolver, ResolverStats};

/// Whether to look up pod metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum K8sMode {
    /// On when running inside a Kubernetes pod (`KUBERNETES_SERVICE_HOST` is set).
    Auto,
    /// Always; failing to set it up is an error.
    On,
    /// Never.
    Off,
}

/// Command-line options of the pod metadata lookup (flatten into the agent's `run` options).
#[derive(Debug, Clone, clap::Args)]
pub struct K8sArgs {
    /// Add Kubernetes pod metadata (k8s.pod.name, k8s.namespace.name, ...) to spans and metrics.
    #[arg(long = "k8s", env = "LLM_TRACER_K8S", value_enum, default_value_t = K8sMode::Auto)]
    pub mode: K8sMode,
    /// Name of the node the agent runs on; only pods of this node are watched
    /// (set from the downward API `spec.nodeName` in the DaemonSet).
    #[arg(long = "k8s-node-name", env = "K8S_NODE_NAME")]
    pub node_name: Option<String>,
    /// How long a lookup waits for a just-started container to appear in the API, in ms.
    #[arg(
        long = "k8s-lookup-timeout-ms",
        env = "LLM_TRACER_K8S_LOOKUP_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub lookup_timeout_ms: u64,
}

impl Default for K8sArgs {
    fn default() -> Self {
        Self {
            mode: K8sMode::Auto,
            node_name: None,
            lookup_timeout_ms: 2000,
        }
    }
}

impl K8sArgs {
    pub fn lookup_timeout(&self) -> Duration {
        Duration::from_millis(self.lookup_timeout_ms)
    }

    /// Whether pod metadata is wanted, given whether we run inside a cluster.
    fn wanted(&self, in_cluster: bool) -> bool {
        match self.mode {
            K8sMode::On => true,
            K8sMode::Off => false,
            K8sMode::Auto => in_cluster,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("pod metadata needs the node name: set K8S_NODE_NAME (downward API spec.nodeName) or --k8s-node-name")]
    NoNodeName,
    #[error("this llm-tracer was built without the `k8s` feature; rebuild with `--features k8s`")]
    NotBuilt,
    #[cfg(feature = "k8s")]
    #[error("cannot configure the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// The handle the export layer keeps: pod metadata of a process from its `/proc/PID/cgroup`
/// text. The same type with or without the `k8s` feature, so callers need no `cfg`; without
/// the feature [`start`] never returns one.
#[derive(Clone)]
pub struct PodLookup {
    inner: LookupInner,
}

#[derive(Clone)]
enum LookupInner {
    #[cfg(feature = "k8s")]
    Api(PodResolver),
    /// Answers by container id from a table (tests of callers, without an API server).
    Fixed(Arc<RwLock<HashMap<String, Arc<PodMeta>>>>),
}

impl PodLookup {
    /// A lookup that answers from a fixed table (container id -> metadata).
    pub fn fixed(table: impl IntoIterator<Item = (String, PodMeta)>) -> Self {
        let table = table.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        Self {
            inner: LookupInner::Fixed(Arc::new(RwLock::new(table))),
        }
    }

    /// Adds an answer to a [`PodLookup::fixed`] table (a pod that appears later, as a watch
    /// would learn of it); a no-op on an API-backed lookup.
    pub fn insert_fixed(&self, container_id: &str, meta: PodMeta) {
        #[allow(irrefutable_let_patterns)] // irrefutable without the `k8s` feature
        if let LookupInner::Fixed(t) = &self.inner {
            t.write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(container_id.to_string(), Arc::new(meta));
        }
    }

    /// The pod metadata known now for the process with this `/proc/PID/cgroup` text (no wait,
    /// no API call: the index is kept current by a watch).
    pub fn lookup_now(&self, cgroup_file_text: &str) -> Option<Arc<PodMeta>> {
        match &self.inner {
            #[cfg(feature = "k8s")]
            LookupInner::Api(r) => r.resolve_cgroup_now(cgroup_file_text),
            LookupInner::Fixed(t) => t
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&container_id_from_cgroup(cgroup_file_text)?)
                .cloned(),
        }
    }

    /// Starts watching the pods of `node_name` and waits (at most 10 s) for their first list,
    /// so that lookups made right after start-up find them.
    #[cfg(feature = "k8s")]
    pub async fn start_with(
        client: kube::Client,
        node_name: &str,
        lookup_timeout: Duration,
    ) -> Self {
        let resolver = PodResolver::start(client, node_name, lookup_timeout);
        if !resolver.wait_synced(Duration::from_secs(10)).await {
            tracing::warn!(
                node_name,
                "no pod list from the API server yet; pod metadata will follow"
            );
        }
        Self {
            inner: LookupInner::Api(resolver),
        }
    }

    /// The watch-backed resolver, for callers that can wait for a just-started container.
    #[cfg(feature = "k8s")]
    pub fn resolver(&self) -> Option<&PodResolver> {
        match &self.inner {
            LookupInner::Api(r) => Some(r),
            LookupInner::Fixed(_) => None,
        }
    }
}

impl std::fmt::Debug for PodLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            #[cfg(feature = "k8s")]
            LookupInner::Api(_) => "PodLookup(api)",
            LookupInner::Fixed(_) => "PodLookup(fixed)",
        })
    }
}

/// Starts the pod metadata lookup as configured: `Ok(None)` when it is off (`--k8s off`, or
/// `auto` outside a cluster). In `auto` mode a setup problem is logged and the agent runs
/// without pod metadata; with `--k8s on` it is an error. Must run inside a tokio runtime.
#[cfg(feature = "k8s")]
pub async fn start(args: &K8sArgs) -> Result<Option<PodLookup>, K8sError> {
    if !args.wanted(in_cluster()) {
        return Ok(None);
    }
    let attempt = async {
        let node = args.node_name.as_deref().ok_or(K8sError::NoNodeName)?;
        let client = kube::Client::try_default().await?;
        tracing::info!(node, "watching this node's pods for pod metadata");
        Ok(PodLookup::start_with(client, node, args.lookup_timeout()).await)
    };
    match attempt.await {
        Ok(lookup) => Ok(Some(lookup)),
        Err(e) if args.mode == K8sMode::Auto => {
            tracing::warn!(error = %e, "running without Kubernetes pod metadata");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Without the `k8s` feature there is no resolver; see the module docs.
#[cfg(not(feature = "k8s"))]
pub async fn start(args: &K8sArgs) -> Result<Option<PodLookup>, K8sError> {
    if !args.wanted(in_cluster()) {
        return Ok(None);
    }
    if args.mode == K8sMode::On {
        return Err(K8sError::NotBuilt);
    }
    tracing::warn!("{}; running without pod metadata", K8sError::NotBuilt);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let mut a = K8sArgs::default();
        assert!(a.wanted(true) && !a.wanted(false));
        a.mode = K8sMode::Off;
        assert!(!a.wanted(true));
        a.mode = K8sMode::On;
        assert!(a.wanted(false));
    }

    #[test]
    fn fixed_lookup_answers_by_the_cgroups_container_id() {
        let id = "a".repeat(64);
        let meta = PodMeta {
            pod_name: "p".into(),
            ..PodMeta::default()
        };
        let lookup = PodLookup::fixed([(id.clone(), meta)]);
        let text =
            format!("0::/kubepods/besteffort/pod0b9e6a2c-57d4-4f18-8e3b-6a1d9c2f4e70/{id}\n");
        assert_eq!(lookup.lookup_now(&text).unwrap().pod_name, "p");
        assert!(lookup.lookup_now("0::/user.slice\n").is_none());
    }

    #[test]
    fn args_parse_from_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            k8s: K8sArgs,
        }
        let cli = Cli::try_parse_from(["x", "--k8s", "on", "--k8s-node-name", "node-a"]).unwrap();
        assert_eq!(cli.k8s.mode, K8sMode::On);
        assert_eq!(cli.k8s.node_name.as_deref(), Some("node-a"));
        assert!(Cli::try_parse_from(["x", "--k8s", "maybe"]).is_err());
    }
}
