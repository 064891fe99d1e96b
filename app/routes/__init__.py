"""One router per OpenAPI tag."""

from app.routes import examples, imports, meta, pools, prefixes, selection

ROUTERS = (
    meta.router,
    pools.router,
    examples.router,
    imports.router,
    selection.router,
    prefixes.router,
)
