//! Command-line flags and environment variables.
//!
//! Every flag follows the Prometheus exporter conventions (`--web.*`, `--path.*`, `--collector.*`) and
//! can also be set through an environment variable `STEVEDORE_<FLAG>` (dots and dashes become `_`).
//! A bad flag or value makes clap exit with status 2 and a message that names the flag.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{
    Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, Parser, ValueEnum,
};
use regex::Regex;

/// One string naming this build, shown by `--version` and on the landing page.
pub(crate) const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("STEVEDORE_REVISION"),
    ", rustc ",
    env!("STEVEDORE_RUSTC_VERSION"),
    ")"
);

/// node_exporter's default mount points to ignore (Linux).
pub(crate) const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";

/// node_exporter's default filesystem types to ignore (Linux).
pub(crate) const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

/// node_exporter's default: partitions and virtual devices whose whole disk is already counted.
pub(crate) const DEFAULT_DEVICE_EXCLUDE: &str =
    r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Logfmt,
    Json,
}

/// Where pod metadata comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PodsFrom {
    Apiserver,
    Kubelet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Flags with a fixed name. The per-collector `--collector.<name>` / `--no-collector.<name>` pairs are
/// added by [`command`] from the list of known collectors.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "stevedore",
    version = VERSION_LINE,
    about = "Prometheus exporter for container, pod and node resource usage",
    args_override_self = true
)]
pub(crate) struct Flags {
    /// Address to listen on for HTTP requests (host:port; an empty host means all interfaces).
    #[arg(long = "web.listen-address", env = "STEVEDORE_WEB_LISTEN_ADDRESS", default_value = ":9777",
          value_parser = parse_listen_address)]
    pub listen_address: SocketAddr,

    /// exporter-toolkit web configuration file (TLS, client certificates, HTTP/2, response headers, basic
    /// authentication, rate limit), the same file node_exporter takes; re-read when it or a certificate
    /// changes. Empty: plain HTTP without authentication.
    #[arg(
        long = "web.config.file",
        env = "STEVEDORE_WEB_CONFIG_FILE",
        default_value = ""
    )]
    pub web_config_file: String,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", env = "STEVEDORE_WEB_TELEMETRY_PATH", default_value = "/metrics",
          value_parser = parse_telemetry_path)]
    pub telemetry_path: String,

    /// Maximum number of scrapes served at once; further ones get 503. 0 means no limit.
    #[arg(
        long = "web.max-requests",
        env = "STEVEDORE_WEB_MAX_REQUESTS",
        default_value_t = 40
    )]
    pub max_requests: usize,

    /// How long a client may take to send its request headers; also how long an idle keep-alive
    /// connection is kept. Bounds slow-header (slowloris) and idle connections.
    #[arg(long = "web.read-header-timeout", env = "STEVEDORE_WEB_READ_HEADER_TIMEOUT", default_value = "10s",
          value_parser = parse_positive_duration)]
    pub read_header_timeout: Duration,

    /// Maximum size of a request's line and headers (the query string included); larger ones get 431.
    #[arg(
        long = "web.max-header-bytes",
        env = "STEVEDORE_WEB_MAX_HEADER_BYTES",
        default_value_t = 16384
    )]
    pub max_header_bytes: usize,

    /// Maximum number of open client connections; past it an idle one of the address holding the most
    /// makes room, and an address holding more than half gets no more.
    #[arg(
        long = "web.max-connections",
        env = "STEVEDORE_WEB_MAX_CONNECTIONS",
        default_value_t = 256
    )]
    pub max_connections: usize,

    /// Turn off the live view: `/` is the plain landing page, and `/ui/` and `/api/v1/*` answer 404.
    #[arg(long = "web.disable-ui", env = "STEVEDORE_WEB_DISABLE_UI")]
    pub disable_ui: bool,

    /// Maximum number of live views (server-sent-event streams) open at once; further ones get 503. All
    /// viewers share one collection a second, so each costs only its copy of the frame.
    #[arg(
        long = "web.ui.max-viewers",
        env = "STEVEDORE_WEB_UI_MAX_VIEWERS",
        default_value_t = 16
    )]
    pub ui_max_viewers: usize,

    /// A collection younger than this is served again instead of reading everything anew (e.g. 1s, 500ms, 0).
    #[arg(long = "collect.min-age", env = "STEVEDORE_COLLECT_MIN_AGE", default_value = "1s",
          value_parser = parse_duration)]
    pub min_age: Duration,

    /// A collector still running after this long is reported as failed for that scrape.
    #[arg(long = "collect.timeout", env = "STEVEDORE_COLLECT_TIMEOUT", default_value = "10s",
          value_parser = parse_positive_duration)]
    pub collect_timeout: Duration,

    /// Disable every collector that is not explicitly enabled with --collector.<name>.
    #[arg(
        long = "collector.disable-defaults",
        env = "STEVEDORE_COLLECTOR_DISABLE_DEFAULTS"
    )]
    pub disable_defaults: bool,

    /// procfs mount point (the host's /proc when running in a container, e.g. /host/proc).
    #[arg(
        long = "path.procfs",
        env = "STEVEDORE_PATH_PROCFS",
        default_value = "/proc"
    )]
    pub procfs: PathBuf,

    /// sysfs mount point (e.g. /host/sys).
    #[arg(
        long = "path.sysfs",
        env = "STEVEDORE_PATH_SYSFS",
        default_value = "/sys"
    )]
    pub sysfs: PathBuf,

    /// Root filesystem mount point (e.g. /host); stripped from reported mount points.
    #[arg(
        long = "path.rootfs",
        env = "STEVEDORE_PATH_ROOTFS",
        default_value = "/"
    )]
    pub rootfs: PathBuf,

    /// Regexp of mount points to ignore in the filesystem collector.
    #[arg(long = "collector.filesystem.mount-points-exclude",
          env = "STEVEDORE_COLLECTOR_FILESYSTEM_MOUNT_POINTS_EXCLUDE",
          default_value = DEFAULT_MOUNT_POINTS_EXCLUDE, value_parser = parse_regex)]
    pub fs_mount_points_exclude: Regex,

    /// Regexp of filesystem types to ignore in the filesystem collector.
    #[arg(long = "collector.filesystem.fs-types-exclude",
          env = "STEVEDORE_COLLECTOR_FILESYSTEM_FS_TYPES_EXCLUDE",
          default_value = DEFAULT_FS_TYPES_EXCLUDE, value_parser = parse_regex)]
    pub fs_types_exclude: Regex,

    /// How long to wait for a mount to answer statfs before it is reported with device_error=1 and skipped
    /// until it answers again.
    #[arg(long = "collector.filesystem.mount-timeout", env = "STEVEDORE_COLLECTOR_FILESYSTEM_MOUNT_TIMEOUT",
          default_value = "5s", value_parser = parse_positive_duration)]
    pub fs_mount_timeout: Duration,

    /// How often each running container's writable layer is measured (in the background, walking it as
    /// `du -sx` does) for the per-container container_fs_* series; 0 turns the measurement off.
    #[arg(long = "collector.filesystem.layers-interval", env = "STEVEDORE_COLLECTOR_FILESYSTEM_LAYERS_INTERVAL",
          default_value = "1m", value_parser = humantime::parse_duration)]
    pub fs_layers_interval: Duration,

    /// The layer walk's I/O budget: directory entries statted per second, at most.
    #[arg(long = "collector.filesystem.layers-entries-per-second",
          env = "STEVEDORE_COLLECTOR_FILESYSTEM_LAYERS_ENTRIES_PER_SECOND", default_value = "20000",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub fs_layers_entries_per_second: u32,

    /// Regexp of network devices to ignore in the netdev collector.
    #[arg(long = "collector.netdev.device-exclude", env = "STEVEDORE_COLLECTOR_NETDEV_DEVICE_EXCLUDE",
          value_parser = parse_regex)]
    pub netdev_device_exclude: Option<Regex>,

    /// Regexp of network devices to include in the netdev collector (all when unset).
    #[arg(long = "collector.netdev.device-include", env = "STEVEDORE_COLLECTOR_NETDEV_DEVICE_INCLUDE",
          value_parser = parse_regex, conflicts_with = "netdev_device_exclude")]
    pub netdev_device_include: Option<Regex>,

    /// Regexp of block devices to ignore in the diskstats collector.
    #[arg(long = "collector.diskstats.device-exclude", env = "STEVEDORE_COLLECTOR_DISKSTATS_DEVICE_EXCLUDE",
          default_value = DEFAULT_DEVICE_EXCLUDE, value_parser = parse_regex)]
    pub diskstats_device_exclude: Regex,

    /// Report every cgroup (system.slice, user sessions, kubepods QoS levels), not only the root, pods and
    /// containers.
    #[arg(
        long = "collector.cgroup.include-system",
        env = "STEVEDORE_COLLECTOR_CGROUP_INCLUDE_SYSTEM"
    )]
    pub cgroup_include_system: bool,

    /// Keep cgroup files open between scrapes and re-read them in place: about ten times less CPU per
    /// scrape on hosts with many containers, at the price of about 15 open files and 60 KiB of kernel
    /// memory per container (charged to the exporter's memory cgroup).
    #[arg(
        long = "collector.cgroup.keep-open",
        env = "STEVEDORE_COLLECTOR_CGROUP_KEEP_OPEN"
    )]
    pub cgroup_keep_open: bool,

    /// Count each container's tasks by state (container_tasks_state) from /proc/<pid>/task/<tid>/stat:
    /// one read per thread per scrape, so off by default.
    #[arg(
        long = "collector.cgroup.tasks-state",
        env = "STEVEDORE_COLLECTOR_CGROUP_TASKS_STATE"
    )]
    pub cgroup_tasks_state: bool,

    /// Docker daemon address (unix:///var/run/docker.sock, tcp://host:2375). Unset: DOCKER_HOST, else the
    /// local socket.
    #[arg(long = "docker.host", env = "STEVEDORE_DOCKER_HOST")]
    pub docker_host: Option<String>,

    /// Podman's API sockets, comma-separated (rootful: unix:///run/podman/podman.sock, a rootless user's:
    /// unix:///run/user/<uid>/podman/podman.sock; served by podman.socket or `podman system service`).
    /// Unset: those that exist at start; empty: Podman off.
    #[arg(long = "podman.host", env = "STEVEDORE_PODMAN_HOST")]
    pub podman_host: Option<String>,

    /// containerd's socket (unix:///run/containerd/containerd.sock). Unset: that socket if it exists at
    /// start; empty: containerd off.
    #[arg(long = "containerd.address", env = "STEVEDORE_CONTAINERD_ADDRESS")]
    pub containerd_address: Option<String>,

    /// containerd namespaces to read (comma-separated). Unset: every namespace but `moby` (Docker's,
    /// whose containers the Docker source names).
    #[arg(
        long = "containerd.namespaces",
        env = "STEVEDORE_CONTAINERD_NAMESPACES",
        value_delimiter = ','
    )]
    pub containerd_namespaces: Vec<String>,

    /// Docker labels to add to container series as container_label_<key> (comma-separated keys).
    #[arg(
        long = "docker.labels",
        env = "STEVEDORE_DOCKER_LABELS",
        value_delimiter = ','
    )]
    pub docker_labels: Vec<String>,

    /// Docker labels to add to container series: every key matching this regexp.
    #[arg(long = "docker.labels-regex", env = "STEVEDORE_DOCKER_LABELS_REGEX", value_parser = parse_regex)]
    pub docker_labels_regex: Option<Regex>,

    /// Stats mode only (cgroups not readable): how often to poll Docker's stats API.
    #[arg(long = "docker.stats-interval", env = "STEVEDORE_DOCKER_STATS_INTERVAL", default_value = "10s",
          value_parser = parse_positive_duration)]
    pub docker_stats_interval: Duration,

    /// Stats mode only: stats calls in flight at once.
    #[arg(
        long = "docker.stats-concurrency",
        env = "STEVEDORE_DOCKER_STATS_CONCURRENCY",
        default_value_t = 8
    )]
    pub docker_stats_concurrency: usize,

    /// Stats mode only: how long one container's stats call may take.
    #[arg(long = "docker.stats-timeout", env = "STEVEDORE_DOCKER_STATS_TIMEOUT", default_value = "5s",
          value_parser = parse_positive_duration)]
    pub docker_stats_timeout: Duration,

    /// Kubeconfig file for the Kubernetes API. Unset: in-cluster service account when running in a pod,
    /// else $KUBECONFIG or ~/.kube/config. Without any of them the kubernetes source stays off.
    #[arg(long = "kubeconfig", env = "STEVEDORE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// This node's name: only its pods are watched. Set it from the downward API (spec.nodeName).
    #[arg(long = "kubernetes.node-name", env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// Pod labels to add to container and pod series as pod_label_<key> (comma-separated keys).
    #[arg(
        long = "kubernetes.pod-labels",
        env = "STEVEDORE_KUBERNETES_POD_LABELS",
        value_delimiter = ','
    )]
    pub pod_labels: Vec<String>,

    /// Where pod metadata comes from: a watch on the apiserver, or the kubelet's /pods (no apiserver load).
    #[arg(
        long = "kubernetes.pods-from",
        env = "STEVEDORE_KUBERNETES_PODS_FROM",
        value_enum,
        default_value = "apiserver"
    )]
    pub pods_from: PodsFrom,

    /// Sidecar mode: report only this pod's containers (its uid, from the downward API
    /// metadata.uid), and watch only this pod on the apiserver (with --kubernetes.pod-name and
    /// --kubernetes.pod-namespace). The root cgroup and other pods are left out.
    #[arg(long = "kubernetes.pod-uid", env = "POD_UID")]
    pub pod_uid: Option<String>,

    /// Sidecar mode: this pod's name (downward API metadata.name).
    #[arg(long = "kubernetes.pod-name", env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Sidecar mode: this pod's namespace (downward API metadata.namespace).
    #[arg(long = "kubernetes.pod-namespace", env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,

    /// The kubelet's address (https://<node-ip>:10250, or http://<node-ip>:10255 for the read-only port).
    /// Unset: https://$HOST_IP:10250 when running in a pod with HOST_IP set, else the kubelet source is off.
    #[arg(long = "kubelet.url", env = "STEVEDORE_KUBELET_URL")]
    pub kubelet_url: Option<String>,

    /// Bearer token file for the kubelet, re-read whenever it changes (projected tokens rotate).
    /// Default in a pod: the service account token.
    #[arg(long = "kubelet.token-file", env = "STEVEDORE_KUBELET_TOKEN_FILE")]
    pub kubelet_token_file: Option<PathBuf>,

    /// CA bundle (PEM) that signed the kubelet's serving certificate. Default: the system roots.
    #[arg(long = "kubelet.ca-file", env = "STEVEDORE_KUBELET_CA_FILE")]
    pub kubelet_ca_file: Option<PathBuf>,

    /// Do not verify the kubelet's serving certificate (kubelets often serve a self-signed one).
    #[arg(
        long = "kubelet.insecure-skip-verify",
        env = "STEVEDORE_KUBELET_INSECURE_SKIP_VERIFY"
    )]
    pub kubelet_insecure_skip_verify: bool,

    /// How often to poll the kubelet's /stats/summary (and /pods with --kubernetes.pods-from=kubelet).
    #[arg(long = "kubelet.interval", env = "STEVEDORE_KUBELET_INTERVAL", default_value = "10s",
          value_parser = parse_positive_duration)]
    pub kubelet_interval: Duration,

    /// How long one kubelet request may take.
    #[arg(long = "kubelet.timeout", env = "STEVEDORE_KUBELET_TIMEOUT", default_value = "10s",
          value_parser = parse_positive_duration)]
    pub kubelet_timeout: Duration,

    /// Only log messages with the given severity or above.
    #[arg(
        long = "log.level",
        env = "STEVEDORE_LOG_LEVEL",
        value_enum,
        default_value = "info"
    )]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(
        long = "log.format",
        env = "STEVEDORE_LOG_FORMAT",
        value_enum,
        default_value = "logfmt"
    )]
    pub log_format: LogFormat,
}

