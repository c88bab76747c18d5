//! Wiring: flags → logging → background sources → collectors → scraper → HTTP server.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::cli::{self, LogFormat, LogLevel};
use crate::health::Sources;
use crate::webconfig::Live;
use crate::{collector, http, scrape};

fn init_logging(level: LogLevel, format: LogFormat) {
    use tracing_subscriber::prelude::*;
    let filter = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    // kube's client and watcher log every failed request (an ERROR per try); the sources report each
    // failure once, with what to fix. Their own lines show only at debug.
    let kube_level = match level {
        LogLevel::Debug => tracing_subscriber::filter::LevelFilter::DEBUG,
        _ => tracing_subscriber::filter::LevelFilter::OFF,
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(filter)
        .with_target("kube_runtime", kube_level)
        .with_target("kube_client", kube_level);
    match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Logfmt => tracing_subscriber::registry()
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .init(),
    }
}

/// Raises the soft limit on open files to the hard limit (as the Go runtime does for its programs): client
/// connections and --collector.cgroup.keep-open (about 15 files per container) need them. Returns the
/// soft limit in force afterwards.
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return lim.rlim_max;
        }
        tracing::warn!(
            soft = lim.rlim_cur,
            "cannot raise the open-files limit; fewer connections and kept files fit"
        );
    }
    lim.rlim_cur
}

/// This node's name: `--kubernetes.node-name` / `NODE_NAME`, else the host name (the kubelet's default).
fn node_name(flag: Option<&String>) -> String {
    if let Some(n) = flag.filter(|n| !n.is_empty()) {
        return n.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_default();
    tracing::warn!(
        node = %host,
        "no --kubernetes.node-name (NODE_NAME): using the host name; set NODE_NAME from the downward API \
         (fieldRef spec.nodeName) if the node is registered under another name"
    );
    host
}

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The kubelet client, when `--kubelet.url` is set (or, in a pod, from `HOST_IP`).
fn kubelet_client(
    flags: &cli::Flags,
    in_cluster: bool,
) -> Result<Option<(String, crate::source::kubelet::KubeletClient)>, String> {
    use crate::source::kubelet;
    let url = flags
        .kubelet_url
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let ip = std::env::var("HOST_IP").ok().filter(|_| in_cluster)?;
            Some(format!("https://{ip}:10250"))
        });
    let Some(url) = url else { return Ok(None) };
    let token_file = flags.kubelet_token_file.clone().or_else(|| {
        let p = std::path::PathBuf::from(SA_DIR).join("token");
        (in_cluster && p.exists()).then_some(p)
    });
    let cfg = kubelet::KubeletConfig {
        url: url.clone(),
        token_file,
        ca_file: flags.kubelet_ca_file.clone(),
        insecure_skip_verify: flags.kubelet_insecure_skip_verify,
        timeout: flags.kubelet_timeout,
    };
    Ok(Some((url, kubelet::KubeletClient::new(&cfg)?)))
}

type PodWriter = kube::runtime::reflector::store::Writer<k8s_openapi::api::core::v1::Pod>;

