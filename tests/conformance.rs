//! Family by family against the kubelet's recorded `/metrics/cadvisor` (Kubernetes 1.35, in
//! ../shared/fixtures): every `container_*` family it serves is served here with the same type and label
//! names, or is listed in `LEFT_OUT` with the reason. Stevedore's families come from the pinned surface
//! (recorded cgroup v1 and v2 trees, tests/golden/surface.txt) and from a live scrape of a real Docker
//! container with limits, a reservation and traffic (what the recorded trees cannot show: network,
//! processes' limits, tasks by state behind their flag). A family served and also listed fails the
//! test, so the list stays true.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

/// Recorded families not served, and why.
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "container_cpu_load_average_10s",
        "cAdvisor derives it from netlink taskstats (CAP_NET_ADMIN) and serves 0 without them; \
         no truthful source is read here",
    ),
    (
        "container_cpu_load_d_average_10s",
        "as container_cpu_load_average_10s",
    ),
];

#[derive(Debug, Clone, PartialEq)]
struct Family {
    kind: String,
    labels: BTreeSet<String>,
}

/// `container_*` families of a text exposition: type and label names.
fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE container_") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.insert(
                format!("container_{name}"),
                Family {
                    kind: kind.to_string(),
                    labels: BTreeSet::new(),
                },
            );
        }
    }
    for s in parse_exposition(text) {
        if let Some(f) = out.get_mut(&s.name) {
            f.labels.extend(s.labels.keys().cloned());
        }
    }
    out
}

/// The pinned surface's `container_*` families (`name type [labels] help`).
fn surface() -> BTreeMap<String, Family> {
    let text = std::fs::read_to_string("tests/golden/surface.txt").unwrap();
    (text.lines())
        .filter(|l| l.starts_with("container_"))
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let name = f.next().unwrap().to_string();
            let kind = f.next().unwrap().to_string();
            let labels = f.next().unwrap().trim_matches(['[', ']']);
            let labels = (labels.split(',').filter(|x| !x.is_empty()))
                .map(str::to_string)
                .collect();
            (name, Family { kind, labels })
        })
        .collect()
}

#[test]
fn every_recorded_cadvisor_family_is_served_alike_or_listed() {
    let recorded = std::fs::read_to_string(
        fixtures_dir().join("nri-kubernetes/1_35/kubelet/metrics/cadvisor"),
    )
    .unwrap();
    let recorded = families(&recorded);

    let c = Container::run(
        "conformance",
        &[
            "--memory",
            "64m",
            "--memory-reservation",
            "32m",
            "--cpus",
            "0.5",
        ],
        "while :; do wget -q -O /dev/null http://127.0.0.1:1/ 2>/dev/null; sleep 1; done",
    );
    // container_tasks_state is behind a flag (a read per thread per scrape).
    let e = docker_exporter(&["--collector.cgroup.tasks-state"]);
    let live = scrape_until(&e, 30, "the container named", known(&c));
    assert!(one(&live, "container_spec_memory_limit_bytes", &c.name).is_some());
    let mut ours = surface();
    for (name, f) in families(&e.metrics()) {
        let entry = ours.entry(name).or_insert_with(|| f.clone());
        entry.labels.extend(f.labels);
    }

    let left_out: BTreeMap<&str, &str> = LEFT_OUT.iter().copied().collect();
    let mut problems = Vec::new();
    for (name, want) in &recorded {
        match (ours.get(name), left_out.get(name.as_str())) {
            (Some(_), Some(_)) => problems.push(format!("{name}: served, but listed as left out")),
            (None, None) => problems.push(format!("{name}: neither served nor listed")),
            (Some(got), None) if got != want => {
                problems.push(format!("{name}: recorded {want:?}, served {got:?}"))
            }
            _ => {}
        }
    }
    for name in left_out.keys() {
        if !recorded.contains_key(*name) {
            problems.push(format!("{name}: listed, but not a recorded family"));
        }
    }
    assert_eq!(problems, Vec::<String>::new());
    let served = recorded.len() - LEFT_OUT.len();
    println!(
        "{served} of {} recorded container_* families served alike",
        recorded.len()
    );
}
