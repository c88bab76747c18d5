//! The public surface, pinned: every family's name, type, HELP and label names, from the real binary on
//! recorded inputs (the procfs/sysfs fixture, the recorded cgroup v1 and v2 trees, and the recorded
//! kubelet payloads replayed), compared with `tests/golden/surface.txt` (as node_exporter's
//! `e2e-output.txt`). A deliberate change updates the golden file in the same commit:
//!   STEVEDORE_UPDATE_GOLDEN=1 cargo test --test surface

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::kube::*;
use common::*;

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    labels: BTreeSet<String>,
}

/// Families of a text 0.0.4 exposition, by name.
fn families(text: &str, into: &mut BTreeMap<String, Family>) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            into.entry(name.to_string()).or_default().help = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            into.entry(name.to_string()).or_default().kind = kind.to_string();
        }
    }
    for s in parse_exposition(text) {
        let f = into
            .get_mut(&s.name)
            .unwrap_or_else(|| panic!("series {} without # TYPE", s.name));
        f.labels.extend(s.labels.keys().cloned());
    }
}

/// The procfs fixture extracted, with `sys/fs/cgroup` pointing at `cgroups` (if any).
fn node_fixture(cgroups: Option<&Path>) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    extract_procfs(dir.path());
    let sys = dir.path().join("fixtures/sys");
    if let Some(tree) = cgroups {
        std::os::unix::fs::symlink(tree, sys.join("fs/cgroup")).unwrap();
    }
    let proc = dir.path().join("fixtures/proc");
    (dir, proc, sys)
}

fn scrape_fixture(cgroups: &Path, into: &mut BTreeMap<String, Family>) {
    let (_dir, proc, sys) = node_fixture(Some(cgroups));
    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        &format!("--path.sysfs={}", sys.display()),
        "--docker.host=unix:///nonexistent.sock",
    ]);
    families(&e.metrics(), into);
}

fn render(families: &BTreeMap<String, Family>) -> String {
    let mut out = String::new();
    for (name, f) in families {
        let labels: Vec<&str> = f.labels.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "{name} {} [{}] {}\n",
            f.kind,
            labels.join(","),
            f.help
        ));
    }
    out
}

#[test]
fn public_surface_matches_the_golden_file() {
    let mut all = BTreeMap::new();
    // Node collectors and containers from the recorded cgroup v1 and v2 trees.
    scrape_fixture(&v1_tree(), &mut all);
    scrape_fixture(&v2_tree(), &mut all);
    // A v2 pod and container with a CPU quota, throttling and PSI (telegraf's recorded files).
    let (tree, _, _) = v2_container_tree();
    scrape_fixture(&tree.path().join("fs/cgroup"), &mut all);
    // The Kubernetes families: the recorded kubelet replayed, cgroups not readable (usage from the summary).
    let (_dir, proc, sys) = node_fixture(None);
    let (_replay, e) = recorded_kubelet(&[
        &format!("--path.procfs={}", proc.display()),
        &format!("--path.sysfs={}", sys.display()),
    ]);
    // Both sources must have answered: the kubelet's summary, and the pod list (the kubernetes
    // collector's families; under load the watch can sync after the first summary).
    scrape_until(&e, 30, "the recorded summary and pods", |s| {
        collector_success(s, "kubelet") == Some(1.0)
            && s.iter().any(|x| x.name == "stevedore_container_state")
    });
    families(&e.metrics(), &mut all);

    // Figures of this machine's process differ, their families do not; nothing else may vary.
    let got = render(&all);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/surface.txt");
    if std::env::var_os("STEVEDORE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    if got != want {
        let (g, w): (BTreeSet<&str>, BTreeSet<&str>) =
            (got.lines().collect(), want.lines().collect());
        let added: Vec<_> = g.difference(&w).collect();
        let removed: Vec<_> = w.difference(&g).collect();
        panic!(
            "the public surface changed (STEVEDORE_UPDATE_GOLDEN=1 to accept a deliberate change)\n\
             added: {added:#?}\nremoved: {removed:#?}"
        );
    }
}
