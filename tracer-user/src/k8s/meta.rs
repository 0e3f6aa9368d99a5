//! What a traced process's pod is called: the `k8s.*` resource attributes.

/// Kubernetes identity of one container, as OpenTelemetry resource attributes
/// (semantic conventions `k8s.*`). Workload names are set only when the pod's owner references
/// say so; nothing is guessed from a bare pod name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub pod_name: String,
    pub pod_uid: String,
    pub namespace: String,
    /// `None` when the process was matched by pod UID only (its container id not yet reported).
    pub container_name: Option<String>,
    pub node_name: Option<String>,
    pub deployment: Option<String>,
    pub replicaset: Option<String>,
    pub daemonset: Option<String>,
    pub statefulset: Option<String>,
    pub job: Option<String>,
    pub cronjob: Option<String>,
}

impl PodMeta {
    /// The resource attributes to put on spans and metrics of this container's processes.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("k8s.pod.name", self.pod_name.clone()),
            ("k8s.pod.uid", self.pod_uid.clone()),
            ("k8s.namespace.name", self.namespace.clone()),
        ];
        let optional = [
            ("k8s.container.name", &self.container_name),
            ("k8s.node.name", &self.node_name),
            ("k8s.deployment.name", &self.deployment),
            ("k8s.replicaset.name", &self.replicaset),
            ("k8s.daemonset.name", &self.daemonset),
            ("k8s.statefulset.name", &self.statefulset),
            ("k8s.job.name", &self.job),
            ("k8s.cronjob.name", &self.cronjob),
        ];
        out.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.clone()))),
        );
        out
    }

    /// Fills the workload fields from the pod's controller (its owner reference with
    /// `controller: true`) and, for a ReplicaSet, the pod's `pod-template-hash` label.
    ///
    /// - ReplicaSet `<deployment>-<pod-template-hash>` -> also the Deployment: the Deployment
    ///   controller names its ReplicaSets exactly so, and stamps the hash on the pods. Without
    ///   the label (a bare ReplicaSet) no Deployment is claimed.
    /// - Job `<cronjob>-<scheduled minute since epoch>` -> also the CronJob: the CronJob
    ///   controller names its Jobs so; only a suffix of 8 or more digits counts, so a
    ///   hand-made `backup-2` is not taken for a CronJob's.
    pub fn set_workload(
        &mut self,
        owner_kind: &str,
        owner_name: &str,
        template_hash: Option<&str>,
    ) {
        let name = Some(owner_name.to_owned());
        match owner_kind {
            "ReplicaSet" => {
                self.deployment = template_hash.and_then(|hash| {
                    owner_name
                        .strip_suffix(hash)
                        .and_then(|rest| rest.strip_suffix('-'))
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned)
                });
                self.replicaset = name;
            }
            "DaemonSet" => self.daemonset = name,
            "StatefulSet" => self.statefulset = name,
            "Job" => {
                self.cronjob = owner_name.rsplit_once('-').and_then(|(cron, minute)| {
                    (minute.len() >= 8
                        && minute.bytes().all(|b| b.is_ascii_digit())
                        && !cron.is_empty())
                    .then(|| cron.to_owned())
                });
                self.job = name;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_from_replicaset_and_hash() {
        let mut m = PodMeta::default();
        m.set_workload("ReplicaSet", "chat-api-7d4b9c8f6d", Some("7d4b9c8f6d"));
        assert_eq!(m.deployment.as_deref(), Some("chat-api"));
        assert_eq!(m.replicaset.as_deref(), Some("chat-api-7d4b9c8f6d"));
    }

    #[test]
    fn bare_replicaset_claims_no_deployment() {
        let mut m = PodMeta::default();
        m.set_workload("ReplicaSet", "chat-api-7d4b9c8f6d", None);
        assert_eq!(m.deployment, None);
        m.set_workload("ReplicaSet", "chat-api-7d4b9c8f6d", Some("ffffffffff"));
        assert_eq!(m.deployment, None);
        m.set_workload("ReplicaSet", "7d4b9c8f6d", Some("7d4b9c8f6d"));
        assert_eq!(m.deployment, None);
    }

    #[test]
    fn cronjob_only_from_controller_naming() {
        let mut m = PodMeta::default();
        m.set_workload("Job", "nightly-eval-29411520", None);
        assert_eq!(m.cronjob.as_deref(), Some("nightly-eval"));
        assert_eq!(m.job.as_deref(), Some("nightly-eval-29411520"));
        let mut m = PodMeta::default();
        m.set_workload("Job", "backup-2", None);
        assert_eq!((m.cronjob, m.job.as_deref()), (None, Some("backup-2")));
    }

    #[test]
    fn attributes_leave_out_unknowns() {
        let m = PodMeta {
            pod_name: "p".into(),
            pod_uid: "u".into(),
            namespace: "n".into(),
            statefulset: Some("s".into()),
            ..PodMeta::default()
        };
        let keys: Vec<&str> = m.attributes().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "k8s.pod.name",
                "k8s.pod.uid",
                "k8s.namespace.name",
                "k8s.statefulset.name"
            ]
        );
    }
}
