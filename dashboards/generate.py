"""Writes dashboards/stevedore.json, the Grafana dashboard, from the panel list below (one source, no
hand-edited JSON). Run: python3 dashboards/generate.py. tests/e2e_prometheus.rs runs every query.

Every query selects job=~"$job" and instance=~"$instance" (node), so a cluster that also scrapes the
kubelet's cAdvisor endpoint and node_exporter does not add both sources up. Container legends come from a
`display` label: namespace/pod/container on Kubernetes, the container's name on Docker."""
import json
import pathlib

SEL = 'job=~"$job",instance=~"$instance"'
CSEL = SEL + ',namespace=~"$namespace",pod=~"$pod"'


def display(expr):
    """Adds display="ns/pod/container" to Kubernetes series and display=name to the others."""
    joined = f'label_join({expr}, "k8s", "/", "namespace", "pod", "container")'
    named = f'label_replace({joined}, "display", "$1", "name", "(.*)")'
    return f'label_replace({named}, "display", "$1", "k8s", "(.+/.+/.*)")'


BY = "instance, name, namespace, pod, container"


def ts(title, targets, unit="short", w=12, h=8, kind="timeseries"):
    return {"type": kind, "title": title, "targets": targets, "unit": unit, "w": w, "h": h}


def t(expr, legend):
    return {"expr": expr, "legendFormat": legend}


CONTAINERS = [
    ts("CPU (cores)", [t(display(f'sum by ({BY}) (rate(container_cpu_usage_seconds_total{{{CSEL},name!="",cpu="total"}}[$__rate_interval]))'), "{{display}}")]),
    ts("Memory working set", [t(display(f'sum by ({BY}) (container_memory_working_set_bytes{{{CSEL},name!=""}})'), "{{display}}")], "bytes"),
    ts("CPU throttling (share of periods)", [t(display(
        f'sum by ({BY}) (rate(container_cpu_cfs_throttled_periods_total{{{CSEL},name!=""}}[$__rate_interval])) '
        f'/ sum by ({BY}) (rate(container_cpu_cfs_periods_total{{{CSEL},name!=""}}[$__rate_interval]))'), "{{display}}")], "percentunit"),
    ts("Memory use of limit", [t(display(
        f'sum by ({BY}) (container_memory_working_set_bytes{{{CSEL},name!=""}}) '
        f'/ sum by ({BY}) (container_spec_memory_limit_bytes{{{CSEL},name!=""}} > 0)'), "{{display}}")], "percentunit"),
    ts("Network (bytes/s)", [
        t(f'sum by (instance, name, namespace, pod) (rate(container_network_receive_bytes_total{{{CSEL}}}[$__rate_interval]))', "rx {{namespace}}/{{pod}}{{name}}"),
        t(f'- sum by (instance, name, namespace, pod) (rate(container_network_transmit_bytes_total{{{CSEL}}}[$__rate_interval]))', "tx {{namespace}}/{{pod}}{{name}}"),
    ], "Bps"),
    ts("Block I/O (bytes/s)", [
        t(display(f'sum by ({BY}, device) (rate(container_fs_reads_bytes_total{{{CSEL},name!=""}}[$__rate_interval]))'), "read {{display}} {{device}}"),
        t(display(f'- sum by ({BY}, device) (rate(container_fs_writes_bytes_total{{{CSEL},name!=""}}[$__rate_interval]))'), "write {{display}} {{device}}"),
    ], "Bps"),
    ts("OOM kills and restarts", [
        t(display(f'sum by ({BY}) (increase(container_oom_events_total{{{CSEL},name!=""}}[$__rate_interval]))'), "oom {{display}}"),
        t(display(f'sum by ({BY}) (increase(stevedore_container_restarts_total{{{CSEL}}}[$__rate_interval]))'), "restarts {{display}}"),
    ]),
    ts("Processes and threads", [
        t(display(f'sum by ({BY}) (container_processes{{{CSEL},name!=""}})'), "processes {{display}}"),
        t(display(f'sum by ({BY}) (container_threads{{{CSEL},name!=""}})'), "threads {{display}}"),
    ]),
]

