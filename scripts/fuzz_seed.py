#!/usr/bin/env python3
"""Seeds the fuzz corpora from the recorded fixtures (../shared/fixtures): each seed is the selector
byte of the parser it is meant for (see src/fuzz.rs), then a real file's content.

  fuzz_seed.py FIXTURES CORPUS_DIR
"""
import hashlib
import subprocess
import tempfile
import os
import pathlib
import sys


def ttar_members(path):
    """The files of a prometheus/procfs ttar archive: {path: bytes}."""
    out, lines, i, name = {}, open(path, encoding="utf-8").read().split("\n"), 0, None
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("Path: "):
            name = line[6:]
        elif line.startswith("Lines: ") and name:
            n = int(line[7:])
            body = lines[i:i + n]
            i += n
            text = "\n".join(body)
            text = text[:-3] if text.endswith("EOF") else text + "\n"
            out[name] = text.replace("NULLBYTE", "\0").encode()
            name = None
    return out


def main():
    fixtures, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    seeds = {t: [] for t in ["procfs", "cgroup_files", "cgroup_path", "kubelet", "docker_stats", "http_request", "web_config"]}
    proc = ttar_members(fixtures / "procfs/fixtures.ttar")
    by_name = {"stat": 1, "meminfo": 2, "loadavg": 3, "net/dev": 4, "diskstats": 5, "mountinfo": 7, "cpuinfo": 8}
    for path, data in proc.items():
        for suffix, pick in by_name.items():
            if path.endswith("/" + suffix):
                seeds["procfs"].append(bytes([pick]) + data)
                if suffix == "stat" and "/proc/stat" in path:
                    seeds["procfs"].append(bytes([0]) + data)
        if "/pressure/" in path:
            seeds["procfs"].append(bytes([6]) + data)
    cg_pick = {"memory.stat": [0, 5], "blkio.throttle.io_service_bytes": [1], "blkio.throttle.io_serviced": [1],
               "io.stat": [2], "cpu.stat": [3], "cpu.max": [4]}
    for root in [fixtures / "elastic-cgroup", fixtures / "telegraf"]:
        for f in root.rglob("*"):
            if f.is_file():
                for pick in cg_pick.get(f.name, []):
                    seeds["cgroup_files"].append(bytes([pick]) + f.read_bytes())
            if f.is_dir():
                rel = "/" + str(f.relative_to(root)).split("cgroup", 1)[-1].lstrip("/")
                seeds["cgroup_path"].append(rel.encode())
    for f in list((fixtures / "nri-kubernetes").rglob("*")) + list((fixtures / "signalfx-agent").rglob("*")):
        if f.is_file() and f.stat().st_size < 4 << 20:
            pick = 0 if "summary" in f.name or "stats" in str(f) else 1
            seeds["kubelet"].append(bytes([pick]) + f.read_bytes())
    for f in (fixtures / "otel-contrib").rglob("*.json"):
        seeds["docker_stats"].append(bytes([0]) + f.read_bytes())
    seeds["docker_stats"].append(b"\x01" + b"2026-11-26T15:22:50.123456789Z")
    for q in [b"collect[]=cpu", b"exclude[]=meminfo&exclude[]=cgroup", b"collect%5B%5D=cpu"]:
        seeds["http_request"].append(b"\x00" + q)
    seeds["http_request"].append(b"\x01application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    web = [
        b"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n",
        b"tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  client_auth_type: RequireAndVerifyClientCert\n"
        b"  client_ca_file: ca.crt\n  client_allowed_sans: [a.example]\n"
        b"  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519]\n",
        b"http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n",
        b"basic_auth_users:\n  alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n"
        b"rate_limit:\n  interval: 1s\n  burst: 5\n",
    ]
    seeds["web_config"] += [b"\x00" + w for w in web] + [b"\x01Basic YWxpY2U6czNjcjN0"]
    # A client certificate's DER, made here by openssl when it is installed.
    try:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", f"{d}/k", "-out", f"{d}/c", "-outform", "DER", "-subj", "/CN=c",
                            "-addext", "subjectAltName=DNS:a.example,IP:127.0.0.1,email:a@b.c,URI:spiffe://x/y"],
                           check=True, capture_output=True)
            seeds["web_config"].append(b"\x02" + pathlib.Path(f"{d}/c").read_bytes())
    except (OSError, subprocess.CalledProcessError):
        pass
    for target, items in seeds.items():
        d = corpus / target
        d.mkdir(parents=True, exist_ok=True)
        for s in items:
            (d / hashlib.sha1(s).hexdigest()).write_bytes(s)
        print(f"{target}: {len(items)} seeds")


if __name__ == "__main__":
    main()
