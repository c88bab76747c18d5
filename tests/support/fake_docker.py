#!/usr/bin/env python3
"""A Docker Engine API that answers ping, version, info and an empty container list, and ends every
events stream at once: a daemon that accepts and drops the stream (tests/log_floods.rs).

  fake_docker.py  ->  prints the port it listens on (127.0.0.1), then serves until killed.
  GET /_counts    ->  {"events": N, "list": N}
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {"events": 0, "list": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/_counts":
            return self.send_json(COUNTS)
        if path.endswith("/_ping"):
            data = b"OK"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if path.endswith("/version"):
            return self.send_json({"Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12"})
        if path.endswith("/info"):
            return self.send_json({"CgroupDriver": "cgroupfs", "CgroupVersion": "1"})
        if path.endswith("/containers/json"):
            COUNTS["list"] += 1
            return self.send_json([])
        if path.endswith("/events"):
            COUNTS["events"] += 1
            # Accepted, then ended at once: an empty chunked body.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            return self.wfile.write(b"0\r\n\r\n")
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
