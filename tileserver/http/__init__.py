"""The HTTP layer: routes, middleware, OpenAPI and OGC documents over ``tileserver.service``."""
