#!/usr/bin/env python3
"""Writes charts/stevedore/values.schema.json from values.yaml: every key the chart documents, typed by its
default, with no other key allowed (a misspelt value is refused by helm with its path); Kubernetes
objects passed through as they are; the enumerated values. tests/gitops.rs runs it and compares."""
import json, yaml, sys
vals = yaml.safe_load(open(sys.argv[1]))
def schema(v, path):
    if isinstance(v, dict):
        if not v:
            return {"type": "object"}
        return {"type": "object", "additionalProperties": False,
                "properties": {k: schema(x, path + [k]) for k, x in v.items()}}
    if isinstance(v, bool): return {"type": "boolean"}
    if isinstance(v, int): return {"type": "integer"}
    if isinstance(v, float): return {"type": "number"}
    if isinstance(v, str): return {"type": "string"}
    if isinstance(v, list):
        if v and all(isinstance(x, str) for x in v): return {"type": "array", "items": {"type": "string"}}
        return {"type": "array"}
    if v is None: return {}
    raise Exception(path)
FREE = {"resources", "podSecurityContext", "securityContext", "livenessProbe", "readinessProbe",
        "updateStrategy", "nodeSelector", "affinity"}
s = schema(vals, [])
for k in FREE:
    s["properties"][k] = {"type": "object", "description": "A Kubernetes object, passed as it is."}
s["properties"]["tolerations"] = {"type": "array", "items": {"type": "object"}}
s["properties"]["extraEnv"] = {"type": "array", "items": {"type": "object"}}
s["properties"]["imagePullSecrets"] = {"type": "array", "items": {"type": "object"}}
s["properties"]["image"]["properties"]["pullPolicy"]["enum"] = ["Always", "IfNotPresent", "Never"]
s["properties"]["kubernetes"]["properties"]["podsFrom"]["enum"] = ["apiserver", "kubelet"]
for m in ("serviceMonitor", "podMonitor"):
    s["properties"][m]["properties"]["profile"]["enum"] = ["stevedore", "kubelet-cadvisor"]
    s["properties"][m]["properties"]["scheme"]["enum"] = ["http", "https"]
s = {"$schema": "https://json-schema.org/draft-07/schema#", "title": "Values of the Stevedore chart", **s}
print(json.dumps(s, indent=2))
