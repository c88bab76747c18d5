//! The live view in real headless Chromium (Debian's `chromium`), against the real binary and real Docker
//! containers: the table's figures against the kernel's and Docker's, live updates, containers that come
//! and go, a container's page with its charts and processes, markup in attacker-controlled labels shown
//! as text, basic auth, the page turned off, and the Kubernetes view of the recorded node. Screenshots
//! of each page are kept under target/test-artifacts/.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::Browser;
use common::kube::*;
use common::*;
use serde_json::Value;

/// One busy-loop test at a time: each asserts a `--cpus 0.5` loop gets 40-60 % of a core, which two
/// browsers and two loops on a 2-core machine would not leave it.
static BUSY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn busy_turn() -> std::sync::MutexGuard<'static, ()> {
    BUSY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether the table's sticky header ends above its first row.
const HEADER_CLEAR: &str = "(() => { const h = document.querySelector('#containers thead th').getBoundingClientRect(); \
    const r = document.querySelector('#rows tr').getBoundingClientRect(); return h.bottom <= r.top + 1; })()";

fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts")
        .join(name)
}

/// The selector of a container's row in the table.
fn row(id: &str) -> String {
    format!("tr.data[data-id=\"/docker/{id}\"]")
}

/// The text of one cell of a row (`None` when the row is not there).
fn cell(b: &mut Browser, row: &str, col: &str) -> Option<String> {
    let v = b.eval(&format!(
        "(() => {{ const td = document.querySelector('{row} td[data-col=\"{col}\"]'); return td ? td.textContent : null; }})()"
    ));
    v.as_str().map(str::to_string)
}

fn wait_row(b: &mut Browser, id: &str, secs: u64) {
    let sel = row(id);
    b.wait_for(
        secs,
        &format!("the row of {id}"),
        &format!("document.querySelector('{sel}') !== null"),
    );
}

/// The number in front of `" %"` in a CPU cell such as `50.1 % / 0.5 CPU`.
fn percent(text: &str) -> f64 {
    text.split(" %").next().unwrap().trim().parse().unwrap()
}

