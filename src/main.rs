use std::process::ExitCode;
use std::sync::Arc;

use stevedore::cli::{self, LogFormat, LogLevel};
use stevedore::{collector, http, scrape};
use tokio::sync::Semaphore;

fn init_logging(level: LogLevel, format: LogFormat) {
    use tracing_subscriber::prelude::*;
    let filter = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error => tracing::Level::ERROR,
    };
    // kube's watcher logs its own warnings for failures the kubernetes source already reports once, with
    // what to fix: only its errors pass.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(filter)
        .with_target("kube_runtime", tracing::Level::ERROR.min(filter))
        .with_target("kube_client", tracing::Level::ERROR.min(filter));
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

/// Raises the soft limit on open files to the hard limit (as the Go runtime does for its programs), for
/// --collector.cgroup.keep-open, which keeps about 15 files open per container. Returns the soft limit in
/// force afterwards.
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
            "cannot raise the open-files limit; --collector.cgroup.keep-open keeps fewer files"
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

/// Starts the pod source (apiserver watch or kubelet /pods) and the kubelet source, as configured.
/// Returns the exit code when a flag is unusable.
async fn start_kubernetes(
    config: &cli::Config,
    sources: &stevedore::source::SourceStatus,
    shared: &mut collector::Shared,
) -> Result<(), ExitCode> {
    use stevedore::source::{kubelet, kubernetes};
    let flags = &config.flags;
    let wanted = ["cgroup", "kubernetes", "kubelet"]
        .iter()
        .any(|c| config.enabled.contains(c));
    if !wanted {
        return Ok(());
    }
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let kubelet_url = flags
        .kubelet_url
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let ip = std::env::var("HOST_IP").ok().filter(|_| in_cluster)?;
            Some(format!("https://{ip}:10250"))
        });
    let kubelet_client = match &kubelet_url {
        Some(url) => {
            let token_file = flags.kubelet_token_file.clone().or_else(|| {
                let p = std::path::PathBuf::from(SA_DIR).join("token");
                (in_cluster && p.exists()).then_some(p)
            });
            let cfg = kubelet::KubeletConfig {
                url: url.clone(),
                token_file,
                ca_file: flags.kubelet_ca_file.clone(),
                insecure_skip_verify: flags.kubelet_insecure_skip_verify,
                interval: flags.kubelet_interval,
                timeout: flags.kubelet_timeout,
            };
            match kubelet::KubeletClient::new(&cfg) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the kubelet source");
                    eprintln!("stevedore: {e}");
                    return Err(ExitCode::from(2));
                }
            }
        }
        None => None,
    };

    let mut kubelet_pods = None;
    match flags.pods_from {
        cli::PodsFrom::Apiserver => match kubernetes::api_client(flags.kubeconfig.as_ref()).await {
            Ok(Some(client)) => {
                let node = node_name(flags.node_name.as_ref());
                tracing::info!(node = %node, "watching this node's pods on the apiserver");
                let (reader, writer) = kube::runtime::reflector::store();
                let health = Arc::new(kubernetes::Health::new(
                    "kubernetes",
                    sources.register("kubernetes"),
                ));
                kubernetes::spawn_watch(client, node, writer, health);
                shared.pods = Some(reader);
            }
            Ok(None) => tracing::info!(
                "not on Kubernetes (no --kubeconfig, no in-cluster service account, no $KUBECONFIG): \
                 pod metadata off"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the kubernetes source");
                eprintln!("stevedore: {e}");
                return Err(ExitCode::from(2));
            }
        },
        cli::PodsFrom::Kubelet => {
            if kubelet_client.is_none() {
                let e = "--kubernetes.pods-from=kubelet needs --kubelet.url (or HOST_IP in a pod)";
                tracing::error!("{e}");
                eprintln!("stevedore: {e}");
                return Err(ExitCode::from(2));
            }
            tracing::info!("reading this node's pods from the kubelet's /pods");
            let (reader, writer) = kube::runtime::reflector::store();
            let health = Arc::new(kubernetes::Health::new(
                "kubernetes",
                sources.register("kubernetes"),
            ));
            kubelet_pods = Some((writer, health));
            shared.pods = Some(reader);
        }
    }

    if let Some(client) = kubelet_client {
        let cache = Arc::new(kubelet::SummaryCache::default());
        let health = Arc::new(kubernetes::Health::new(
            "kubelet",
            sources.register("kubelet"),
        ));
        let cgroups = config.enabled.contains(&"cgroup")
            && stevedore::cgroup::Layout::detect(&flags.sysfs.join("fs/cgroup")).is_ok();
        shared.usage_from_summary = !cgroups;
        if !cgroups {
            tracing::info!(
                "cgroups not read here: container, pod and node CPU and memory come from the kubelet's summary"
            );
        }
        tracing::info!(
            url = kubelet_url.as_deref().unwrap_or(""),
            "polling the kubelet"
        );
        kubelet::spawn(
            client,
            flags.kubelet_interval,
            cache.clone(),
            health,
            kubelet_pods,
        );
        shared.summary = Some(cache);
    }
    Ok(())
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

