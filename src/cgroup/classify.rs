//! What a cgroup path is: a runtime's container, a Kubernetes pod, or something else. Both cgroup drivers:
//!
//! | runtime | cgroupfs driver | systemd driver |
//! |---|---|---|
//! | Docker | `/docker/<id>` | `/system.slice/docker-<id>.scope` |
//! | containerd (CRI) | `/kubepods/<qos>/pod<uid>/<id>` | `.../kubepods-<qos>-pod<uid_>.slice/cri-containerd-<id>.scope` |
//! | containerd, nerdctl | `/<namespace>/<id>`: not told apart by its path; discovery takes it from containerd's identity cache | `/system.slice/nerdctl-<id>.scope` |
//! | CRI-O | `/kubepods/<qos>/pod<uid>/crio-<id>` (or a bare `<id>`); conmon in `crio-conmon-<id>` | `.../crio-<id>.scope`; conmon in `crio-conmon-<id>.scope` |
//! | Podman | `/libpod_parent/libpod-<id>`, in a pod `/libpod_parent/<pod id>/libpod-<id>`; conmon in `conmon` beside them | `/machine.slice/libpod-<id>.scope`, in a pod `machine-libpod_pod_<pod id>.slice/libpod-<id>.scope`; conmon in `libpod-conmon-<id>.scope` |
//! | pods | `/kubepods/<qos>/pod<uid>`, `/kubepods/pod<uid>` (guaranteed) | `kubepods-<qos>-pod<uid_>.slice`, `kubepods-pod<uid_>.slice` |

/// Which runtime made a container cgroup, as far as the path tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
    /// A bare 64-hex folder under a pod: any CRI runtime with the cgroupfs driver.
    Cri,
}

impl Runtime {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Root,
    Container {
        runtime: Runtime,
        id: String,
        /// The pod the container belongs to (uid with dashes), when it sits under a pod cgroup.
        pod_uid: Option<String>,
    },
    Pod {
        uid: String,
        /// `guaranteed`, `burstable` or `besteffort`.
        qos: &'static str,
    },
    /// A runtime's helper (conmon) or a systemd mount unit: never reported.
    Ignored,
    /// Anything else (system.slice, kubepods QoS levels, user sessions): reported only behind a flag.
    System,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A pod uid: the apiserver's dashed form, or the 32-hex hash the kubelet gives static pods.
fn is_uid(s: &str) -> bool {
    if s.len() == 32 {
        return s.bytes().all(|b| b.is_ascii_hexdigit());
    }
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// A pod cgroup's (uid, qos) from one path component, either driver.
fn pod_of(component: &str, parent_qos: &'static str) -> Option<(String, &'static str)> {
    if let Some(uid) = component.strip_prefix("pod")
        && is_uid(uid)
    {
        return Some((uid.to_string(), parent_qos));
    }
    let rest = component
        .strip_prefix("kubepods-")?
        .strip_suffix(".slice")?;
    let (qos, uid) = match rest.split_once("-pod") {
        Some((q, u)) => (qos_name(q)?, u),
        None => ("guaranteed", rest.strip_prefix("pod")?),
    };
    let uid = uid.replace('_', "-");
    is_uid(&uid).then_some((uid, qos))
}

fn qos_name(s: &str) -> Option<&'static str> {
    match s {
        "burstable" => Some("burstable"),
        "besteffort" => Some("besteffort"),
        "guaranteed" => Some("guaranteed"),
        _ => None,
    }
}

/// A container id from one path component, with the runtime its form names.
fn container_of(component: &str) -> Option<(Runtime, String)> {
    let scoped = |prefix: &str| {
        component
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".scope").or(Some(r)))
            .filter(|id| is_hex64(id))
            .map(str::to_string)
    };
    if let Some(id) = scoped("docker-") {
        return Some((Runtime::Docker, id));
    }
    if let Some(id) = scoped("cri-containerd-").or_else(|| scoped("nerdctl-")) {
        return Some((Runtime::Containerd, id));
    }
    if let Some(id) = scoped("crio-") {
        return Some((Runtime::Crio, id));
    }
    if let Some(id) = scoped("libpod-") {
        return Some((Runtime::Podman, id));
    }
    None
}

