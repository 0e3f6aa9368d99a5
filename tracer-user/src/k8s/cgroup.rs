//! Container and pod identity from the text of `/proc/PID/cgroup`.
//!
//! Pure string work: no I/O, so every driver layout is tested from recorded files.
//!
//! The container id is the 64-hex-digit id the runtime reports to Kubernetes in
//! `status.containerStatuses[].containerID` (after the `containerd://` / `cri-o://` /
//! `docker://` scheme). Runtimes and cgroup drivers spell the leaf cgroup differently:
//!
//! | runtime / driver          | leaf segment                                           |
//! |---------------------------|--------------------------------------------------------|
//! | containerd, systemd       | `cri-containerd-<id>.scope`                            |
//! | CRI-O, systemd            | `crio-<id>.scope` (`crio-conmon-<id>.scope` = monitor) |
//! | docker, systemd           | `docker-<id>.scope`                                    |
//! | podman, systemd / cgroupfs| `libpod-<id>.scope` / `libpod-<id>`                    |
//! | any runtime, cgroupfs     | `<id>` (optionally `crio-<id>`) below `pod<uid>`       |
//!
//! cgroup v2 has one line `0::<path>`; v1 has one line per hierarchy (`4:memory:<path>`),
//! and hybrid hosts have both. Paths may continue below the container's own cgroup (for example
//! a `/container` or `init.scope` child under systemd-in-container), so the deepest container-like
//! segment of a path wins.

/// Length of a runtime container id in hex digits (docker, containerd, CRI-O, podman).
const CONTAINER_ID_LEN: usize = 64;

/// Prefixes runtimes put in front of the id in a systemd unit name or cgroupfs directory.
const ID_PREFIXES: &[&str] = &[
    "cri-containerd-",
    "crio-",
    "docker-",
    "libpod-",
    "containerd-",
];

/// Leaf names that belong to a runtime's monitor process, not to the container itself.
const MONITOR_PREFIXES: &[&str] = &["crio-conmon-", "libpod-conmon-"];

/// The runtime container id (64 lowercase hex digits) of the process whose
/// `/proc/PID/cgroup` text this is, or `None` for a process outside any container
/// (or in a runtime's monitor cgroup).
///
/// The cgroup v2 line is preferred; v1 lines are the fallback on hosts that only have v1.
pub fn container_id_from_cgroup(cgroup_file_text: &str) -> Option<String> {
    best_line_value(cgroup_file_text, container_id_in_path)
}

/// The pod UID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`) from a kubelet-managed cgroup path,
/// or `None` outside Kubernetes. Lets a process be tied to its pod even when its container id
/// is not (yet) in the pod's status.
pub fn pod_uid_from_cgroup(cgroup_file_text: &str) -> Option<String> {
    best_line_value(cgroup_file_text, pod_uid_in_path)
}

/// Applies `find` to the path of each line, v2 line first.
fn best_line_value(text: &str, find: fn(&str) -> Option<String>) -> Option<String> {
    let paths = || {
        text.lines().filter_map(|line| {
            // `hierarchy-id:controllers:path`; the path itself may contain ':'.
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?;
            let _controllers = parts.next()?;
            let path = parts.next()?;
            Some((hierarchy == "0", path.trim_end()))
        })
    };
    paths()
        .filter(|(v2, _)| *v2)
        .chain(paths().filter(|(v2, _)| !*v2))
        .find_map(|(_, path)| find(path))
}

fn container_id_in_path(path: &str) -> Option<String> {
    path.split('/').rev().find_map(container_id_in_segment)
}

fn container_id_in_segment(segment: &str) -> Option<String> {
    if MONITOR_PREFIXES.iter().any(|p| segment.starts_with(p)) {
        return None;
    }
    let name = segment.strip_suffix(".scope").unwrap_or(segment);
    let name = ID_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    is_container_id(name).then(|| name.to_owned())
}