/// Starts the pod source: the apiserver watch, or (with `--kubernetes.pods-from=kubelet`) a writer the
/// kubelet poller fills.
async fn start_pods(
    flags: &cli::Flags,
    has_kubelet: bool,
    sources: &Sources,
    shared: &mut collector::Shared,
) -> Result<Option<(PodWriter, Arc<crate::health::Health>)>, String> {
    use crate::source::kubernetes;
    if flags.pods_from == cli::PodsFrom::Kubelet {
        if !has_kubelet {
            return Err(
                "--kubernetes.pods-from=kubelet needs --kubelet.url (or HOST_IP in a pod)".into(),
            );
        }
        tracing::info!("reading this node's pods from the kubelet's /pods");
        let (reader, writer) = kube::runtime::reflector::store();
        shared.pods = Some(reader);
        return Ok(Some((writer, sources.register("kubernetes"))));
    }
    match kubernetes::api_client(flags.kubeconfig.as_ref()).await? {
        Some(client) => {
            let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
            let scope = match (nonempty(&flags.pod_namespace), nonempty(&flags.pod_name)) {
                (Some(namespace), Some(name)) if nonempty(&flags.pod_uid).is_some() => {
                    tracing::info!(%namespace, pod = %name, "sidecar: watching this pod on the apiserver");
                    kubernetes::Scope::Pod { namespace, name }
                }
                _ => {
                    let node = node_name(flags.node_name.as_ref());
                    tracing::info!(node = %node, "watching this node's pods on the apiserver");
                    kubernetes::Scope::Node(node)
                }
            };
            let (reader, writer) = kube::runtime::reflector::store();
            kubernetes::spawn_watch(client, scope, writer, sources.register("kubernetes"));
            shared.pods = Some(reader);
        }
        None => tracing::info!(
            "not on Kubernetes (no --kubeconfig, no in-cluster service account, no $KUBECONFIG): \
             pod metadata off"
        ),
    }
    Ok(None)
}

/// Starts the pod source (apiserver watch or kubelet /pods) and the kubelet source, as configured.
async fn start_kubernetes(
    config: &cli::Config,
    sources: &Sources,
    shared: &mut collector::Shared,
) -> Result<(), String> {
    let flags = &config.flags;
    if !["cgroup", "kubernetes", "kubelet"]
        .iter()
        .any(|c| config.enabled.contains(c))
    {
        return Ok(());
    }
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let kubelet = kubelet_client(flags, in_cluster)?;
    let kubelet_pods = start_pods(flags, kubelet.is_some(), sources, shared).await?;
    let Some((url, client)) = kubelet else {
        return Ok(());
    };
    let cache = Arc::new(crate::source::kubelet::SummaryCache::default());
    let cgroups = config.enabled.contains(&"cgroup")
        && crate::cgroup::Layout::detect(&flags.sysfs.join("fs/cgroup")).is_ok();
    shared.usage_from_summary = !cgroups;
    if !cgroups {
        tracing::info!(
            "cgroups not read here: container, pod and node CPU and memory come from the kubelet's summary"
        );
    }
    tracing::info!(url = %url, "polling the kubelet");
    let health = sources.register("kubelet");
    crate::source::kubelet::spawn(
        client,
        flags.kubelet_interval,
        cache.clone(),
        health,
        kubelet_pods,
    );
    shared.summary = Some(cache);
    Ok(())
}

/// Starts the runtime sources, which share one identity cache: Docker's when the docker collector is on
/// (identity always; usage from the stats API when cgroups are not readable), Podman's and containerd's
/// when their sockets are given or found.
fn start_runtimes(config: &cli::Config, sources: &Sources, shared: &mut collector::Shared) {
    let flags = &config.flags;
    let meta = Arc::new(crate::source::MetaStore::default());
    let mut any = false;
    if config.enabled.contains(&"docker") {
        start_docker(config, sources, shared, &meta);
        any = true;
    }
    for (source, host) in podman_hosts(flags) {
        use crate::source::docker;
        tracing::info!(host = %host, source, "reading Podman's containers from its API");
        let podman = docker::Config {
            engine: docker::Engine::Podman,
            source,
            host: Some(host),
            ..docker_config(flags)
        };
        docker::spawn(podman, meta.clone(), sources.register(source), None);
        any = true;
    }
    if let Some(address) = socket_flag(flags.containerd_address.as_deref(), CONTAINERD_SOCKET) {
        use crate::source::containerd;
        tracing::info!(address = %address, "reading containerd's containers from its API");
        let cfg = containerd::Config {
            address: address.trim_start_matches("unix://").to_string(),
            namespaces: flags.containerd_namespaces.clone(),
        };
        containerd::spawn(cfg, meta.clone(), sources.register(containerd::NAME));
        any = true;
    }
    if any {
        shared.runtime_meta = Some(meta);
    }
}

