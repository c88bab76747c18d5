//! Delivery by GitOps with the real helm v4: the chart renders the same bytes on every run (Argo CD never
//! shows it out of sync), its values.schema.json refuses a misspelt or mistyped value and accepts every
//! documented one, the Argo CD Application's and the Flux HelmRelease's values render, and the chart is
//! pushed to a local OCI registry (Debian's docker-registry) and installed from there. The Application is
//! checked against Argo CD's CRD schema (an excerpt kept in deploy/gitops/schema).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::start_registry;
use serde_json::Value;

const CHART: &str = "charts/stevedore";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn helm_bin() -> PathBuf {
    let p = std::env::var("HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/k8s-tools/bin/helm"));
    assert!(
        p.exists(),
        "{}: run ./scripts/test (it installs helm)",
        p.display()
    );
    p
}

fn helm_out(args: &[&str]) -> Output {
    Command::new(helm_bin())
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn helm(args: &[&str]) -> String {
    let out = helm_out(args);
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn template(chart: &str, extra: &[&str]) -> String {
    let mut args = vec!["template", "stevedore", chart, "--namespace", "monitoring"];
    args.extend_from_slice(extra);
    helm(&args)
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Every documented values file: the defaults and the chart's ci/ files.
fn values_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(CHART).join("ci"))
        .unwrap()
        .flatten()
        .map(|f| f.path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files
}

#[test]
fn the_chart_renders_the_same_bytes_on_every_run() {
    for f in values_files() {
        let first = template(CHART, &["-f", &f]);
        let second = template(CHART, &["-f", &f]);
        assert!(first.len() > 5_000, "{f}: {} bytes", first.len());
        assert!(first == second, "{f}: two renders differ");
    }
    // Nothing in the templates can vary: no random values, no cluster lookups, no clock.
    for t in std::fs::read_dir(root().join(CHART).join("templates"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(t.path()).unwrap();
        for f in [
            "rand",
            "lookup",
            "now",
            "uuidv4",
            "genCA",
            "genPrivateKey",
            "genSelfSigned",
        ] {
            assert!(!text.contains(f), "{}: {f}", t.path().display());
        }
    }
}

#[test]
fn the_values_schema_refuses_misspelt_and_mistyped_values() {
    // The committed schema is what the generator makes of values.yaml.
    let out = Command::new("python3")
        .arg(root().join(CHART).join("ci/values-schema.py"))
        .arg(root().join(CHART).join("values.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read(root().join(CHART).join("values.schema.json")).unwrap();
    assert!(
        out.stdout == committed,
        "values.schema.json is stale: python3 charts/stevedore/ci/values-schema.py \
         charts/stevedore/values.yaml > charts/stevedore/values.schema.json"
    );
    for (set, says) in [
        ("imagee.tag=x", "additional properties 'imagee' not allowed"),
        (
            "image.tagg=x",
            "at '/image': additional properties 'tagg' not allowed",
        ),
        ("port=http", "at '/port': got string, want integer"),
        (
            "kubernetes.podsFrom=kubelett",
            "value must be one of 'apiserver', 'kubelet'",
        ),
        (
            "ui.enabled=maybe",
            "at '/ui/enabled': got string, want boolean",
        ),
    ] {
        let out = helm_out(&["template", "stevedore", CHART, "--set", set]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(err.contains(says), "--set {set}: {err}");
    }
    // Every documented value is accepted: the defaults, each ci/ file, and lint in strict mode.
    helm(&["lint", "--strict", CHART]);
    for f in values_files() {
        helm(&["lint", "--strict", CHART, "-f", &f]);
    }
}

/// The values an Argo CD Application or a Flux HelmRelease passes, written to a values file.
fn values_of(doc: &Value, pointer: &str, dir: &Path, name: &str) -> String {
    let v = doc
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{name}: no {pointer}"));
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(v).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn argo_cd_and_flux_deliver_the_same_release() {
    let app = yaml("deploy/gitops/argocd-application.yaml");
    assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(app["kind"], "Application");
    let source = &app["spec"]["source"];
    assert_eq!(source["chart"], "stevedore");
    let chart = yaml("charts/stevedore/Chart.yaml");
    assert_eq!(source["targetRevision"], chart["version"]);
    let text = std::fs::read_to_string(root().join("deploy/gitops/flux-helmrelease.yaml")).unwrap();
    let flux: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let oci = flux.iter().find(|d| d["kind"] == "OCIRepository").unwrap();
    let release = flux.iter().find(|d| d["kind"] == "HelmRelease").unwrap();
    assert_eq!(oci["spec"]["ref"]["tag"], chart["version"]);
    assert_eq!(release["spec"]["chartRef"]["name"], oci["metadata"]["name"]);
    assert_eq!(
        oci["spec"]["url"].as_str().unwrap(),
        format!("{}/stevedore", source["repoURL"].as_str().unwrap())
    );
    let dir = tempfile::tempdir().unwrap();
    let argo = values_of(
        &app,
        "/spec/source/helm/valuesObject",
        dir.path(),
        "argo.json",
    );
    let fluxv = values_of(release, "/spec/values", dir.path(), "flux.json");
    let a = template(CHART, &["-f", &argo]);
    assert!(
        a.contains("kind: PrometheusRule") && a.contains("kind: ServiceMonitor"),
        "{a}"
    );
    assert!(
        a == template(CHART, &["-f", &fluxv]),
        "Argo CD and Flux render differently"
    );
}

#[test]
fn the_chart_is_pushed_to_an_oci_registry_and_installed_from_there() {
    let registry = start_registry();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    helm(&["package", CHART, "-d", &d]);
    let version = yaml("charts/stevedore/Chart.yaml")["version"]
        .as_str()
        .unwrap()
        .to_string();
    let package = format!("{d}/stevedore-{version}.tgz");
    let repo = format!("oci://{}/charts", registry.addr);
    let out = helm_out(&["push", &package, &repo, "--plain-http"]);
    let pushed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{pushed}");
    let digest = pushed
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("{pushed}"))
        .to_string();
    // The registry holds it under that digest.
    let manifest = reqwest::blocking::Client::new()
        .get(format!(
            "http://{}/v2/charts/stevedore/manifests/{version}",
            registry.addr
        ))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.headers()["docker-content-digest"], digest.as_str());
    // Installed from the registry (a client-side dry run: no cluster here), by version and by digest,
    // it renders what the working tree renders.
    let chart = format!("{repo}/stevedore");
    let by_digest = format!("{chart}@{digest}");
    let local = template(CHART, &[]);
    for (reference, extra) in [(&chart, vec!["--version", &version]), (&by_digest, vec![])] {
        let mut args = vec![
            "install",
            "stevedore",
            reference.as_str(),
            "--plain-http",
            "--dry-run=client",
            "--namespace",
            "monitoring",
        ];
        args.extend(extra.iter().copied());
        let out = helm(&args);
        assert!(out.contains("STATUS: pending-install"), "{out}");
        assert!(out.contains("kind: DaemonSet"), "{out}");
        let mut t = vec!["--plain-http"];
        t.extend(extra.iter().copied());
        assert!(
            template(reference, &t) == local,
            "{reference} renders differently"
        );
    }
}

/// Errors of `doc` against a JSON Schema, by the jsonschema package of the venv ./scripts/test makes
/// (kubernetes-validate's own dependency), one line each; empty when it is valid.
fn schema_errors(schema: &Path, doc: &Value) -> Vec<String> {
    let python = root().join("target/k8s-tools/venv/bin/python");
    assert!(python.exists(), "{}: run ./scripts/test", python.display());
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        doc = json.load(sys.stdin)\n\
        v = jsonschema.Draft7Validator(schema)\n\
        for e in sorted(v.iter_errors(doc), key=str):\n\
        \x20   print('/'.join(map(str, e.absolute_path)) + ': ' + e.message)\n";
    let mut child = Command::new(python)
        .args(["-c", script])
        .arg(schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), doc).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the schema check itself failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// The Application is valid against Argo CD's own CRD schema (an excerpt kept in deploy/gitops/schema,
/// its source named in it), and the same check refuses a misspelt field and a mistyped one.
#[test]
fn the_argo_cd_application_is_valid_against_argo_cds_crd_schema() {
    let schema = root().join("deploy/gitops/schema/argocd-application-v1alpha1.json");
    let app = yaml("deploy/gitops/argocd-application.yaml");
    assert_eq!(app["kind"], "Application");
    assert_eq!(schema_errors(&schema, &app), Vec::<String>::new());

    let mut misspelt = app.clone();
    misspelt["spec"]["syncPolicy"]["automated"]["selfheal"] = Value::Bool(true);
    misspelt["spec"]["source"]["helm"]["valueObject"] = serde_json::json!({});
    let errors = schema_errors(&schema, &misspelt);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("'selfheal' was unexpected")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("'valueObject' was unexpected")),
        "{errors:?}"
    );

    let mut mistyped = app;
    mistyped["spec"]["syncPolicy"]["retry"]["limit"] = Value::from("5");
    mistyped["spec"].as_object_mut().unwrap().remove("project");
    let errors = schema_errors(&schema, &mistyped);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec/syncPolicy/retry/limit: '5' is not of type 'integer'")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("'project' is a required property")),
        "{errors:?}"
    );
}