#[test]
fn docker_table_live_updates_and_container_page() {
    let _turn = busy_turn();
    let busy = Container::run(
        "live-busy",
        &["--cpus", "0.5", "-m", "64m"],
        "while :; do :; done",
    );
    let e = Exporter::start(&["--collect.min-age=0"]);
    let mut b = Browser::start(1400, 900);
    b.goto(&e.url("/"));
    // A mark the page keeps only while it is not reloaded.
    b.eval("window.__notReloaded = true");
    wait_row(&mut b, &busy.id, 30);
    let sel = row(&busy.id);

    // CPU as docker stats writes it, and its limit: wait for the rate to settle on the quota.
    let mut cpu = String::new();
    for _ in 0..40 {
        cpu = cell(&mut b, &sel, "cpu").unwrap();
        if cpu.contains('%') && (40.0..=60.0).contains(&percent(&cpu)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("CPU cell: {cpu}");
    assert!((40.0..=60.0).contains(&percent(&cpu)), "{cpu}");
    let nano: f64 = busy.inspect("{{.HostConfig.NanoCpus}}").parse().unwrap();
    assert!(cpu.ends_with(&format!(" / {} CPU", nano / 1e9)), "{cpu}");
    // Memory: working set / the limit Docker set, and the share.
    let limit: f64 = busy.inspect("{{.HostConfig.Memory}}").parse().unwrap();
    assert_eq!(limit, 64.0 * 1024.0 * 1024.0);
    let mem = cell(&mut b, &sel, "memory").unwrap();
    println!("memory cell: {mem}");
    assert!(mem.contains(" / 64 MiB ("), "{mem}");
    assert!(mem.ends_with(" %)"), "{mem}");
    // The working set the page shows is the kernel's: usage less inactive file pages.
    let usage = read_num(&busy.v1_file("memory", "memory.usage_in_bytes"), None);
    let inactive = read_num(
        &busy.v1_file("memory", "memory.stat"),
        Some("total_inactive_file"),
    );
    let shown = b.eval(&format!(
        "view.frame.containers.find(r => r.id === '/docker/{}').memory",
        busy.id
    ));
    let shown = shown.as_f64().unwrap();
    println!("working set shown {shown}, kernel {}", usage - inactive);
    assert!(
        (shown - (usage - inactive)).abs() <= 256.0 * 1024.0,
        "{shown}"
    );
    assert_eq!(cell(&mut b, &sel, "name").unwrap(), busy.name);
    assert_eq!(cell(&mut b, &sel, "image").unwrap(), IMAGE);
    assert!(cell(&mut b, &sel, "state").unwrap().starts_with("running"));
    // PIDs as the kernel counts them.
    let pids = read_num(&busy.v1_file("pids", "pids.current"), None);
    assert_eq!(cell(&mut b, &sel, "pids").unwrap(), format!("{pids}"));

    // The root cgroup and the machine on top.
    assert_eq!(
        b.eval("document.querySelector('#rows tr').classList.contains('root')"),
        Value::Bool(true)
    );
    let cards =
        b.eval("[...document.querySelectorAll('#machine .card h4')].map(h => h.textContent)");
    println!("machine cards: {cards}");
    for want in ["CPU", "Memory", "Load"] {
        assert!(
            cards.as_array().unwrap().iter().any(|c| c == want),
            "{cards}"
        );
    }
    // The page updates without a reload: the uptime cell moves on.
    let up1 = cell(&mut b, &sel, "uptime").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let up2 = cell(&mut b, &sel, "uptime").unwrap();
    assert_ne!(up1, up2, "the table did not update");

    // A container started now appears, and goes when it is removed.
    let short = Container::run("live-short", &[], "sleep 600");
    wait_row(&mut b, &short.id, 20);
    // Its cgroup may show before Docker's event names it (a loaded machine): wait for the name.
    let short_row = row(&short.id);
    b.wait_for(
        10,
        "the new container's name",
        &format!(
            "document.querySelector('{short_row} td[data-col=\"name\"]').textContent === '{}'",
            short.name
        ),
    );
    assert_eq!(
        b.eval(HEADER_CLEAR),
        true,
        "the table's header covers its rows"
    );
    b.screenshot(&artifact("live-table.png"));
    // Sort by name ascending, and filter by a name.
    b.eval("document.querySelector('th[data-col=\"name\"]').click()");
    assert_eq!(
        b.eval("document.querySelector('th[data-col=\"name\"]').getAttribute('aria-sort')"),
        "ascending"
    );
    let names = b.eval(
        "[...document.querySelectorAll('#rows tr.data:not(.root):not(.pod):not(.child) td[data-col=\"name\"]')].map(t => t.textContent)",
    );
    let names: Vec<String> = serde_json::from_value(names).unwrap();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(names, sorted);
    b.eval(&format!(
        "(() => {{ const f = document.getElementById('filter'); f.value = '{}'; f.dispatchEvent(new Event('input')); }})()",
        short.name
    ));
    let shown = b.eval("document.querySelectorAll('#rows tr.data:not(.root)').length");
    assert_eq!(shown, 1);
    b.eval("(() => { const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input')); })()");
    let short_id = short.id.clone();
    drop(short);
    let gone = row(&short_id);
    b.wait_for(
        20,
        "the removed container's row to go",
        &format!("document.querySelector('{gone}') === null"),
    );
    assert_eq!(b.eval("window.__notReloaded === true"), Value::Bool(true));

    // The container's page: charts fill, the processes and the cgroup path are shown.
    b.eval(&format!("document.querySelector('{sel}').click()"));
    b.wait_for(
        5,
        "the container page",
        "!document.getElementById('detail').hidden",
    );
    for chart in ["cpu", "memory", "network", "block"] {
        b.wait_for(
            20,
            &format!("the {chart} chart to draw"),
            &format!("Number(document.querySelector('canvas[data-chart=\"{chart}\"]').dataset.points) >= 3"),
        );
    }
    b.wait_for(
        10,
        "the process table",
        "document.querySelectorAll('#d-procs tbody tr').length > 0",
    );
    let procs = b.eval(
        "[...document.querySelectorAll('#d-procs tbody tr')].map(tr => [...tr.children].map(td => td.textContent))",
    );
    println!("processes: {procs}");
    let procs: Vec<Vec<String>> = serde_json::from_value(procs).unwrap();
    let loop_pid: String = busy.inspect("{{.State.Pid}}");
    let p = procs
        .iter()
        .find(|p| p[0] == loop_pid)
        .unwrap_or_else(|| panic!("pid {loop_pid} not in {procs:?}"));
    assert_eq!(p[1], "root");
    assert!(p[6].contains("while :; do :; done"), "{p:?}");
    let facts = b.eval("document.getElementById('d-facts').textContent");
    assert!(
        facts
            .as_str()
            .unwrap()
            .contains(&format!("/docker/{}", busy.id)),
        "{facts}"
    );
    assert!(facts.as_str().unwrap().contains("64 MiB"), "{facts}");
    // The CPU chart's line sits near the quota: the page's history holds the server's rates.
    let last = b.eval("view.history[view.history.length - 1].r.cpu");
    assert!((40.0..=60.0).contains(&last.as_f64().unwrap()), "{last}");
    b.screenshot(&artifact("live-container.png"));
    assert_eq!(
        b.eval("window.__csp.length"),
        0,
        "{}",
        b.eval("window.__csp")
    );
    assert!(b.errors().is_empty(), "{:?}", b.errors());
}

#[test]
fn markup_in_labels_is_shown_as_text() {
    let img = r#"<img src=x onerror="window.pwned=2">"#;
    let script = "<script>window.pwned=3</script>";
    let evil = Container::run(
        "live-evil",
        &[
            "--label",
            &format!("io.kubernetes.pod.name={img}"),
            "--label",
            &format!("io.kubernetes.container.name={script}"),
            "--label",
            "io.kubernetes.pod.namespace=ns<b>x</b>",
            "--label",
            &format!("note=<svg onload=\"window.pwned=4\"></svg>{script}"),
        ],
        "sleep 600",
    );
    let e = Exporter::start(&["--collect.min-age=0"]);
    let mut b = Browser::start(1400, 900);
    b.goto(&e.url("/"));
    wait_row(&mut b, &evil.id, 30);
    let sel = row(&evil.id);
    // The CRI container label names the row, as text.
    assert_eq!(cell(&mut b, &sel, "name").unwrap(), script);
    b.eval(&format!("document.querySelector('{sel}').click()"));
    b.wait_for(
        10,
        "the labels",
        "document.getElementById('d-labels').textContent.includes('note')",
    );
    let labels = b.eval("document.getElementById('d-labels').textContent");
    let labels = labels.as_str().unwrap();
    assert!(labels.contains(img), "{labels}");
    assert!(labels.contains("ns<b>x</b>"), "{labels}");
    std::thread::sleep(Duration::from_secs(2));
    // No element came from the text, and nothing ran.
    let injected = b.eval(
        "document.querySelectorAll('img, svg, b, script:not([src=\"/ui/app.js\"]), iframe, object').length",
    );
    assert_eq!(injected, 0);
    assert_eq!(b.eval("typeof window.pwned"), "undefined");
    b.screenshot(&artifact("live-markup.png"));
    assert!(b.errors().is_empty(), "{:?}", b.errors());
}

/// On the default `--collect.min-age` (1s), beside a Prometheus-like scraper: every frame after the first
/// has rates (no frame made of a reused run), about a second apart, and its CPU figure is the kernel's.
#[test]
fn stream_frames_each_have_rates_on_the_default_min_age() {
    let _turn = busy_turn();
    use std::io::BufRead;
    let busy = Container::run("live-rate", &["--cpus", "0.5"], "while :; do :; done");
    let e = Exporter::start(&[]);
    let scraper = {
        let url = e.url("/metrics");
        std::thread::spawn(move || {
            for _ in 0..12 {
                let _ = reqwest::blocking::get(&url).and_then(|r| r.text());
                std::thread::sleep(Duration::from_millis(700));
            }
        })
    };
    let r = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap()
        .get(e.url("/api/v1/live/stream"))
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut frames = Vec::new();
    for line in std::io::BufReader::new(r).lines() {
        let line = line.unwrap();
        if let Some(data) = line.strip_prefix("data: ") {
            frames.push(serde_json::from_str::<Value>(data).unwrap());
            if frames.len() == 8 {
                break;
            }
        }
    }
    scraper.join().unwrap();
    let id = format!("/docker/{}", busy.id);
    let mut seen = Vec::new();
    for f in &frames[1..] {
        let interval = f["interval"].as_f64();
        let row = f["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id);
        let cpu = row.and_then(|r| r["cpu"].as_f64());
        seen.push((f["time"].as_f64().unwrap(), interval, cpu));
    }
    println!("(time, interval, cpu) of frames 2-8: {seen:?}");
    for (_, interval, cpu) in &seen[1..] {
        let interval = interval.expect("a frame without rates");
        assert!((0.5..=1.6).contains(&interval), "{seen:?}");
        assert!((40.0..=60.0).contains(&cpu.unwrap()), "{seen:?}");
    }
    let gaps: Vec<f64> = seen.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.iter().all(|g| (0.5..=1.7).contains(g)), "{gaps:?}");
}

#[test]
fn headers_forbid_inline_script_and_other_origins() {
    let e = Exporter::start(&["--collector.disable-defaults", "--collector.meminfo"]);
    for path in ["/", "/ui/app.js", "/api/v1/live"] {
        let r = e.get(path);
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    // The page references only its own assets.
    let html = e.get("/").text().unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "inline script in {html}");
}

#[test]
fn basic_auth_guards_the_page_and_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("web.yml");
    let hash = bcrypt::hash("v1ew", 10).unwrap();
    std::fs::write(&config, format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
    let e = Exporter::start(&[
        &format!("--web.config.file={}", config.display()),
        "--collector.disable-defaults",
        "--collector.meminfo",
        "--collector.cgroup",
    ]);
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let paths = [
        "/",
        "/ui/",
        "/ui/app.js",
        "/api/v1/live",
        "/api/v1/live/stream",
        "/api/v1/container?id=/",
        "/metrics",
    ];
    for path in paths {
        let r = c.get(e.url(path)).send().unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
        let r = c
            .get(e.url(path))
            .basic_auth("alice", Some("wrong"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong password");
    }
    for path in ["/", "/ui/app.js", "/api/v1/live", "/api/v1/container?id=/"] {
        let r = c
            .get(e.url(path))
            .basic_auth("alice", Some("v1ew"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with credentials");
    }
    // In the browser: without credentials nothing loads; with them the table fills.
    let mut b = Browser::start(1200, 800);
    // (Headless Chromium has no one to ask for a password: it gives up on the 401.)
    assert_eq!(
        b.try_goto(&e.url("/")),
        Err("net::ERR_INVALID_AUTH_CREDENTIALS".to_string())
    );
    b.basic_auth("alice", "v1ew");
    b.goto(&e.url("/"));
    b.wait_for(
        20,
        "the root row over basic auth",
        "document.querySelector('#rows tr.root') !== null",
    );
    b.wait_for(
        10,
        "the status to say live",
        "document.getElementById('status').dataset.state === 'live'",
    );
}

#[test]
fn with_the_page_turned_off_slash_is_the_landing_page() {
    let e = Exporter::start(&[
        "--web.disable-ui",
        "--collector.disable-defaults",
        "--collector.meminfo",
    ]);
    let r = e.get("/");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = r.text().unwrap();
    assert!(html.contains("href=\"/metrics\""), "{html}");
    assert!(!html.contains("app.js"), "{html}");
    for path in ["/ui/", "/ui/app.js", "/api/v1/live", "/api/v1/live/stream"] {
        assert_eq!(e.get(path).status(), 404, "{path}");
    }
    assert_eq!(e.get("/metrics").status(), 200);
}

/// The recorded node's pod and container cgroups, made for the test's length (one such test at a time).
fn recorded_node_cgroups() -> (std::sync::MutexGuard<'static, ()>, CgroupDirs) {
    let turn = NODE_CGROUPS.lock().unwrap_or_else(|p| p.into_inner());
    let recorded = recorded_cadvisor();
    let cpu = recorded_pod_cpu(&recorded);
    let ids: Vec<String> = cpu.iter().map(|r| r.labels["id"].clone()).collect();
    (turn, CgroupDirs::make(&ids))
}

#[test]
fn kubernetes_view_groups_the_recorded_pods_by_namespace() {
    let (_turn, _dirs) = recorded_node_cgroups();
    let (_replay, e) = recorded_kubelet(&[]);
    let mut b = Browser::start(1400, 1000);
    b.goto(&e.url("/"));
    b.wait_for(
        30,
        "the pods of the recorded node",
        "document.querySelectorAll('#rows tr.child').length > 10",
    );
    std::thread::sleep(Duration::from_secs(2));
    // The table in order: namespace headers, each followed by its pods and their containers.
    let rows = b.eval(
        "[...document.querySelectorAll('#rows tr')].map(tr => { const c = tr.classList; const kind = c.contains('ns') ? 'ns' : c.contains('pod') ? 'pod' : c.contains('child') ? 'child' : 'other'; const td = (k) => tr.querySelector('td[data-col=\"' + k + '\"]'); return [kind, kind === 'ns' ? tr.textContent : td('name').textContent, kind === 'ns' ? '' : td('state').textContent]; })",
    );
    let rows: Vec<(String, String, String)> = serde_json::from_value(rows).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    let (mut ns, mut pod) = (String::new(), String::new());
    for (kind, text, state) in &rows {
        match kind.as_str() {
            "ns" => {
                ns = text
                    .strip_prefix("namespace ")
                    .unwrap()
                    .split(" · ")
                    .next()
                    .unwrap()
                    .to_string()
            }
            "pod" => pod = text.clone(),
            "child" => {
                seen.insert((ns.clone(), pod.clone(), text.clone()), state.clone());
            }
            _ => {}
        }
    }
    // Every container of the recorded pod list, under its namespace and pod, in the state the kubelet
    // reported (those without a cgroup, such as a failed job's, too).
    let pods = load_json(&k8s_fixture("1_35/kubelet/pods"));
    let mut want = std::collections::BTreeMap::new();
    for p in pods["items"].as_array().unwrap() {
        for c in p["status"]["containerStatuses"].as_array().unwrap() {
            let state = c["state"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone();
            want.insert(
                (
                    str_of(p, &["metadata", "namespace"]).to_string(),
                    str_of(p, &["metadata", "name"]).to_string(),
                    c["name"].as_str().unwrap().to_string(),
                ),
                state,
            );
        }
    }
    println!(
        "{} namespaces, {} containers grouped",
        rows.iter().filter(|r| r.0 == "ns").count(),
        seen.len()
    );
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, state) in &want {
        assert!(
            seen[k].starts_with(state.as_str()),
            "{k:?}: {} for {state}",
            seen[k]
        );
    }
    // Namespaces in order, each once.
    let spaces: Vec<&String> = rows.iter().filter(|r| r.0 == "ns").map(|r| &r.1).collect();
    let mut sorted = spaces.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(spaces, sorted);
    let count = b.eval("document.getElementById('count').textContent");
    assert!(
        count.as_str().unwrap().contains("grouped by namespace"),
        "{count}"
    );
    b.screenshot(&artifact("live-kubernetes.png"));
    assert!(b.errors().is_empty(), "{:?}", b.errors());
}

/// The same page in Firefox (Debian's firefox-esr, over Marionette): the busy loop's row with its CPU and
/// memory limit, live updates, and the container page's charts.
#[test]
fn firefox_shows_the_table_and_a_container_page() {
    let _turn = busy_turn();
    let busy = Container::run(
        "live-ff",
        &["--cpus", "0.5", "-m", "64m"],
        "while :; do :; done",
    );
    let e = Exporter::start(&[]);
    let mut f = common::firefox::Firefox::start(1400, 900);
    f.goto(&e.url("/"));
    let sel = row(&busy.id);
    f.wait_for(
        30,
        "the busy container's row with a CPU figure",
        &format!("(() => {{ const td = document.querySelector('{sel} td[data-col=\"cpu\"]'); return !!td && td.textContent.includes(' %'); }})()"),
    );
    let text = |f: &mut common::firefox::Firefox, col: &str| -> String {
        f.eval(&format!(
            "document.querySelector('{sel} td[data-col=\"{col}\"]').textContent"
        ))
        .as_str()
        .unwrap()
        .to_string()
    };
    std::thread::sleep(Duration::from_secs(2));
    let cpu = text(&mut f, "cpu");
    let mem = text(&mut f, "memory");
    println!("Firefox: CPU {cpu}, memory {mem}");
    assert!((40.0..=60.0).contains(&percent(&cpu)), "{cpu}");
    assert!(cpu.ends_with(" / 0.5 CPU"), "{cpu}");
    assert!(mem.contains(" / 64 MiB ("), "{mem}");
    let up1 = text(&mut f, "uptime");
    std::thread::sleep(Duration::from_millis(2500));
    assert_ne!(up1, text(&mut f, "uptime"), "the table did not update");
    assert_eq!(
        f.eval("document.getElementById('status').dataset.state"),
        "live"
    );
    // The sticky header sits above the rows, not over them (it covered the first two with `top: 41px`
    // inside the scrolling box).
    assert_eq!(
        f.eval(HEADER_CLEAR),
        true,
        "the table's header covers its rows"
    );
    f.screenshot(&artifact("live-table-firefox.png"));
    f.eval(&format!("document.querySelector('{sel}').click()"));
    for chart in ["cpu", "memory", "network", "block"] {
        f.wait_for(
            20,
            &format!("the {chart} chart"),
            &format!("Number(document.querySelector('canvas[data-chart=\"{chart}\"]').dataset.points) >= 3"),
        );
    }
    f.wait_for(
        10,
        "the process table",
        "document.querySelectorAll('#d-procs tbody tr').length > 0",
    );
    f.screenshot(&artifact("live-container-firefox.png"));
}

#[test]
fn markup_in_a_pods_image_is_shown_as_text() {
    // Docker and Podman refuse markup in an image reference; a kubelet's pod list carries whatever the
    // pod spec says. The recorded /pods with one running container's image replaced.
    let (_turn, _dirs) = recorded_node_cgroups();
    let evil = r#"<img src=x onerror="window.pwned=5">:<b>1</b>"#;
    let mut pods = load_json(&k8s_fixture("1_35/kubelet/pods"));
    let pod = pods["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| {
            p["status"]["containerStatuses"][0]["state"]
                .get("running")
                .is_some()
        })
        .unwrap();
    let name = pod["status"]["containerStatuses"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    pod["status"]["containerStatuses"][0]["image"] = Value::from(evil);
    for c in pod["spec"]["containers"].as_array_mut().unwrap() {
        if c["name"] == name.as_str() {
            c["image"] = Value::from(evil);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pods");
    std::fs::write(&path, serde_json::to_vec(&pods).unwrap()).unwrap();
    let (_replay, e) = recorded_kubelet_with_pods(&path, &[]);
    let mut b = Browser::start(1400, 1000);
    b.goto(&e.url("/"));
    b.wait_for(
        30,
        "the container with the markup image",
        &format!(
            "[...document.querySelectorAll('#rows td[data-col=\"image\"]')].some(td => td.textContent === {})",
            serde_json::to_string(evil).unwrap()
        ),
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#rows img, #rows b').length"),
        0
    );
    assert_eq!(b.eval("typeof window.pwned"), "undefined");
}
