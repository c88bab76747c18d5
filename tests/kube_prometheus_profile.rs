//! The kube-prometheus drop-in profile: Debian's Prometheus scrapes Stevedore with the profile's scrape
//! settings from deploy/prometheus/scrape-configs.yml (Kubernetes discovery replaced by a static target
//! carrying the same discovery labels: Debian's Prometheus is built without it), and kubernetes-mixin's
//! recording rules (tests/kubernetes-mixin, unchanged) read the result.
//!
//! The node is the recorded 1.35 node: its pod containers' cgroups made for real in the kubelet's
//! layout, its pod list and summary replayed; one container holds a real process whose memory and CPU
//! the rules must report as its cgroup files do. kube-state-metrics' `kube_pod_info` (which the rules
//! join on) is served from the same recorded pod list.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kube::*;
use common::prometheus::{
    ALERTING_ROW, Prometheus, dashboard_queries, free_port, query, start_prometheus_config,
};
use common::*;
use serde_json::{Value, json};

const RECORDS: &[&str] = &[
    "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate",
    "node_namespace_pod_container:container_memory_working_set_bytes",
    "node_namespace_pod_container:container_memory_rss",
    "node_namespace_pod_container:container_memory_cache",
    "node_namespace_pod_container:container_memory_swap",
];

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// kube-state-metrics' kube_pod_info for the recorded pods, served by Python's http.server.
fn kube_state_metrics(pods: &Value) -> (Killed, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("# TYPE kube_pod_info gauge\n");
    for p in pods["items"].as_array().unwrap() {
        let m = &p["metadata"];
        text += &format!(
            "kube_pod_info{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",node=\"{}\"}} 1\n",
            m["namespace"].as_str().unwrap(),
            m["name"].as_str().unwrap(),
            m["uid"].as_str().unwrap(),
            p["spec"]["nodeName"].as_str().unwrap()
        );
    }
    std::fs::write(dir.path().join("metrics"), text).unwrap();
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Killed(child), format!("127.0.0.1:{port}"), dir)
}

/// The drop-in job of deploy/prometheus/scrape-configs.yml, aimed at `target` as Kubernetes discovery
/// would label it, and a kube-state-metrics job.
fn config(target: &str, node: &str, ksm: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("deploy/prometheus/scrape-configs.yml")).unwrap(),
    )
    .unwrap();
    let mut job = file["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "stevedore-as-kubelet-cadvisor")
        .expect("the drop-in job")
        .clone();
    let obj = job.as_object_mut().unwrap();
    assert!(obj.remove("kubernetes_sd_configs").is_some());
    obj.insert("scrape_interval".into(), json!("1s"));
    obj.insert("scrape_timeout".into(), json!("1s"));
    obj.insert(
        "static_configs".into(),
        json!([{"targets": [target], "labels": {
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": "stevedore",
            "__meta_kubernetes_pod_container_port_name": "metrics",
            "__meta_kubernetes_pod_node_name": node,
        }}]),
    );
    let rules = root.join("tests/kubernetes-mixin/k8s.rules.yml");
    let config = json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules],
        "scrape_configs": [job, {"job_name": "kube-state-metrics", "static_configs": [{"targets": [ksm]}]}],
    });
    serde_yaml_ng::to_string(&config).unwrap()
}

/// A network namespace with one veth pair, `eth0` inside (as a pod sandbox has), the other end on the host;
/// removed on drop.
struct NetNs {
    name: String,
    host_end: String,
}

