#!/usr/bin/python3
"""Replays recorded Kubernetes payloads for Stevedore's tests, with the apiserver's list-then-watch
semantics and the kubelet's endpoints.

Apiserver (what kube-rs's watcher asks for):
  GET /api/v1/pods?fieldSelector=spec.nodeName=N            -> PodList of N's pods with metadata.resourceVersion
  GET /api/v1/pods?watch=true&resourceVersion=R&...         -> newline-delimited watch events, then the stream
                                                               ends (the client watches again from its last
                                                               version), or one ERROR event with code 410 when
                                                               a test asked for it (the client lists again)
  GET /api/v1/namespaces/NS/pods?fieldSelector=metadata.name=P  -> the same for one pod (sidecar mode)
Kubelet:
  GET /stats/summary, GET /pods                             -> the recorded payloads, byte for byte, behind an
                                                               optional bearer token
Control (tests only):
  POST /_control   {"pods": [...], "events": [...], "gone": true, "status": {"apiserver": 403},
                    "token": "...", "summary_text": "...", "kubelet_pods_text": "..."}
  GET  /_control   -> {"requests": [[method, path, authorization], ...]}

Usage: kube_replay.py [--apiserver-pods FILE(.yaml|.json)] [--summary FILE] [--kubelet-pods FILE]
                      [--token T] [--tls CERT KEY]
Prints "PORT <n>" on stdout once listening on 127.0.0.1.
"""

import argparse
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATE = {
    "pods": [],
    "rv": 1000,
    "events": [],
    "gone": False,
    "status": {},
    "token": None,
    "summary_text": None,
    "kubelet_pods_text": None,
    "requests": [],
}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".yaml") or path.endswith(".yml"):
        import yaml

        return yaml.safe_load(data)
    return json.loads(data)


def status_body(code, reason, message):
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def node_of(pod):
    return (pod.get("spec") or {}).get("nodeName")


def selector_name(query):
    sel = query.get("fieldSelector", [""])[0]
    for part in sel.split(","):
        if part.startswith("metadata.name="):
            return part.split("=", 1)[1]
    return None


def selector_node(query):
    sel = query.get("fieldSelector", [""])[0]
    for part in sel.split(","):
        if part.startswith("spec.nodeName="):
            return part.split("=", 1)[1]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def send_json(self, code, obj, text=None):
        body = text.encode() if text is not None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/_control":
            return self.send_json(404, status_body(404, "NotFound", "no such path"))
        n = int(self.headers.get("Content-Length", "0"))
        change = json.loads(self.rfile.read(n) or b"{}")
        with LOCK:
            if "pods" in change:
                STATE["rv"] += 1
            for k, v in change.items():
                if k == "events":
                    STATE["events"].extend(v)
                elif k == "status":
                    STATE["status"].update(v)
                else:
                    STATE[k] = v
        self.send_json(200, {})

    def authorized(self):
        tok = STATE["token"]
        return tok is None or self.headers.get("Authorization") == "Bearer " + tok

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        with LOCK:
            STATE["requests"].append(
                [self.command, self.path, self.headers.get("Authorization")]
            )
        if url.path == "/_control":
            with LOCK:
                return self.send_json(200, {"requests": STATE["requests"]})
        if url.path == "/api/v1/pods":
            return self.apiserver(query)
        # One namespace's pods (a sidecar watching its own pod by metadata.name).
        parts = url.path.split("/")
        if len(parts) == 6 and parts[1:4] == ["api", "v1", "namespaces"] and parts[5] == "pods":
            return self.apiserver(query, namespace=parts[4])
        if url.path in ("/stats/summary", "/pods"):
            return self.kubelet(url.path)
        self.send_json(404, status_body(404, "NotFound", "no such path"))

    def kubelet(self, path):
        code = STATE["status"].get("kubelet")
        if code:
            return self.send_json(code, None, text="kubelet says %d\n" % code)
        if not self.authorized():
            return self.send_json(401, None, text="Unauthorized\n")
        key = "summary_text" if path == "/stats/summary" else "kubelet_pods_text"
        with LOCK:
            text = STATE[key]
        if text is None:
            return self.send_json(404, None, text="not recorded\n")
        self.send_json(200, None, text=text)

    def apiserver(self, query, namespace=None):
        code = STATE["status"].get("apiserver")
        if code:
            reason = {401: "Unauthorized", 403: "Forbidden"}.get(code, "InternalError")
            msg = (
                'pods is forbidden: User "system:serviceaccount:monitoring:stevedore" cannot list '
                'resource "pods" in API group "" at the cluster scope'
                if code == 403
                else reason
            )
            return self.send_json(code, status_body(code, reason, msg))
        node = selector_node(query)
        name = selector_name(query)

        def mine(p):
            meta = p.get("metadata") or {}
            return (
                (node is None or node_of(p) == node)
                and (namespace is None or meta.get("namespace") == namespace)
                and (name is None or meta.get("name") == name)
            )

        if query.get("watch", ["false"])[0] not in ("true", "1"):
            with LOCK:
                items = [p for p in STATE["pods"] if mine(p)]
                rv = str(STATE["rv"])
            return self.send_json(
                200,
                {
                    "kind": "PodList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                },
            )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        with LOCK:
            gone = STATE["gone"]
            STATE["gone"] = False
            events = [] if gone else STATE["events"]
            if not gone:
                STATE["events"] = []
        if gone:
            ev = {"type": "ERROR", "object": status_body(410, "Expired", "too old resource version")}
            self.wfile.write((json.dumps(ev) + "\n").encode())
            return
        for ev in events:
            obj = ev["object"]
            if not mine(obj):
                continue
            with LOCK:
                STATE["rv"] += 1
                obj.setdefault("metadata", {})["resourceVersion"] = str(STATE["rv"])
                # Keep the list in step, so a later list agrees with the events sent.
                uid = obj["metadata"].get("uid")
                STATE["pods"] = [p for p in STATE["pods"] if p["metadata"].get("uid") != uid]
                if ev["type"] != "DELETED":
                    STATE["pods"].append(obj)
            self.wfile.write((json.dumps(ev) + "\n").encode())
            self.wfile.flush()
        # The watch ends here, as the apiserver ends one at its timeout; the client watches again.
        # A short hold keeps the client from spinning.
        threading.Event().wait(0.5)


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (the exporter refusing an oversized body) is not an error."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--apiserver-pods")
    ap.add_argument("--summary")
    ap.add_argument("--kubelet-pods")
    ap.add_argument("--token")
    ap.add_argument("--tls", nargs=2)
    a = ap.parse_args()
    if a.apiserver_pods:
        STATE["pods"] = load(a.apiserver_pods)["items"]
    if a.summary:
        STATE["summary_text"] = open(a.summary, encoding="utf-8").read()
    if a.kubelet_pods:
        STATE["kubelet_pods_text"] = open(a.kubelet_pods, encoding="utf-8").read()
    STATE["token"] = a.token
    srv = QuietServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