/// The writable layers' walker, when a runtime source runs and the filesystem collector serves its
/// figures.
fn start_layers(config: &cli::Config, shared: &mut collector::Shared) {
    let flags = &config.flags;
    let Some(meta) = &shared.runtime_meta else {
        return;
    };
    if flags.fs_layers_interval.is_zero() || !config.enabled.contains(&"filesystem") {
        return;
    }
    let cache = Arc::new(crate::layers::LayerCache::default());
    crate::layers::spawn(
        crate::layers::Config {
            interval: flags.fs_layers_interval,
            entries_per_second: flags.fs_layers_entries_per_second,
            rootfs: flags.rootfs.clone(),
            procfs: flags.procfs.clone(),
        },
        meta.clone(),
        cache.clone(),
    );
    shared.layers = Some(cache);
}

fn docker_config(flags: &cli::Flags) -> crate::source::docker::Config {
    crate::source::docker::Config {
        engine: crate::source::docker::Engine::Docker,
        source: "docker",
        host: flags.docker_host.clone(),
        stats_interval: flags.docker_stats_interval,
        stats_concurrency: flags.docker_stats_concurrency,
        stats_timeout: flags.docker_stats_timeout,
    }
}

/// The Docker source, and in stats mode (cgroups not readable here: Docker Desktop, a remote daemon) its
/// stats poller.
fn start_docker(
    config: &cli::Config,
    sources: &Sources,
    shared: &mut collector::Shared,
    meta: &Arc<crate::source::MetaStore>,
) {
    use crate::source::docker;
    let flags = &config.flags;
    let health = sources.register("docker");
    let stats = match crate::cgroup::Layout::detect(&flags.sysfs.join("fs/cgroup")) {
        Err(e) if config.enabled.contains(&"cgroup") => {
            tracing::warn!(
                error = %e,
                "cgroups not readable: container usage comes from Docker's stats API instead \
                 (slower, fewer families); mount the host's /sys and set --path.sysfs for the cgroup mode"
            );
            let cache = Arc::new(docker::StatsCache::default());
            shared.docker_stats = Some(cache.clone());
            Some((cache, sources.register("docker_stats")))
        }
        _ => None,
    };
    docker::spawn(docker_config(flags), meta.clone(), health, stats);
}

/// Podman's rootful API socket, where Podman's packages put it (podman.socket).
const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

/// containerd's socket, where its packages put it.
const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";

/// The Podman sources, (name, address): each socket of `--podman.host` (comma-separated; empty: none);
/// unset, the rootful socket and every rootless user's (`/run/user/<uid>/podman/podman.sock`, served by
/// the user's podman.socket) that exist at start.
fn podman_hosts(flags: &cli::Flags) -> Vec<(&'static str, String)> {
    let hosts: Vec<String> = match flags.podman_host.as_deref() {
        Some(list) => (list.split(',').map(str::trim))
            .filter(|h| !h.is_empty())
            .map(String::from)
            .collect(),
        None => {
            let mut found: Vec<String> = socket_flag(None, PODMAN_SOCKET).into_iter().collect();
            let mut users: Vec<_> = std::fs::read_dir("/run/user")
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path().join("podman/podman.sock"))
                .filter(|p| p.exists())
                .collect();
            users.sort();
            found.extend(users.iter().map(|p| format!("unix://{}", p.display())));
            found
        }
    };
    let mut names: Vec<&'static str> = vec![];
    for h in &hosts {
        let name = podman_source_name(h);
        names.push(if names.contains(&name) {
            leak(format!("podman_{}", names.len() + 1))
        } else {
            name
        });
    }
    names.into_iter().zip(hosts).collect()
}