impl NetNs {
    fn make() -> NetNs {
        let id = std::process::id();
        let ns = NetNs {
            name: format!("sdtest-kp-{id}"),
            host_end: format!("sdkp{}", id % 100000),
        };
        let (n, h) = (&ns.name, &ns.host_end);
        let script = format!(
            "ip netns add {n} && ip link add {h} type veth peer name {h}p && \
             ip link set {h}p netns {n} && ip -n {n} link set {h}p name eth0 && \
             ip addr add 10.231.7.1/24 dev {h} && ip link set {h} up && \
             ip -n {n} addr add 10.231.7.2/24 dev eth0 && ip -n {n} link set eth0 up && \
             ip -n {n} link set lo up"
        );
        let ok = Command::new("sh").arg("-c").arg(&script).status().unwrap();
        assert!(ok.success(), "{script}");
        ns
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The whole disk under `dir` (blkio throttle rules, and so v1's per-device counters, need one):
/// its /dev path and major:minor.
fn disk_of(dir: &Path) -> (String, String) {
    let out = |args: &[&str]| {
        let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let dir = dir.to_str().unwrap();
    let src = out(&["findmnt", "-n", "-o", "SOURCE", "--target", dir]);
    let src = src.split('[').next().unwrap_or_default().to_string();
    let parent = out(&["lsblk", "-n", "-o", "PKNAME", &src]);
    let disk = if parent.is_empty() {
        src
    } else {
        format!("/dev/{parent}")
    };
    let majmin = out(&["lsblk", "-d", "-n", "-o", "MAJ:MIN", &disk]);
    (disk, majmin)
}

fn cgroup_file(ctrl: &str, id: &str, file: &str) -> std::path::PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(ctrl)
        .join(id.trim_start_matches('/'))
        .join(file)
}

fn wait_for(p: &Prometheus, q: &str, what: &str) -> Vec<(Value, f64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = query(p, q);
        if !r.is_empty() {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no result for {q} in 60 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The recorded node's pod containers (those with a container name and an image), and the one the
/// worker runs in (kube-state-metrics').
fn pod_containers(recorded: &[Sample]) -> (Vec<&Sample>, &Sample) {
    let containers: Vec<&Sample> = recorded
        .iter()
        .filter(|r| {
            r.name == "container_memory_working_set_bytes"
                && r.labels["id"].contains("/pod")
                && !r.labels["container"].is_empty()
                && !r.labels["image"].is_empty()
        })
        .collect();
    assert!(containers.len() > 10, "{}", containers.len());
    let target = *containers
        .iter()
        .find(|r| r.labels["container"] == "kube-state-metrics")
        .unwrap();
    (containers, target)
}

/// The worker's cgroup as its files have it now.
trait PodCgroup {
    /// (rss, working set, page cache) in bytes, as cAdvisor defines them.
    fn memory(&self) -> (f64, f64, f64);
    /// CPU seconds used.
    fn cpu_seconds(&self) -> f64;
}

/// A cgroup of this host's v1 hierarchies, by its path relative to them.
struct V1Cgroup(String);

impl PodCgroup for V1Cgroup {
    fn memory(&self) -> (f64, f64, f64) {
        let stat = |key: &str| read_num(&cgroup_file("memory", &self.0, "memory.stat"), Some(key));
        let usage = read_num(
            &cgroup_file("memory", &self.0, "memory.usage_in_bytes"),
            None,
        );
        (
            stat("total_rss"),
            usage - stat("total_inactive_file"),
            stat("total_cache"),
        )
    }

    fn cpu_seconds(&self) -> f64 {
        read_num(&cgroup_file("cpuacct", &self.0, "cpuacct.usage"), None) / 1e9
    }
}

/// What the profile must give on any node, once Prometheus scrapes it: the rules, the adapter's queries,
/// the dashboards' selectors, and values as the worker's cgroup files have them. `target` is the
/// container the worker runs in; its direct writes go to `disk`.
fn check_profile(
    p: &Prometheus,
    node: &str,
    containers: &[&Sample],
    target: &Sample,
    cgroup: &dyn PodCgroup,
    disk: &str,
) {
    // The profile's labels: the kubelet's cAdvisor job for containers, node-exporter's for node series.
    let up = wait_for(
        p,
        r#"up{job="kubelet",metrics_path="/metrics/cadvisor"}"#,
        "up",
    );
    assert_eq!(up[0].1, 1.0);
    assert_eq!(up[0].0["node"], node);
    wait_for(
        p,
        r#"node_memory_MemTotal_bytes{job="node-exporter",metrics_path=""}"#,
        "node series",
    );

    let pod = target.labels["pod"].as_str();
    let sel = format!(
        "{{namespace=\"{}\",pod=\"{pod}\",container=\"kube-state-metrics\"}}",
        target.labels["namespace"]
    );
    // Every rule gives the recorded node's pod containers, joined to their node.
    for record in RECORDS {
        let r = wait_for(p, &format!("{record}{sel}"), record);
        assert_eq!(r.len(), 1, "{record}: {r:?}");
        assert_eq!(r[0].0["node"], node, "{record}");
        let all = query(p, record);
        for c in containers {
            assert!(
                all.iter().any(|(l, _)| l["pod"] == c.labels["pod"].as_str()
                    && l["container"] == c.labels["container"].as_str()),
                "{record}: no series for {}/{}",
                c.labels["pod"],
                c.labels["container"]
            );
        }
    }
    // prometheus-adapter's resource rules (kube-prometheus' defaults, <<.LabelMatchers>> and
    // <<.GroupBy>> filled in as the adapter does for one pod) answer for the pod.
    let matchers = format!("namespace=\"{}\",pod=\"{pod}\"", target.labels["namespace"]);
    for q in [
        format!(
            "sum by (namespace, pod, container) (irate(container_cpu_usage_seconds_total{{{matchers},container!=\"\",pod!=\"\"}}[120s]))"
        ),
        format!(
            "sum by (namespace, pod, container) (container_memory_working_set_bytes{{{matchers},container!=\"\",pod!=\"\"}})"
        ),
    ] {
        // Until the rate has two samples of a working worker.
        let found = |r: &[(Value, f64)]| {
            r.iter()
                .any(|(l, v)| l["container"] == "kube-state-metrics" && *v > 0.0)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut r = wait_for(p, &q, "prometheus-adapter");
        while !found(&r) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            r = query(p, &q);
        }
        assert!(found(&r), "{q}: {r:?}");
    }
    // Values as the cgroup files have them (read around the rule's evaluation; memory is steady once
    // the worker holds its 32 MB, which takes a while under emulation).
    let deadline = Instant::now() + Duration::from_secs(120);
    while cgroup.memory().0 < 30e6 {
        assert!(Instant::now() < deadline, "the worker never held 32 MB");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    let value = |record: &str| query(p, &format!("{record}{sel}"))[0].1;
    let (rss_file, ws_file, cache_file) = cgroup.memory();
    let rss = value("node_namespace_pod_container:container_memory_rss");
    assert!(
        (rss - rss_file).abs() <= 0.05 * rss_file,
        "rss {rss} vs {rss_file}"
    );
    assert!(rss > 30e6, "{rss}");
    let ws = value("node_namespace_pod_container:container_memory_working_set_bytes");
    assert!(
        (ws - ws_file).abs() <= 0.05 * ws_file,
        "working set {ws} vs {ws_file}"
    );
    let cache = value("node_namespace_pod_container:container_memory_cache");
    assert!(
        (cache - cache_file).abs() <= 1e6,
        "cache {cache} vs {cache_file}"
    );
    // CPU: the irate Prometheus computes against the cgroup's own rate over 5 s.
    let (t0, u0) = (Instant::now(), cgroup.cpu_seconds());
    std::thread::sleep(Duration::from_secs(5));
    let cgroup_rate = (cgroup.cpu_seconds() - u0) / t0.elapsed().as_secs_f64();
    let irate = value("node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate");
    assert!(cgroup_rate > 0.001, "the worker used no CPU: {cgroup_rate}");
    assert!(
        (irate - cgroup_rate).abs() <= 0.5 * cgroup_rate + 0.01,
        "irate {irate} vs the cgroup's {cgroup_rate}"
    );
    // The dashboard on this Kubernetes node: every query, variables at "All", finds data; the
    // Kubernetes row finds the worker's pod.
    // The alerting row reads the shipped rules, which this Prometheus does not load (alerting_e2e does).
    let mut empty = Vec::new();
    let mut ran = 0;
    for d in dashboard_queries()
        .into_iter()
        .filter(|d| d.row != ALERTING_ROW)
    {
        let q = &d.query;
        ran += 1;
        let r = query(p, q);
        // v1 blkio counters exist only for devices with a throttle rule on the hybrid host's kernel.
        if r.is_empty() && !q.contains("container_fs_") {
            empty.push(format!("{}: {q}", d.panel));
        } else if q.contains("pod!=\"\"") && !q.contains("stevedore_container_resource_") {
            // Usage panels find the worker's pod (its requests and limits are the recorded spec's).
            assert!(
                r.iter().any(|(l, _)| l["pod"] == pod),
                "{}: {pod} not in {r:?}",
                d.panel
            );
        }
    }
    assert_eq!(ran, 28);
    assert!(empty.is_empty(), "{empty:#?}");

    // kubernetes-mixin's "Kubernetes / Compute Resources" dashboards (pod, workload, namespace, node,
    // cluster; as kube-prometheus-stack ships them) read, besides the recording rules above, these
    // container_* selectors directly. Each, in the form the dashboards use, finds the worker's pod.
    let pod_sel = format!(
        "job=\"kubelet\", metrics_path=\"/metrics/cadvisor\", namespace=\"{}\", pod=\"{pod}\"",
        target.labels["namespace"]
    );
    let devices = "(/dev/)?(mmcblk.p.+|nvme.+|rbd.+|sd.+|vd.+|xvd.+|dm-.+|md.+|dasd.+)";
    let rate = |m: &str, extra: &str, by: &str| {
        format!("sum by ({by}) (rate({m}{{{pod_sel}{extra}}}[10s]))")
    };
    let mut checks = vec![
        format!(
            "sum by (container) (increase(container_cpu_cfs_throttled_periods_total{{{pod_sel}, container!=\"\"}}[10s])) \
             / sum by (container) (increase(container_cpu_cfs_periods_total{{{pod_sel}, container!=\"\"}}[10s]))"
        ),
        format!(
            "sum by (container) (container_memory_working_set_bytes{{{pod_sel}, container!=\"\", image!=\"\"}})"
        ),
    ];
    for m in ["rss", "cache", "swap"] {
        checks.push(format!(
            "sum by (container) (container_memory_{m}{{{pod_sel}, container!=\"\", container!=\"POD\"}})"
        ));
    }
    for m in ["receive", "transmit"] {
        for what in ["bytes", "packets", "packets_dropped"] {
            checks.push(rate(
                &format!("container_network_{m}_{what}_total"),
                "",
                "pod",
            ));
        }
    }
    for m in ["reads", "writes"] {
        for what in ["total", "bytes_total"] {
            let extra = format!(", device=~\"{devices}\", container!=\"\"");
            checks.push(rate(
                &format!("container_fs_{m}_{what}"),
                &extra,
                "container",
            ));
        }
    }
    for q in &checks {
        let r = wait_for(p, q, "a Compute Resources selector");
        assert!(!r.is_empty(), "{q}");
    }
    // Values: traffic and direct writes are seen, on the pod's eth0 and on the disk's device.
    let sent = wait_for(
        p,
        &format!("container_network_transmit_packets_total{{{pod_sel}, interface=\"eth0\"}}"),
        "the pod's eth0",
    );
    assert!(sent[0].1 > 0.0, "{sent:?}");
    let written = wait_for(
        p,
        &format!("container_fs_writes_bytes_total{{{pod_sel}, device=\"{disk}\"}}"),
        "the pod's direct writes",
    );
    assert!(written[0].1 >= 262144.0, "{written:?}");
}

#[test]
fn kubernetes_mixin_rules_read_the_drop_in_profile() {
    let _turn = NODE_CGROUPS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        Path::new("/sys/fs/cgroup/memory").is_dir(),
        "needs the cgroup v1 hierarchies (root)"
    );
    let recorded = recorded_cadvisor();
    let (containers, target) = pod_containers(&recorded);
    let ids: Vec<String> = containers.iter().map(|r| r.labels["id"].clone()).collect();
    let dirs = CgroupDirs::make(&ids);
    // A real process in one container: 32 MB of anonymous memory and a little CPU.
    let id = target.labels["id"].clone();
    // It runs in a network namespace of its own, as a pod does, with traffic to the host end, and writes
    // to the disk directly (no page cache), so the dashboards' network and storage panels have data.
    let netns = NetNs::make();
    let scratch = tempfile::tempdir_in("/var/tmp").unwrap();
    let (disk, majmin) = disk_of(scratch.path());
    let file = scratch.path().join("direct");
    let worker = Command::new("ip")
        .args(["netns", "exec", &netns.name, "sh", "-c"])
        .arg(format!(
            "sleep 1; x=$(head -c 32000000 /dev/zero | tr '\\0' a); while :; do i=0; \
             while [ $i -lt 3000 ]; do i=$((i+1)); done; \
             /bin/busybox ping -c 1 -W 1 10.231.7.1 >/dev/null 2>&1; \
             dd if=/dev/zero of={} bs=64k count=4 oflag=direct 2>/dev/null; sleep 0.2; done",
            file.display()
        ))
        .spawn()
        .unwrap();
    let worker = Killed(worker);
    // Its limits, as the kubelet would set them: half a core, 256 MiB; and a write rule on the disk
    // (far above what it writes), without which v1 keeps no per-device counters for the cgroup.
    std::fs::write(
        cgroup_file("blkio", &id, "blkio.throttle.write_bps_device"),
        format!("{majmin} 1073741824"),
    )
    .unwrap();
    std::fs::write(cgroup_file("cpu", &id, "cpu.cfs_quota_us"), "50000").unwrap();
    std::fs::write(
        cgroup_file("memory", &id, "memory.limit_in_bytes"),
        "268435456",
    )
    .unwrap();
    for ctrl in ["memory", "cpu", "cpuacct", "pids", "blkio"] {
        std::fs::write(
            cgroup_file(ctrl, &id, "cgroup.procs"),
            worker.0.id().to_string(),
        )
        .unwrap();
    }

    let pods = load_json(&k8s_fixture("1_35/kubelet/pods"));
    let node = pods["items"][0]["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let (_ksm, ksm_addr, _ksm_dir) = kube_state_metrics(&pods);
    let (_replay, e) = recorded_kubelet(&[]);
    let p = start_prometheus_config(&config(&e.addr, &node, &ksm_addr));
    check_profile(&p, &node, &containers, target, &V1Cgroup(id), &disk);
    drop(worker);
    drop(netns);
    drop(dirs);
}

/// The kubelet's systemd-driver name of a recorded cgroupfs-driver container path:
/// `/kubepods/<qos>/pod<uid>/<id>` (or `/kubepods/pod<uid>/<id>` for a guaranteed pod) →
/// `/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/cri-containerd-<id>.scope`.
fn systemd_path(cgroupfs: &str) -> String {
    let parts: Vec<&str> = cgroupfs.trim_start_matches('/').split('/').collect();
    let (qos, pod, id) = match parts.as_slice() {
        ["kubepods", pod, id] => (None, *pod, *id),
        ["kubepods", qos, pod, id] => (Some(*qos), *pod, *id),
        _ => panic!("not a kubelet container path: {cgroupfs}"),
    };
    let uid = pod.trim_start_matches("pod").replace('-', "_");
    let pod_slice = match qos {
        Some(q) => format!("kubepods-{q}.slice/kubepods-{q}-pod{uid}.slice"),
        None => format!("kubepods-pod{uid}.slice"),
    };
    format!("/kubepods.slice/{pod_slice}/cri-containerd-{id}.scope")
}

/// A cgroup in the VM, read through its busybox httpd (`/cgi-bin/cat?<path under /sys/fs/cgroup>`).
struct V2Cgroup {
    url: String,
    rel: String,
}

impl V2Cgroup {
    fn key(&self, file: &str, key: Option<&str>) -> f64 {
        let url = format!(
            "{}/cgi-bin/cat?{}/{file}",
            self.url,
            self.rel.trim_start_matches('/')
        );
        let text = reqwest::blocking::get(&url).unwrap().text().unwrap();
        let value = match key {
            None => Some(text.trim()),
            Some(k) => text.lines().find_map(|l| l.strip_prefix(&format!("{k} "))),
        };
        value
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key:?} in {url}: {text:?}"))
    }
}

impl PodCgroup for V2Cgroup {
    fn memory(&self) -> (f64, f64, f64) {
        let stat = |key: &str| self.key("memory.stat", Some(key));
        let current = self.key("memory.current", None);
        (stat("anon"), current - stat("inactive_file"), stat("file"))
    }

    fn cpu_seconds(&self) -> f64 {
        self.key("cpu.stat", Some("usage_usec")) / 1e6
    }
}

/// The VM's script: its NIC on qemu's user network, the pod cgroups (`scopes`) under slices with every
/// controller, the worker in `target`'s cgroup and a network namespace of its own (a veth pair, as a pod
/// sandbox has), writing directly to /dev/vda; the exporter on :9100 reading the host's kubelet replay
/// at 10.0.2.2:`kubelet_port`; busybox httpd on :8080 serving cgroup files and `done`, which ends it.
fn v2_node_script(scopes: &[String], target: &str, kubelet_port: u16) -> String {
    let mut slices: Vec<String> = scopes
        .iter()
        .flat_map(|s| {
            let parts: Vec<&str> = s.trim_start_matches('/').split('/').collect();
            (1..parts.len()).map(move |n| parts[..n].join("/"))
        })
        .collect();
    slices.sort();
    slices.dedup();
    let scopes: Vec<&str> = scopes.iter().map(|s| s.trim_start_matches('/')).collect();
    format!(
        r#"# busybox sh runs its own applets first: iproute2 and the worker (dash) by path.
ip() {{ /usr/bin/ip "$@"; }}
nic=$(ls /sys/class/net | grep -v -x lo | head -n1)
ip link set lo up; ip link set "$nic" up
ip addr add 10.0.2.15/24 dev "$nic"; ip route add default via 10.0.2.2
cd /sys/fs/cgroup
for d in {slices}; do mkdir -p "$d"; echo "+cpu +memory +io +pids" > "$d/cgroup.subtree_control"; done
for d in {scopes}; do mkdir "$d"; done
T={target}
echo "50000 100000" > "$T/cpu.max"; echo 268435456 > "$T/memory.max"
cd /
ip netns add pod
ip link add vhost type veth peer name eth0 netns pod
ip addr add 10.231.7.1/24 dev vhost; ip link set vhost up
ip -n pod addr add 10.231.7.2/24 dev eth0; ip -n pod link set eth0 up; ip -n pod link set lo up
cat > /worker.sh <<'W'
sleep 1
x=$(head -c 32000000 /dev/zero | tr '\0' a)
while :; do
  i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done
  busybox ping -c 1 -W 1 10.231.7.1 >/dev/null 2>&1 || true
  dd if=/dev/zero of=/dev/vda bs=64k count=4 oflag=direct 2>/dev/null
  sleep 0.2
done
W
# Into its cgroup before `ip netns exec` (which gives its child a /sys without the cgroup mount).
/bin/sh -c 'echo $$ > "/sys/fs/cgroup/$1/cgroup.procs"; exec /usr/bin/ip netns exec pod /bin/sh /worker.sh' - "$T" &
stevedore --web.listen-address=0.0.0.0:9100 --kubelet.url=http://10.0.2.2:{kubelet_port} \
  --kubelet.interval=1s --kubernetes.pods-from=kubelet --no-collector.docker --collect.min-age=0 \
  > /out/exporter.log 2>&1 &
exporter=$!
mkdir -p /www/cgi-bin
printf '#!/usr/local/bin/busybox sh\necho Content-Type: text/plain\necho\ncat "/sys/fs/cgroup/$QUERY_STRING"\n' > /www/cgi-bin/cat
printf '#!/usr/local/bin/busybox sh\necho Content-Type: text/plain\necho\ntouch /run/stevedore-done\n' > /www/cgi-bin/done
chmod +x /www/cgi-bin/cat /www/cgi-bin/done
busybox httpd -p 8080 -h /www
echo "v2 node: $nic $(ip -o -4 addr show dev "$nic" | tr -s ' ' | cut -d' ' -f4), exporter pid $exporter" > /dev/ttyS0
sleep 3; tail -n 3 /out/exporter.log > /dev/ttyS0
while [ ! -e /run/stevedore-done ]; do sleep 1; done
"#,
        slices = slices.join(" "),
        scopes = scopes.join(" "),
        target = target.trim_start_matches('/'),
    )
}

/// The same profile answered from a live cgroup v2 kernel with the kubelet's systemd driver: the
/// recorded node's pod containers made as the systemd driver names them in the Debian userland's
/// unified hierarchy (systemd as PID 1, tests/common/vm.rs), the worker in one of them, the exporter
/// inside the VM reading this host's kubelet replay, Debian's Prometheus on this host scraping it
/// through qemu's port forward with the same job and rules.
#[test]
fn kubernetes_mixin_rules_read_a_cgroup_v2_node_with_the_systemd_driver() {
    let recorded = recorded_cadvisor();
    let (containers, target) = pod_containers(&recorded);
    let scopes: Vec<String> = containers
        .iter()
        .map(|c| systemd_path(&c.labels["id"]))
        .collect();
    let target_scope = systemd_path(&target.labels["id"]);
    let pods_file = k8s_fixture("1_35/kubelet/pods");
    let replay = recorded_kubelet_replay(&pods_file);
    let pods = load_json(&pods_file);
    let node = pods["items"][0]["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let (_ksm, ksm_addr, _ksm_dir) = kube_state_metrics(&pods);
    let (exporter_port, files_port) = (free_port(), free_port());
    let kernel = &vm::kernels()[0];
    let options = vm::Options {
        timeout_s: 900,
        forwards: vec![(exporter_port, 9100), (files_port, 8080)],
        ..vm::Options::new(true)
    };
    let script = v2_node_script(&scopes, &target_scope, replay.port);
    let running = vm::start(kernel, &release_binary(), &script, options);
    eprintln!(
        "v2 node: exporter on 127.0.0.1:{exporter_port}, its cgroup files on 127.0.0.1:{files_port}"
    );
    // The exporter answers once systemd is up and the script has run (about a minute under TCG).
    let exporter = format!("127.0.0.1:{exporter_port}");
    let deadline = Instant::now() + Duration::from_secs(240);
    while !reqwest::blocking::get(format!("http://{exporter}/metrics"))
        .is_ok_and(|r| r.status().is_success())
    {
        if running.console().contains("VM-DONE") {
            let boot = running.finish();
            panic!("the VM's script ended: {}", boot.read("script.log"));
        }
        assert!(
            Instant::now() < deadline,
            "the VM's exporter did not answer; console:\n{}",
            running.console()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let p = start_prometheus_config(&config(&exporter, &node, &ksm_addr));
    let cgroup = V2Cgroup {
        url: format!("http://127.0.0.1:{files_port}"),
        rel: target_scope.clone(),
    };
    check_profile(&p, &node, &containers, target, &cgroup, "/dev/vda");
    reqwest::blocking::get(format!("http://127.0.0.1:{files_port}/cgi-bin/done")).unwrap();
    let boot = running.finish();
    let log = boot.read("script.log");
    assert!(log.contains("script exit 0"), "{log}");
    println!(
        "kernel {}: profile answered from the v2 node; VM ran {:.0} s",
        kernel.release,
        boot.took.as_secs_f64()
    );
}
