//! The kubelet client's credentials and transport: token rotation, 401, 403 and unreachable with
//! recovery, HTTPS with a CA file or skip-verify.

mod common;

use std::time::Duration;

use common::kube::*;
use common::*;

#[test]
fn kubelet_token_rotation_401_403_and_unreachable_without_restart() {
    let replay = Replay::start(&[
        "--summary",
        k8s_fixture("1_35/kubelet/stats/summary").to_str().unwrap(),
        "--token",
        "first",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first").unwrap();
    let e = Exporter::start(&[
        "--kubelet.url",
        &replay.url(),
        "--kubelet.token-file",
        token.to_str().unwrap(),
        "--kubelet.interval=500ms",
        "--no-collector.docker",
        "--collect.min-age=0",
    ]);
    let mut log = Vec::new();
    wait_up(&e, "kubelet", 1.0, "start");
    // The kubelet now wants a new token (rotated): 401, one line naming the flag; cgroup metrics still served.
    replay.control(serde_json::json!({"token": "second"}));
    wait_up(&e, "kubelet", 0.0, "401");
    let line = wait_log(&e, &mut log, &["source failing", "401"], "the 401");
    assert!(line.contains("--kubelet.token-file"), "{line}");
    let s = parse_exposition(&e.metrics());
    assert_eq!(collector_success(&s, "kubelet"), Some(0.0));
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
    assert!(
        !s.iter().any(|x| x.name.starts_with("stevedore_pod_")),
        "no stale summary series"
    );
    assert!(
        s.iter()
            .any(|x| x.name == "container_cpu_usage_seconds_total")
    );
    // The projected token rotates in its file: picked up without a restart.
    std::fs::write(&token, "second\n").unwrap();
    wait_up(&e, "kubelet", 1.0, "rotated token");
    wait_log(&e, &mut log, &["source recovered", "kubelet"], "recovery");
    assert!(
        replay
            .requests()
            .iter()
            .any(|(_, a)| a.as_deref() == Some("Bearer second"))
    );
    // 403: the line names the RBAC rule.
    replay.control(serde_json::json!({"status": {"kubelet": 403}}));
    wait_up(&e, "kubelet", 0.0, "403");
    let line = wait_log(&e, &mut log, &["source failing", "403"], "the 403");
    assert!(
        line.contains("nodes/stats") && line.contains("ClusterRole"),
        "{line}"
    );
    replay.control(serde_json::json!({"status": {"kubelet": 0}}));
    wait_up(&e, "kubelet", 1.0, "after 403");
    // Unreachable.
    drop(replay);
    wait_up(&e, "kubelet", 0.0, "unreachable");
    let line = wait_log(
        &e,
        &mut log,
        &["source failing", "unreachable"],
        "unreachable",
    );
    assert!(line.contains("kubelet /stats/summary"), "{line}");
    std::thread::sleep(Duration::from_secs(2));
    log.extend(e.drain_log());
    let n = log
        .iter()
        .filter(|l| l.contains("source failing") && l.contains("unreachable"))
        .count();
    assert_eq!(n, 1, "one line per state change: {log:#?}");
}

#[test]
fn kubelet_over_https_with_ca_file_or_skip_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let replay = Replay::start(&[
        "--summary",
        k8s_fixture("1_35/kubelet/stats/summary").to_str().unwrap(),
        "--tls",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    ]);
    let url = format!("https://127.0.0.1:{}", replay.port);
    let common = [
        "--kubelet.interval=500ms",
        "--no-collector.docker",
        "--no-collector.cgroup",
        "--collect.min-age=0",
    ];
    let mut args = vec![
        "--kubelet.url",
        &url,
        "--kubelet.ca-file",
        ca.to_str().unwrap(),
    ];
    args.extend(common);
    let e = Exporter::start(&args);
    wait_up(&e, "kubelet", 1.0, "with the CA");
    let s = parse_exposition(&e.metrics());
    assert!(
        value(
            &s,
            "stevedore_node_filesystem_capacity_bytes",
            &[("filesystem", "rootfs")]
        )
        .is_some()
    );
    drop(e);
    // Without the CA the certificate is refused, and the log says so.
    let mut args = vec!["--kubelet.url", url.as_str()];
    args.extend(common);
    let e = Exporter::start(&args);
    let mut log = Vec::new();
    wait_log(
        &e,
        &mut log,
        &["source failing", "kubelet"],
        "an untrusted certificate",
    );
    assert_eq!(source_up(&e, "kubelet"), Some(0.0));
    drop(e);
    let mut args = vec![
        "--kubelet.url",
        url.as_str(),
        "--kubelet.insecure-skip-verify",
    ];
    args.extend(common);
    let e = Exporter::start(&args);
    wait_up(&e, "kubelet", 1.0, "skip-verify");
}
