"""JSON Schemas for the Prometheus Operator resources k8s/ uses (``monitoring.coreos.com/v1``).

Hand-written from the fields of the operator's CRDs (``servicemonitors.monitoring.coreos.com``,
``prometheusrules.monitoring.coreos.com``) as its API reference documents them,
reduced to the parts a ServiceMonitor and a PrometheusRule for one application
use, and strict (``additionalProperties: false``) like tests/k8s/traefik_schema.py:
a misspelt field (``scrape_interval``, ``matchLabel``) fails here instead of being
pruned silently by the API server. Durations follow the CRDs' pattern.
"""

from __future__ import annotations

from typing import Any

from tests.k8s.support import crd_resource_schema

# The CRDs' Duration pattern: Prometheus durations such as 30s, 1h30m, 2d.
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": _STRINGS,
                },
            },
        },
    },
}
_RELABEL_CONFIG = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {"enum": [
            "replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap", "LabelMap",
            "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase", "uppercase", "Uppercase",
            "keepequal", "KeepEqual", "dropequal", "DropEqual",
        ]},
        "modulus": {"type": "integer", "minimum": 0},
        "regex": {"type": "string"},
        "replacement": {"type": "string"},
        "separator": {"type": "string"},
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}},
        "targetLabel": {"type": "string"},
    },
}


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return crd_resource_schema("monitoring.coreos.com/v1", kind, spec)


_ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "port": {"type": "string"},
        "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "path": {"type": "string", "pattern": "^/"},
        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
        "params": {"type": "object", "additionalProperties": _STRINGS},
        "interval": DURATION,
        "scrapeTimeout": DURATION,
        "honorLabels": {"type": "boolean"},
        "honorTimestamps": {"type": "boolean"},
        "trackTimestampsStaleness": {"type": "boolean"},
        "enableHttp2": {"type": "boolean"},
        "followRedirects": {"type": "boolean"},
        "filterRunning": {"type": "boolean"},
        "proxyUrl": {"type": "string"},
        "relabelings": {"type": "array", "items": _RELABEL_CONFIG},
        "metricRelabelings": {"type": "array", "items": _RELABEL_CONFIG},
        # Authentication blocks (secret references): accepted as objects, not used here.
        **{k: {"type": "object"} for k in ("basicAuth", "authorization", "oauth2", "tlsConfig", "bearerTokenSecret")},
    },
}

SERVICE_MONITOR = _resource("ServiceMonitor", {
    "type": "object",
    "additionalProperties": False,
    "required": ["selector"],
    "properties": {
        "selector": _LABEL_SELECTOR,
        "endpoints": {"type": "array", "items": _ENDPOINT},
        "namespaceSelector": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"any": {"type": "boolean"}, "matchNames": _STRINGS},
        },
        "jobLabel": {"type": "string"},
        "targetLabels": _STRINGS,
        "podTargetLabels": _STRINGS,
        "attachMetadata": {"type": "object", "additionalProperties": False, "properties": {"node": {"type": "boolean"}}},
        "scrapeClass": {"type": "string", "minLength": 1},
        "scrapeProtocols": {"type": "array", "items": {"enum": [
            "PrometheusProto", "OpenMetricsText0.0.1", "OpenMetricsText1.0.0", "PrometheusText0.0.4", "PrometheusText1.0.0",
        ]}},
        **{k: {"type": "integer", "minimum": 0} for k in (
            "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
            "keepDroppedTargets", "nativeHistogramBucketLimit",
        )},
        "bodySizeLimit": {"type": "string"},
    },
})

_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    # A rule is an alert or a recording rule, never both.
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "record": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
        "expr": {"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]},
        "for": DURATION,
        "keep_firing_for": {**DURATION, "minLength": 1},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}

PROMETHEUS_RULE = _resource("PrometheusRule", {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": DURATION,
                    "query_offset": DURATION,
                    "limit": {"type": "integer"},
                    "partial_response_strategy": {"type": "string", "pattern": "^([Aa][Bb][Oo][Rr][Tt]|[Ww][Aa][Rr][Nn])?$"},
                    "labels": _STRING_MAP,
                    "rules": {"type": "array", "items": _RULE},
                },
            },
        },
    },
})

SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR, "PrometheusRule": PROMETHEUS_RULE}