fn main() -> ExitCode {
    keep_large_allocations_returnable();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("stevedore: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let config = cli::parse();
    let flags = &config.flags;
    init_logging(flags.log_level, flags.log_format);

    if flags.cgroup_keep_open {
        let limit = raise_fd_limit();
        let max = limit.saturating_sub(2048) as usize;
        tracing::info!(
            max_kept_files = max,
            "keeping cgroup files open between scrapes (--collector.cgroup.keep-open)"
        );
        stevedore::cgroup::stats::set_keep_open_limit(max);
    }
    let sources = Arc::new(stevedore::source::SourceStatus::default());
    let mut shared = collector::Shared::default();
    if config.enabled.contains(&"docker") {
        let meta = Arc::new(stevedore::source::MetaStore::default());
        let up = sources.register("docker");
        // Stats mode: the cgroup files are not readable here (Docker Desktop, a remote daemon), so usage comes
        // from Docker's stats API, polled in the background.
        let cgroup_root = flags.sysfs.join("fs/cgroup");
        let stats = match stevedore::cgroup::Layout::detect(&cgroup_root) {
            Err(e) if config.enabled.contains(&"cgroup") => {
                tracing::warn!(
                    error = %e,
                    "cgroups not readable: container usage comes from Docker's stats API instead \
                     (slower, fewer families); mount the host's /sys and set --path.sysfs for the cgroup mode"
                );
                let cache = Arc::new(stevedore::source::docker::StatsCache::default());
                shared.docker_stats = Some(cache.clone());
                Some((cache, sources.register("docker_stats")))
            }
            _ => None,
        };
        stevedore::source::docker::spawn(
            stevedore::source::docker::Config {
                host: flags.docker_host.clone(),
                stats_mode: stats.is_some(),
                stats_interval: flags.docker_stats_interval,
                stats_concurrency: flags.docker_stats_concurrency,
                stats_timeout: flags.docker_stats_timeout,
            },
            meta.clone(),
            up,
            stats,
        );
        shared.docker_meta = Some(meta);
    }
    if let Err(code) = start_kubernetes(&config, &sources, &mut shared).await {
        return code;
    }
    let collectors = collector::build(&config, &shared);
    let scraper = Arc::new(scrape::Scraper::new(
        collectors,
        flags.min_age,
        flags.collect_timeout,
    ));
    let state = http::AppState {
        scraper: scraper.clone(),
        limit: (flags.max_requests > 0).then(|| Arc::new(Semaphore::new(flags.max_requests))),
        telemetry_path: flags.telemetry_path.clone(),
        sources,
    };

    let listener = match tokio::net::TcpListener::bind(flags.listen_address).await {
        Ok(l) => l,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "the port is already in use by another process; pick another with --web.listen-address".to_string()
            } else if e.kind() == std::io::ErrorKind::PermissionDenied {
                "permission denied (ports below 1024 need privileges); pick another with --web.listen-address".to_string()
            } else {
                format!("{e}; check --web.listen-address")
            };
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
        first.scrape().await;
    });

    let app = http::router(state);
    // The exposition leaves in several writes: without TCP_NODELAY the last one waits for the client's
    // delayed ACK (40 ms on Linux), measured on every scrape by the benchmark.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a scrape connection");
        }
    });
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        tracing::error!(error = %e, "HTTP server failed");
        return ExitCode::from(1);
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