def band(signal, legend):
    """A recorded signal with its band: the three-day mean (of an hour ago) ± three deviations."""
    sel = f'{{{CSEL}}}'
    mean, dev = f"{signal}:mean3d{sel}", f"{signal}:stddev3d{sel}"
    return [
        t(display(f"{signal}{sel}"), f"{legend} {{{{display}}}}"),
        t(display(f"{mean} + 3 * {dev}"), f"band top {{{{display}}}}"),
        t(display(f"clamp_min({mean} - 3 * {dev}, 0)"), f"band bottom {{{{display}}}}"),
    ]


# The alerts of deploy/prometheus/stevedore-alerts.yml as they fire, what the predictive ones read, and
# the anomaly bands (empty for the first hour: the band is that of an hour ago). tests/alerting_e2e.rs
# runs these queries on the Prometheus that raised the alerts.
ALERTING = [
    ts("Firing alerts", [t(
        f'sum by (alertname, severity, instance, name, namespace, pod, container, resource, signal) '
        f'(ALERTS{{{SEL},alertstate="firing"}})',
        "{{alertname}} {{namespace}}/{{pod}}/{{container}}{{name}} {{resource}}{{signal}}")], w=24, kind="state-timeline"),
    ts("Memory in an hour at the trend of 30 minutes (share of limit)", [t(display(
        f'predict_linear(container_memory_working_set_bytes{{{CSEL},name!=""}}[30m], 3600) '
        f'/ (container_spec_memory_limit_bytes{{{CSEL},name!=""}} > 0)'), "{{display}}")], "percentunit"),
    ts("Pressure stalls (share of time)", [
        t(display(f'rate(container_pressure_cpu_waiting_seconds_total{{{CSEL},name!=""}}[$__rate_interval])'), "cpu {{display}}"),
        t(display(f'rate(container_pressure_memory_stalled_seconds_total{{{CSEL},name!=""}}[$__rate_interval])'), "memory {{display}}"),
        t(display(f'rate(container_pressure_io_stalled_seconds_total{{{CSEL},name!=""}}[$__rate_interval])'), "io {{display}}"),
    ], "percentunit"),
    ts("CPU and its usual band (cores)", band("container:cpu_usage_seconds:rate5m", "cpu")),
    ts("Memory and its usual band", band("container:memory_working_set_bytes:avg5m", "memory"), "bytes"),
]

PSEL = SEL + ',namespace=~"$namespace",pod=~"$pod",pod!="",container!=""'
KUBERNETES = [
    ts("Pod CPU: usage, requests, limits (cores)", [
        t(f'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{{PSEL},cpu="total"}}[$__rate_interval]))', "used {{namespace}}/{{pod}}"),
        t(f'sum by (namespace, pod) (stevedore_container_resource_requests{{{PSEL},resource="cpu"}})', "requested {{namespace}}/{{pod}}"),
        t(f'sum by (namespace, pod) (stevedore_container_resource_limits{{{PSEL},resource="cpu"}})', "limit {{namespace}}/{{pod}}"),
    ]),
    ts("Pod memory: working set, requests, limits", [
        t(f'sum by (namespace, pod) (container_memory_working_set_bytes{{{PSEL}}})', "used {{namespace}}/{{pod}}"),
        t(f'sum by (namespace, pod) (stevedore_container_resource_requests{{{PSEL},resource="memory"}})', "requested {{namespace}}/{{pod}}"),
        t(f'sum by (namespace, pod) (stevedore_container_resource_limits{{{PSEL},resource="memory"}})', "limit {{namespace}}/{{pod}}"),
    ], "bytes"),
    ts("Container CPU throttling (share of periods)", [t(
        f'sum by (namespace, pod, container) (rate(container_cpu_cfs_throttled_periods_total{{{PSEL}}}[$__rate_interval])) '
        f'/ sum by (namespace, pod, container) (rate(container_cpu_cfs_periods_total{{{PSEL}}}[$__rate_interval]))',
        "{{namespace}}/{{pod}}/{{container}}")], "percentunit"),
    ts("Container OOM kills and restarts", [
        t(f'sum by (namespace, pod, container) (increase(container_oom_events_total{{{PSEL}}}[$__rate_interval]))', "oom {{namespace}}/{{pod}}/{{container}}"),
        t(f'sum by (namespace, pod, container) (increase(stevedore_container_restarts_total{{{PSEL}}}[$__rate_interval]))', "restarts {{namespace}}/{{pod}}/{{container}}"),
    ]),
]