fn is_container_id(s: &str) -> bool {
    s.len() == CONTAINER_ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn pod_uid_in_path(path: &str) -> Option<String> {
    path.split('/').rev().find_map(pod_uid_in_segment)
}

/// `pod<uid>` (cgroupfs driver) or `kubepods-<qos>-pod<uid with '_' for '-'>.slice` (systemd).
fn pod_uid_in_segment(segment: &str) -> Option<String> {
    let name = segment.strip_suffix(".slice").unwrap_or(segment);
    let at = name.rfind("pod")?;
    // Only kubelet's own naming: the segment is `pod<uid>` or ends with `-pod<uid>`.
    if at != 0 && !name[..at].ends_with('-') {
        return None;
    }
    let uid = name[at + 3..].replace('_', "-");
    is_uuid(&uid).then_some(uid)
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded `/proc/PID/cgroup` files, one per runtime/driver/cgroup-version layout.
    /// (file name, expected container id, expected pod uid)
    const CASES: &[(&str, Option<&str>, Option<&str>)] = &[
        (
            "containerd-systemd-v2.txt",
            Some("8f1c4a4f2ad36c8a1b7f1e0f52bd2b6c7f3c9d1e4a5b6c7d8e9f0a1b2c3d4e5f"),
            Some("4c0f8d52-1b7a-4e63-9a0e-2f4d6b8c1a3e"),
        ),
        (
            "containerd-cgroupfs-v1.txt",
            Some("3e2d1c0b9a8f7e6d5c4b3a29180f7e6d5c4b3a2918a7b6c5d4e3f2a1b0c9d8e7"),
            Some("0b9e6a2c-57d4-4f18-8e3b-6a1d9c2f4e70"),
        ),
        (
            "crio-systemd-v2.txt",
            Some("5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b"),
            Some("9d3b2e1f-6a4c-4b8d-a7e2-5f1c0d9b8a76"),
        ),
        (
            "crio-cgroupfs-v1.txt",
            Some("c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc"),
            Some("6f7e8d9c-0b1a-4293-8475-a6b5c4d3e2f1"),
        ),
        (
            "crio-conmon-systemd-v2.txt",
            None,
            Some("9d3b2e1f-6a4c-4b8d-a7e2-5f1c0d9b8a76"),
        ),
        (
            "docker-systemd-v2.txt",
            Some("d0c4e2a1b3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5c7b9a1f3e5d7"),
            None,
        ),
        (
            "docker-cgroupfs-v1.txt",
            Some("2b4d6f8a0c2e4a6c8e0a2c4e6a8c0e2a4c6e8a0c2e4a6c8e0a2c4e6a8c0e2a4c"),
            None,
        ),
        (
            "kubelet-docker-cgroupfs-v1.txt",
            Some("7d9f1b3d5f7b9d1f3b5d7f9b1d3f5b7d9f1b3d5f7b9d1f3b5d7f9b1d3f5b7d9f"),
            Some("2e5a8c1d-4f7b-4a0e-9c3d-6b9e2f5a8c1d"),
        ),
        (
            "kind-containerd-systemd-v2-nested.txt",
            Some("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"),
            Some("1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"),
        ),
        // Recorded on this project's CI VM: `podman --runtime runc run` on a hybrid v1+v2 host.
        (
            "podman-cgroupfs-hybrid.txt",
            Some("aa9a677b262dcd8debfb860d9628ecae133a293cd1adc91d8efdba44ff8f0221"),
            None,
        ),
        // Recorded on this project's CI VM: a host process (its memory cgroup has a 32-hex id).
        ("host-process-hybrid.txt", None, None),
        ("host-systemd-v2.txt", None, None),
    ];

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/cgroup/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn every_recorded_layout() {
        for (file, want_id, want_uid) in CASES {
            let text = fixture(file);
            assert_eq!(
                container_id_from_cgroup(&text).as_deref(),
                *want_id,
                "container id of {file}"
            );
            assert_eq!(
                pod_uid_from_cgroup(&text).as_deref(),
                *want_uid,
                "pod uid of {file}"
            );
        }
    }

    #[test]
    fn v2_line_wins_over_v1() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!("4:memory:/docker/{a}\n0::/system.slice/docker-{b}.scope\n");
        assert_eq!(container_id_from_cgroup(&text), Some(b));
    }

    #[test]
    fn v1_fallback_when_v2_line_is_root() {
        let a = "a".repeat(64);
        let text = format!("4:memory:/docker/{a}\n0::/\n");
        assert_eq!(container_id_from_cgroup(&text), Some(a));
    }

    #[test]
    fn rejects_lookalikes() {
        for path in [
            // 63 and 65 digits, upper case, non-hex
            format!("0::/docker/{}", "a".repeat(63)),
            format!("0::/docker/{}", "a".repeat(65)),
            format!("0::/docker/{}", "A".repeat(64)),
            format!("0::/docker/{}", "g".repeat(64)),
            // a pod-like word that is not kubelet's naming
            "0::/ipod4c0f8d52-1b7a-4e63-9a0e-2f4d6b8c1a3e".to_owned(),
        ] {
            assert_eq!(container_id_from_cgroup(&path), None, "{path}");
            assert_eq!(pod_uid_from_cgroup(&path), None, "{path}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "\n\n",
            "0",
            "0:",
            "0::",
            ":::::",
            "0::/pod",
            "0::/kubepods-pod.slice",
            "0::/pod-",
            "0::/crio-",
            "0::/é/ü/pod\u{1F600}",
            "\u{0}\u{0}:\u{0}",
        ] {
            let _ = container_id_from_cgroup(text);
            let _ = pod_uid_from_cgroup(text);
        }
    }
}