/// `podman_user<uid>` for a rootless user's socket (under /run/user/<uid>/), else `podman`.
fn podman_source_name(host: &str) -> &'static str {
    let uid = (host
        .trim_start_matches("unix://")
        .strip_prefix("/run/user/"))
    .and_then(|rest| rest.split('/').next())
    .filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()));
    match uid {
        Some(uid) => leak(format!("podman_user{uid}")),
        None => "podman",
    }
}

/// A source name made at start (a handful, once): the health registry keeps `&'static str` names.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// A runtime socket flag: its value; unset, the runtime's usual socket if it exists now (so a host
/// without that runtime shows no source for it); empty, none.
fn socket_flag(flag: Option<&str>, usual: &str) -> Option<String> {
    match flag {
        Some("") => None,
        Some(h) => Some(h.to_string()),
        None => std::path::Path::new(usual)
            .exists()
            .then(|| format!("unix://{usual}")),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// Large per-scrape buffers (the samples of a thousand containers are megabytes) are given back to the
/// system when freed. glibc's default raises its mmap threshold after the first large free, so such
/// buffers then come from the heap and stay resident after every scrape: measured at 1000 containers,
/// 22 to 26 MiB and creeping, against 12.5 MiB with a fixed 256 KiB threshold (BENCHMARKS.md). Two
/// malloc arenas instead of one per thread (collectors and rendering run on blocking threads): 0.8 MiB
/// less with the node collectors alone.
fn keep_large_allocations_returnable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// The program: parses the flags, starts everything and serves until SIGTERM or SIGINT.
pub fn main() -> ExitCode {
    keep_large_allocations_returnable();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let code = rt.block_on(run());
            // A read blocked for good (a dead NFS mount, a FIFO) keeps its blocking thread: the server has
            // stopped, so give the others a moment and exit without waiting for it.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            code
        }
        Err(e) => {
            eprintln!("stevedore: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A start-up error: logged, printed, exit status 2.
fn startup_error(what: &str, e: &str) -> ExitCode {
    tracing::error!(error = %e, "{what}");
    eprintln!("stevedore: {e}");
    ExitCode::from(2)
}

async fn run() -> ExitCode {
    let config = cli::parse(&collector::toggles());
    let flags = &config.flags;
    init_logging(flags.log_level, flags.log_format);
    // Connections, cgroup files kept open and /proc reads all take descriptors: raise the soft limit to
    // the hard one, as the Go runtime does for node_exporter (systemd's default soft limit is 1024).
    let web = match load_web_config(flags) {
        Ok(w) => w,
        Err(e) => return startup_error("invalid --web.config.file", &e),
    };
    let fd_limit = raise_fd_limit();
    if flags.cgroup_keep_open {
        let max = fd_limit.saturating_sub(2048) as usize;
        tracing::info!(
            max_kept_files = max,
            "keeping cgroup files open between scrapes (--collector.cgroup.keep-open)"
        );
        crate::cgroup::set_keep_open_limit(max);
    }
    let sources = Arc::new(Sources::default());
    let mut shared = collector::Shared::default();
    start_runtimes(&config, &sources, &mut shared);
    start_layers(&config, &mut shared);
    if let Err(e) = start_kubernetes(&config, &sources, &mut shared).await {
        return startup_error("cannot start the Kubernetes sources", &e);
    }
    let cx = collector::Context {
        flags,
        paths: collector::Paths {
            procfs: flags.procfs.clone(),
            sysfs: flags.sysfs.clone(),
            rootfs: flags.rootfs.clone(),
        },
        shared: &shared,
        enabled: &config.enabled,
    };
    let collectors = match collector::build(&cx) {
        Ok(c) => c,
        Err(e) => return startup_error("cannot build the collectors", &e),
    };
    let scraper = Arc::new(scrape::Scraper::new(
        collectors,
        flags.min_age,
        flags.collect_timeout,
    ));
    let live = (!flags.disable_ui).then(|| http::live::LiveState {
        hub: crate::live::Hub::new(
            scraper.clone(),
            std::time::Duration::from_secs(1),
            crate::live::Sources {
                paths: cx.paths.clone(),
                meta: shared.runtime_meta.clone(),
                pods: shared.pods.clone(),
            },
        ),
        viewers: Arc::new(Semaphore::new(flags.ui_max_viewers)),
        telemetry_path: flags.telemetry_path.clone(),
    });
    serve(flags, scraper, sources, web, live).await
}

/// The web configuration, checked whole (certificates included) before anything starts.
fn load_web_config(flags: &cli::Flags) -> Result<Option<Arc<Live>>, String> {
    if flags.web_config_file.is_empty() {
        return Ok(None);
    }
    let path = std::path::Path::new(&flags.web_config_file);
    let live =
        Live::load(path).map_err(|e| format!("--web.config.file {}: {e}", path.display()))?;
    let active = live.current();
    tracing::info!(
        file = %path.display(),
        tls = active.tls.is_some(),
        http2 = active.http2(),
        basic_auth = !active.users.is_empty(),
        "web configuration loaded"
    );
    Ok(Some(Arc::new(live)))
}

/// Why binding the listen address failed, and what to do.
fn bind_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "the port is already in use by another process; pick another with --web.listen-address".into()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges); pick another with --web.listen-address"
                .into()
        }
        _ => format!("{e}; check --web.listen-address"),
    }
}