/// Parsed flags plus the resolved set of enabled collectors.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub flags: Flags,
    pub enabled: Vec<&'static str>,
}

fn env_name(flag: &str) -> String {
    format!("STEVEDORE_{}", flag.to_uppercase().replace(['.', '-'], "_"))
}

/// A collector as the flags know it: its name and whether it runs unless disabled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Toggle {
    pub name: &'static str,
    pub default_enabled: bool,
}

/// The full clap command: fixed flags plus one enable/disable pair per collector.
pub(crate) fn command(collectors: &[Toggle]) -> Command {
    let mut cmd = Flags::command();
    for info in collectors {
        let on: &'static str = Box::leak(format!("collector.{}", info.name).into_boxed_str());
        let off: &'static str = Box::leak(format!("no-collector.{}", info.name).into_boxed_str());
        let default = if info.default_enabled {
            "enabled"
        } else {
            "disabled"
        };
        cmd = cmd
            .arg(
                Arg::new(on)
                    .long(on)
                    .env(Box::leak(env_name(on).into_boxed_str()) as &'static str)
                    .action(ArgAction::SetTrue)
                    .overrides_with(off)
                    .help(format!(
                        "Enable the {} collector (default: {default}).",
                        info.name
                    )),
            )
            .arg(
                Arg::new(off)
                    .long(off)
                    .action(ArgAction::SetTrue)
                    .overrides_with(on)
                    .help(format!("Disable the {} collector.", info.name)),
            );
    }
    cmd
}

/// Parse the process arguments; on a bad flag or value clap prints the error and exits with status 2.
pub(crate) fn parse(collectors: &[Toggle]) -> Config {
    let matches = command(collectors).get_matches();
    match from_matches(&matches, collectors) {
        Ok(c) => c,
        Err(e) => e.exit(),
    }
}

/// Parse an explicit argument list.
pub(crate) fn try_parse_from<I, T>(collectors: &[Toggle], args: I) -> Result<Config, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command(collectors).try_get_matches_from(args)?;
    from_matches(&matches, collectors)
}