NODE = [
    ts("Node CPU (cores) by mode", [t(f'sum by (instance, mode) (rate(node_cpu_seconds_total{{{SEL},mode!="idle"}}[$__rate_interval]))', "{{instance}} {{mode}}")]),
    ts("Node memory", [
        t(f'node_memory_MemTotal_bytes{{{SEL}}} - node_memory_MemAvailable_bytes{{{SEL}}}', "used {{instance}}"),
        t(f'node_memory_MemTotal_bytes{{{SEL}}}', "total {{instance}}"),
    ], "bytes"),
]

EXPORTER = [
    ts("Collector duration (s)", [t(f'stevedore_scrape_collector_duration_seconds{{{SEL}}}', "{{instance}} {{collector}}")], "s"),
    ts("Collector and source health (1 = ok)", [
        t(f'stevedore_scrape_collector_success{{{SEL}}}', "{{instance}} {{collector}}"),
        t(f'stevedore_source_up{{{SEL}}}', "{{instance}} source {{source}}"),
    ]),
    ts("Exporter resident memory", [t(f'process_resident_memory_bytes{{{SEL}}}', "{{instance}}")], "bytes"),
]


def query_var(name, label, query, all_value=".*"):
    return {
        "name": name, "label": label, "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name}, "definition": query,
        "includeAll": True, "multi": True, "allValue": all_value,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2, "sort": 1,
    }


def build():
    panels, y, pid = [], 0, 1
    for title, group in [("Alerts and usual bands", ALERTING), ("Containers", CONTAINERS), ("Kubernetes: namespace → pod → container", KUBERNETES),
                         ("Node", NODE), ("Stevedore", EXPORTER)]:
        panels.append({"type": "row", "title": title, "id": pid, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y, x = pid + 1, y + 1, 0
        for p in group:
            targets = [{"refId": chr(65 + i), "datasource": {"type": "prometheus", "uid": "${datasource}"},
                        "expr": q["expr"], "legendFormat": q["legendFormat"], "range": True}
                       for i, q in enumerate(p["targets"])]
            panels.append({
                "type": p["type"], "title": p["title"], "id": pid,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": p["h"], "w": p["w"], "x": x, "y": y},
                "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
                "targets": targets,
            })
            pid += 1
            x += p["w"]
            if x >= 24:
                x, y = 0, y + p["h"]
        if x:
            y += 8
    return {
        "title": "Stevedore: containers, pods and node",
        "uid": "stevedore-containers",
        "description": "Container, pod and node usage from Stevedore (cAdvisor and node_exporter names), and the exporter's own health. Every query is filtered by job and node, so other sources of the same names are not added in.",
        "tags": ["stevedore", "containers", "kubernetes"],
        "schemaVersion": 39, "version": 3, "editable": True, "timezone": "browser",
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
             "current": {"selected": False, "text": "Prometheus", "value": "prometheus"}},
            query_var("job", "Job", "label_values(stevedore_build_info, job)"),
            query_var("instance", "Node", 'label_values(stevedore_build_info{job=~"$job"}, instance)'),
            query_var("namespace", "Namespace", 'label_values(container_cpu_usage_seconds_total{job=~"$job",instance=~"$instance"}, namespace)'),
            query_var("pod", "Pod", 'label_values(container_cpu_usage_seconds_total{job=~"$job",instance=~"$instance",namespace=~"$namespace"}, pod)'),
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    out = pathlib.Path(__file__).with_name("stevedore.json")
    out.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n")