/// Serves HTTP until a shutdown signal.
async fn serve(
    flags: &cli::Flags,
    scraper: Arc<scrape::Scraper>,
    sources: Arc<Sources>,
    web: Option<Arc<Live>>,
    live: Option<http::live::LiveState>,
) -> ExitCode {
    let state = http::AppState {
        live,
        scraper: scraper.clone(),
        limit: (flags.max_requests > 0).then(|| Arc::new(Semaphore::new(flags.max_requests))),
        telemetry_path: flags.telemetry_path.clone(),
        sources,
    };
    let listener = match http::listen(flags.listen_address) {
        Ok(l) => l,
        Err(e) => {
            let why = bind_error(&e);
            tracing::error!(address = %flags.listen_address, error = %e, "cannot listen: {why}");
            eprintln!(
                "stevedore: cannot listen on {}: {why}",
                flags.listen_address
            );
            return ExitCode::from(1);
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        version = cli::VERSION_LINE,
        address = %local,
        telemetry_path = %flags.telemetry_path,
        collectors = %scraper.collector_names().join(","),
        "listening"
    );
    // The first collection runs at once, so /readyz turns ready without waiting for a scrape.
    let first = scraper.clone();
    tokio::spawn(async move {
        first.scrape(&first.collector_names()).await;
    });
    let app = http::router(state, web.clone());
    let limits = http::Limits {
        read_header_timeout: flags.read_header_timeout,
        max_header_bytes: flags.max_header_bytes,
        max_connections: flags.max_connections,
    };
    http::serve(listener, app, limits, web, shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(flag: &str) -> Vec<(&'static str, String)> {
        let config = cli::try_parse_from(
            &crate::collector::toggles(),
            ["stevedore", &format!("--podman.host={flag}")],
        )
        .unwrap();
        podman_hosts(&config.flags)
    }

    #[test]
    fn podman_sources_are_named_by_user() {
        let rootless = "unix:///run/user/1000/podman/podman.sock";
        assert_eq!(
            hosts(&format!("unix:///run/podman/podman.sock, {rootless}")),
            vec![
                ("podman", "unix:///run/podman/podman.sock".to_string()),
                ("podman_user1000", rootless.to_string()),
            ]
        );
        assert_eq!(
            hosts("tcp://a:8080,tcp://b:8080"),
            vec![
                ("podman", "tcp://a:8080".into()),
                ("podman_2", "tcp://b:8080".into())
            ]
        );
        assert!(hosts("").is_empty());
    }
}