fn from_matches(matches: &ArgMatches, collectors: &[Toggle]) -> Result<Config, clap::Error> {
    let flags = Flags::from_arg_matches(matches)?;
    let mut enabled = Vec::new();
    for info in collectors {
        let on = format!("collector.{}", info.name);
        let off = format!("no-collector.{}", info.name);
        let explicit_off =
            matches.value_source(&off) == Some(ValueSource::CommandLine) && matches.get_flag(&off);
        let explicit_on = matches!(
            matches.value_source(&on),
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable)
        );
        let state = if explicit_off {
            false
        } else if explicit_on {
            matches.get_flag(&on)
        } else {
            info.default_enabled && !flags.disable_defaults
        };
        if state {
            enabled.push(info.name);
        }
    }
    Ok(Config { flags, enabled })
}

/// `:9777`, `0.0.0.0:9777`, `127.0.0.1:0`, `[::1]:9777`.
fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse().map_err(|_| {
        format!("'{s}' is not host:port (examples: :9777, 127.0.0.1:9777, [::1]:9777)")
    })
}

fn parse_telemetry_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' must start with '/'"))
    }
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| format!("not a valid regular expression: {e}"))
}

/// Prometheus-style durations: `0`, `500ms`, `1s`, `2m`, `1h`, also combined as `1m30s`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("'{s}' is not a duration (examples: 0, 500ms, 1s, 2m, 1m30s)");
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(err()),
        };
        total = total.saturating_add(d);
    }
    Ok(total)
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        Err(format!("'{s}' must be longer than 0"))
    } else {
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_positive_duration("0").is_err());
    }

    const TOGGLES: &[Toggle] = &[
        Toggle {
            name: "cpu",
            default_enabled: true,
        },
        Toggle {
            name: "loadavg",
            default_enabled: true,
        },
        Toggle {
            name: "extra",
            default_enabled: false,
        },
    ];

    #[test]
    fn collector_toggles() {
        let c = try_parse_from(TOGGLES, ["stevedore"]).unwrap();
        assert!(!c.enabled.contains(&"extra"));
        assert!(c.enabled.contains(&"cpu"));
        let c = try_parse_from(TOGGLES, ["stevedore", "--no-collector.cpu"]).unwrap();
        assert!(!c.enabled.contains(&"cpu"));
        let c = try_parse_from(
            TOGGLES,
            ["stevedore", "--no-collector.cpu", "--collector.cpu"],
        )
        .unwrap();
        assert!(c.enabled.contains(&"cpu"));
        let c = try_parse_from(
            TOGGLES,
            [
                "stevedore",
                "--collector.disable-defaults",
                "--collector.loadavg",
            ],
        )
        .unwrap();
        assert_eq!(c.enabled, vec!["loadavg"]);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e =
            try_parse_from(TOGGLES, ["stevedore", "--web.listen-address", "nonsense"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--web.listen-address"), "{e}");
        let e = try_parse_from(TOGGLES, ["stevedore", "--collect.min-age", "soon"]).unwrap_err();
        assert!(e.to_string().contains("--collect.min-age"), "{e}");
    }
}
