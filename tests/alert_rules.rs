//! The shipped alert rules (`deploy/prometheus/`): valid for Prometheus, their unit tests pass under
//! promtool, and every metric they read is one Stevedore exposes.

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool (Debian's prometheus package; ./scripts/test installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn alert_rules_are_valid_and_their_unit_tests_pass() {
    let check = promtool(&["check", "rules", "stevedore-alerts.yml"]);
    assert!(check.contains("SUCCESS: 27 rules found"), "{check}");
    let test = promtool(&["test", "rules", "stevedore-alerts.test.yml"]);
    assert!(test.contains("SUCCESS"), "{test}");
}

/// Every alert has a promtool unit test that expects it to fire.
#[test]
fn every_alert_has_a_unit_test_that_fires_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let rules = std::fs::read_to_string(dir.join("stevedore-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("stevedore-alerts.test.yml")).unwrap()
        + &std::fs::read_to_string(dir.join("stevedore-anomaly.test.yml")).unwrap();
    for name in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let fired = tests
            .split("alertname: ")
            .skip(1)
            .any(|t| t.starts_with(&format!("{name}\n")) && t.contains("exp_labels"));
        assert!(fired, "{name}: no unit test expects it to fire");
    }
}

/// The anomaly band on a recorded real container: the test file is what its generator makes of the
/// recording (testdata/rec-shop.json), and it passes.
#[test]
fn the_anomaly_band_holds_a_recorded_container_and_catches_an_anomaly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let out = Command::new("python3")
        .args(["testdata/anomaly-test.py", "testdata/rec-shop.json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read(dir.join("stevedore-anomaly.test.yml")).unwrap();
    assert!(
        out.stdout == committed,
        "stevedore-anomaly.test.yml is stale: regenerate it"
    );
    let test = promtool(&["test", "rules", "stevedore-anomaly.test.yml"]);
    assert!(test.contains("SUCCESS"), "{test}");
}

#[test]
fn every_metric_the_rules_read_is_exposed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules =
        std::fs::read_to_string(root.join("deploy/prometheus/stevedore-alerts.yml")).unwrap();
    // The expressions: `expr:` lines and the lines of an `expr: |` block below them.
    let mut exprs = Vec::new();
    let mut block: Option<usize> = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        match block {
            Some(i) if indent > i && !line.trim().is_empty() => {
                exprs.push(line.trim().to_string());
                continue;
            }
            _ => block = None,
        }
        if let Some(e) = line.trim_start().strip_prefix("expr:") {
            if e.trim() == "|" {
                block = Some(indent);
            } else {
                exprs.push(e.trim().to_string());
            }
        }
    }
    assert!(exprs.len() >= 7, "{exprs:?}");
    // Metric names in them: identifiers outside braces (label names and values are inside), not followed
    // by `(` (functions, `group_left ()`), and not recorded ones (`level:metric:operation`, checked below).
    let mut names: Vec<String> = Vec::new();
    for e in &exprs {
        let chars: Vec<char> = e.chars().chain(std::iter::once(' ')).collect();
        let mut depth: usize = 0;
        let mut word = String::new();
        for (i, &c) in chars.iter().enumerate() {
            if depth == 0 && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                word.push(c);
                continue;
            }
            let call = chars[i..].iter().find(|c| **c != ' ') == Some(&'(');
            if word.contains('_')
                && !word.contains(':')
                && !call
                && !word.starts_with(char::is_numeric)
                && !names.contains(&word)
            {
                names.push(std::mem::take(&mut word));
            }
            word.clear();
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    assert!(names.len() >= 7, "{names:?}");
    // The families Stevedore defines, as registered in src/expose (counters without _total).
    let mut defined = String::new();
    for f in std::fs::read_dir(root.join("src/expose"))
        .unwrap()
        .flatten()
    {
        defined.push_str(&std::fs::read_to_string(f.path()).unwrap());
    }
    // kube-state-metrics' series, read only to stand aside where it is there (PodContainerRestartLoop).
    for n in names.iter().filter(|n| !n.starts_with("kube_")) {
        let registered = n.strip_suffix("_total").unwrap_or(n);
        assert!(
            defined.contains(&format!("\"{registered}\"")),
            "{n} is read by an alert rule but no family of that name is in src/expose"
        );
    }
}

/// Every alert has a summary, a description and a runbook that exists in docs/runbooks.md.
#[test]
fn every_alert_has_a_summary_description_and_runbook() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("deploy/prometheus/stevedore-alerts.yml")).unwrap(),
    )
    .unwrap();
    let runbooks = std::fs::read_to_string(root.join("docs/runbooks.md")).unwrap();
    let mut n = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            let Some(name) = rule["alert"].as_str() else {
                // A recording rule: its name is level:metric:operation, and what it reads carries the job.
                let record = rule["record"].as_str().unwrap();
                assert_eq!(
                    record.split(':').count(),
                    3 + record.matches(":mean3d").count() + record.matches(":stddev3d").count(),
                    "{record}"
                );
                assert!(
                    expr.contains("job=\"stevedore\"")
                        || expr.contains(record.rsplit_once(':').unwrap().0),
                    "{record}: {expr}"
                );
                continue;
            };
            let a = &rule["annotations"];
            assert!(
                a["summary"].is_string() && a["description"].is_string(),
                "{name}"
            );
            let url = a["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no runbook_url"));
            let anchor = url
                .split_once("docs/runbooks.md#")
                .map(|x| x.1)
                .unwrap_or("");
            assert_eq!(anchor, name.to_lowercase(), "{name}: {url}");
            assert!(
                runbooks.contains(&format!("\n## {name}\n")),
                "{name}: no runbook section"
            );
            // The job selector the chart replaces is in every expression, or in the recorded series it reads.
            assert!(
                expr.contains("job=\"stevedore\"") || expr.contains("container:"),
                "{name}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 18);
}