/// Classifies a cgroup path such as `/docker/<id>` (relative to the hierarchy root).
pub(crate) fn classify(path: &str) -> Kind {
    if path == "/" || path.is_empty() {
        return Kind::Root;
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let last = parts[parts.len() - 1];
    if last.ends_with(".mount")
        || last.starts_with("crio-conmon-")
        || last.starts_with("libpod-conmon-")
        || (last == "conmon" && parts[0] == "libpod_parent")
    {
        return Kind::Ignored;
    }
    let in_kubepods = parts
        .first()
        .is_some_and(|p| *p == "kubepods" || *p == "kubepods.slice");
    // The pod this path is in, if any (the nearest pod component above or at the last one).
    let mut qos = "guaranteed";
    let mut pod: Option<(String, &'static str, usize)> = None;
    if in_kubepods {
        for (i, p) in parts.iter().enumerate() {
            if let Some(q) = qos_name(p).or_else(|| {
                p.strip_prefix("kubepods-")
                    .and_then(|r| r.strip_suffix(".slice"))
                    .and_then(qos_name)
            }) {
                qos = q;
            }
            if let Some((uid, q)) = pod_of(p, qos) {
                pod = Some((uid, q, i));
            }
        }
    }
    if let Some((uid, q, i)) = &pod
        && *i == parts.len() - 1
    {
        return Kind::Pod {
            uid: uid.clone(),
            qos: q,
        };
    }
    let pod_uid = pod.as_ref().map(|(u, _, _)| u.clone());
    if let Some((runtime, id)) = container_of(last) {
        return Kind::Container {
            runtime,
            id,
            pod_uid,
        };
    }
    if is_hex64(last) {
        if pod_uid.is_some() {
            return Kind::Container {
                runtime: Runtime::Cri,
                id: last.to_string(),
                pod_uid,
            };
        }
        if parts.len() >= 2 && parts[parts.len() - 2] == "docker" {
            return Kind::Container {
                runtime: Runtime::Docker,
                id: last.to_string(),
                pod_uid: None,
            };
        }
    }
    Kind::System
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "b29faf21b7eff959f64b4192c34d5d67a707fe8561e9eaa608cb27693fba4242";
    const UID: &str = "081d040e-c94b-41ea-8278-eb12903ddd99";

    fn container(runtime: Runtime, pod: Option<&str>) -> Kind {
        Kind::Container {
            runtime,
            id: ID.to_string(),
            pod_uid: pod.map(str::to_string),
        }
    }

    #[test]
    fn docker_both_drivers() {
        assert_eq!(
            classify(&format!("/docker/{ID}")),
            container(Runtime::Docker, None)
        );
        assert_eq!(
            classify(&format!("/system.slice/docker-{ID}.scope")),
            container(Runtime::Docker, None)
        );
        assert_eq!(classify("/docker"), Kind::System);
        assert_eq!(classify("/system.slice/docker.service"), Kind::System);
    }

    #[test]
    fn static_pods_have_hash_uids() {
        // A static pod's uid is a 32-hex hash (recorded: /kubepods/burstable/pode9afcd8d...).
        let uid = "e9afcd8d3c942968802548f9a24d942a";
        assert_eq!(
            classify(&format!("/kubepods/burstable/pod{uid}")),
            Kind::Pod {
                uid: uid.to_string(),
                qos: "burstable"
            }
        );
        assert_eq!(
            classify(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{ID}.scope"
            )),
            Kind::Container {
                runtime: Runtime::Containerd,
                id: ID.to_string(),
                pod_uid: Some(uid.to_string())
            }
        );
    }

    #[test]
    fn kubernetes_both_drivers_all_qos() {
        assert_eq!(
            classify(&format!("/kubepods/burstable/pod{UID}")),
            Kind::Pod {
                uid: UID.to_string(),
                qos: "burstable"
            }
        );
        assert_eq!(
            classify(&format!("/kubepods/pod{UID}")),
            Kind::Pod {
                uid: UID.to_string(),
                qos: "guaranteed"
            }
        );
        assert_eq!(
            classify(&format!("/kubepods/besteffort/pod{UID}/{ID}")),
            container(Runtime::Cri, Some(UID))
        );
        let u = UID.replace('-', "_");
        let slice =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice");
        assert_eq!(
            classify(&slice),
            Kind::Pod {
                uid: UID.to_string(),
                qos: "burstable"
            }
        );
        assert_eq!(
            classify(&format!("{slice}/cri-containerd-{ID}.scope")),
            container(Runtime::Containerd, Some(UID))
        );
        assert_eq!(
            classify(&format!("{slice}/crio-{ID}.scope")),
            container(Runtime::Crio, Some(UID))
        );
        assert_eq!(
            classify(&format!("{slice}/crio-conmon-{ID}.scope")),
            Kind::Ignored
        );
        assert_eq!(
            classify(&format!("/kubepods.slice/kubepods-pod{u}.slice")),
            Kind::Pod {
                uid: UID.to_string(),
                qos: "guaranteed"
            }
        );
        assert_eq!(
            classify(&format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/docker-{ID}.scope"
            )),
            container(Runtime::Docker, Some(UID))
        );
        assert_eq!(classify("/kubepods/burstable"), Kind::System);
        assert_eq!(
            classify("/kubepods.slice/kubepods-burstable.slice"),
            Kind::System
        );
    }

    #[test]
    fn nerdctl_systemd_scope() {
        assert_eq!(
            classify(&format!("/system.slice/nerdctl-{ID}.scope")),
            container(Runtime::Containerd, None)
        );
    }

    #[test]
    fn podman_root_and_others() {
        assert_eq!(
            classify(&format!("/machine.slice/libpod-{ID}.scope")),
            container(Runtime::Podman, None)
        );
        assert_eq!(
            classify(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            Kind::Ignored
        );
        // cgroupfs, as Podman 4.3 lays it out here: containers, pods, and conmon beside them.
        const POD: &str = "204f3b5281322b9b50a63c12f507b4f730ddf0fe761f4c02e667669c0535d886";
        assert_eq!(
            classify(&format!("/libpod_parent/libpod-{ID}")),
            container(Runtime::Podman, None)
        );
        assert_eq!(
            classify(&format!("/libpod_parent/{POD}/libpod-{ID}")),
            container(Runtime::Podman, None)
        );
        assert_eq!(classify(&format!("/libpod_parent/{POD}")), Kind::System);
        assert_eq!(classify("/libpod_parent/conmon"), Kind::Ignored);
        assert_eq!(
            classify(&format!("/libpod_parent/{POD}/conmon")),
            Kind::Ignored
        );
        assert_eq!(
            classify(&format!(
                "/machine.slice/machine-libpod_pod_{POD}.slice/libpod-{ID}.scope"
            )),
            container(Runtime::Podman, None)
        );
        assert_eq!(classify("/"), Kind::Root);
        assert_eq!(
            classify("/user.slice/user-1000.slice/session-520.scope"),
            Kind::System
        );
        assert_eq!(
            classify("/system.slice/var-lib-docker.mount"),
            Kind::Ignored
        );
        // Upper-case or short hex is not a container id.
        assert_eq!(
            classify(&format!("/docker/{}", ID.to_uppercase())),
            Kind::System
        );
        assert_eq!(classify("/docker/abc"), Kind::System);
    }
}
