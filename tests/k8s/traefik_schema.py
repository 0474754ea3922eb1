"""JSON Schemas for the Traefik v3 resources k8s/ uses (``traefik.io/v1alpha1``).

Hand-written from the field names and types of Traefik's CRDs
(``ingressroutes.traefik.io``, ``middlewares.traefik.io``), reduced to the parts
wxtiles uses and made strict (``additionalProperties: false``) so a misspelt or
v2-only field fails here instead of being dropped silently by the API server.
Fields Traefik v3 removed (``stripPrefix.forceSlash``, ``headers.sslRedirect``,
``ipWhiteList``) are not listed and so are rejected.
"""

from __future__ import annotations

from typing import Any

from tests.k8s.support import crd_resource_schema

_STRINGS = {"type": "array", "items": {"type": "string"}}
_INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
_NAME_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"}},
}
_IP_STRATEGY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"depth": {"type": "integer", "minimum": 0}, "excludedIPs": _STRINGS, "ipv6Subnet": {"type": "integer"}},
}


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return crd_resource_schema("traefik.io/v1alpha1", kind, spec)


_SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "kind": {"enum": ["Service", "TraefikService"]},
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string"},
        "port": _INT_OR_STRING,
        "scheme": {"type": "string"},
        "passHostHeader": {"type": "boolean"},
        "nativeLB": {"type": "boolean"},
        "nodePortLB": {"type": "boolean"},
        "serversTransport": {"type": "string"},
        "strategy": {"type": "string"},
        "weight": {"type": "integer", "minimum": 0},
        "responseForwarding": {"type": "object", "properties": {"flushInterval": {"type": "string"}}, "additionalProperties": False},
    },
}

INGRESS_ROUTE = _resource("IngressRoute", {
    "type": "object",
    "additionalProperties": False,
    "required": ["routes"],
    "properties": {
        "entryPoints": _STRINGS,
        "routes": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["match"],
                "properties": {
                    "kind": {"enum": ["Rule"]},
                    "match": {"type": "string", "minLength": 1},
                    "priority": {"type": "integer"},
                    "syntax": {"type": "string"},
                    "middlewares": {"type": "array", "items": _NAME_REF},
                    "services": {"type": "array", "items": _SERVICE},
                    "observability": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {k: {"type": "boolean"} for k in ("accessLogs", "metrics", "tracing")},
                    },
                },
            },
        },
        "tls": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "secretName": {"type": "string"},
                "certResolver": {"type": "string"},
                "options": _NAME_REF,
                "store": _NAME_REF,
                "domains": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": False, "properties": {"main": {"type": "string"}, "sans": _STRINGS}},
                },
            },
        },
    },
})

_HEADERS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{k: {"type": "boolean"} for k in (
            "accessControlAllowCredentials", "addVaryHeader", "browserXssFilter", "contentTypeNosniff",
            "forceSTSHeader", "frameDeny", "isDevelopment", "stsIncludeSubdomains", "stsPreload",
        )},
        **{k: {"type": "string"} for k in (
            "contentSecurityPolicy", "contentSecurityPolicyReportOnly", "customBrowserXSSValue",
            "customFrameOptionsValue", "permissionsPolicy", "publicKey", "referrerPolicy",
        )},
        **{k: _STRINGS for k in (
            "accessControlAllowHeaders", "accessControlAllowMethods", "accessControlAllowOriginList",
            "accessControlAllowOriginListRegex", "accessControlExposeHeaders", "allowedHosts", "hostsProxyHeaders",
        )},
        **{k: {"type": "object", "additionalProperties": {"type": "string"}} for k in (
            "customRequestHeaders", "customResponseHeaders", "sslProxyHeaders",
        )},
        "accessControlMaxAge": {"type": "integer"},
        "stsSeconds": {"type": "integer", "minimum": 0},
    },
}

MIDDLEWARE = _resource("Middleware", {
    "type": "object",
    # One middleware per resource: Traefik refuses a Middleware that defines two.
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "compress": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "excludedContentTypes": _STRINGS,
                "includedContentTypes": _STRINGS,
                "minResponseBodyBytes": {"type": "integer", "minimum": 0},
                "encodings": _STRINGS,
                "defaultEncoding": {"type": "string"},
            },
            # Traefik: "excludedContentTypes and includedContentTypes options are mutually exclusive".
            "not": {"required": ["excludedContentTypes", "includedContentTypes"]},
        },
        "rateLimit": {
            "type": "object",
            "additionalProperties": False,
            "required": ["average"],
            "properties": {
                "average": {"type": "integer", "minimum": 1},
                "burst": {"type": "integer", "minimum": 1},
                "period": _INT_OR_STRING,
                "sourceCriterion": {
                    "type": "object",
                    "additionalProperties": False,
                    "maxProperties": 1,
                    "properties": {
                        "ipStrategy": _IP_STRATEGY,
                        "requestHeaderName": {"type": "string"},
                        "requestHost": {"type": "boolean"},
                    },
                },
            },
        },
        "headers": _HEADERS,
        "stripPrefix": {
            "type": "object",
            "additionalProperties": False,
            "required": ["prefixes"],
            "properties": {"prefixes": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^/"}}},
        },
        "redirectRegex": {
            "type": "object",
            "additionalProperties": False,
            "required": ["regex", "replacement"],
            "properties": {"regex": {"type": "string"}, "replacement": {"type": "string"}, "permanent": {"type": "boolean"}},
        },
        "redirectScheme": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"scheme": {"type": "string"}, "port": {"type": "string"}, "permanent": {"type": "boolean"}},
        },
        "inFlightReq": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"amount": {"type": "integer", "minimum": 1}, "sourceCriterion": {"type": "object"}},
        },
    },
})

SCHEMAS = {"IngressRoute": INGRESS_ROUTE, "Middleware": MIDDLEWARE}
