"""Routes and request schemas from an OpenAPI 3.0/3.1 document, merged into the manifest.

The document is untrusted input: it is read with our safe YAML reader (JSON
with :mod:`json`), capped in size and depth, and only references inside it are
followed (a remote ``$ref`` could make the import fetch, or depend on, anything).
The mapping, operation by operation:

* ``path``: the OpenAPI path with template names in snake_case, our rule for
  parameter names (``{orderId}`` -> ``{order_id}``). A path no template can
  express (``/files/{name}.{ext}``, a trailing ``/``) is skipped with a warning.
* ``upstream_path``: the same template, prefixed by the path of
  ``servers[0].url`` (variables at their defaults) unless the system's ``url``
  already ends with it, because the gateway calls ``system.url + upstream_path``.
  Values are substituted by position, so renaming never changes the URL called.
* ``scope``: the operation's (else the document's) OAuth 2.0 / OpenID Connect
  scope when exactly one is named and it reads as ours (``orders:read`` ->
  ``orders.read``); otherwise ``PREFIX.read`` for GET, HEAD and OPTIONS and
  ``PREFIX.write`` for the rest (PREFIX: ``scope_prefix``, default the system).
* ``params`` / ``query``: typed from the parameters' schemas. Patterns are
  matched against the whole value (stricter than OpenAPI's search); a string
  path parameter with neither pattern, format nor enum gets the RFC 3986
  unreserved pattern with its length bounds. What a spec cannot say (objects,
  unknown formats, foreign regex syntax) becomes the closest *stricter* spec,
  with a warning. Header and cookie parameters are not imported.
* ``request_schema``: the JSON request body's schema as a self-contained JSON
  Schema 2020-12 document (``#/components/schemas`` references become
  ``$defs``); OpenAPI 3.0's ``nullable``, boolean ``exclusiveMinimum`` and
  ignored ``$ref`` siblings are translated; examples and documentation are
  dropped; ``readOnly`` properties are not required in a request. A schema
  the gateway's compiler (``schema_check``) refuses skips its operation.
* ``content_types``: JSON, XML and CSV media types of the body when they are
  not only ``application/json`` (XML and CSV get their safe-parsing policies);
  bodies Interlock cannot validate (forms, multipart, octets) are not accepted.

Merging replaces, in a route with the same method and path template, only the
fields above, so hand-added rate limits, response allow-lists and rules
survive a re-import.
"""

from interlock.config.openapi.convert import (
    MAX_OPERATIONS,
    Conversion,
    SchemaCheck,
    convert_openapi,
    our_scope,
    snake_case,
)
from interlock.config.openapi.document import OpenApiDocument, OpenApiError, read_openapi
from interlock.config.openapi.merge import (
    ImportPlan,
    apply_import,
    merge_routes,
    plan_import,
    routes_yaml,
)

__all__ = [
    "MAX_OPERATIONS",
    "Conversion",
    "ImportPlan",
    "OpenApiDocument",
    "OpenApiError",
    "SchemaCheck",
    "apply_import",
    "convert_openapi",
    "merge_routes",
    "our_scope",
    "plan_import",
    "read_openapi",
    "routes_yaml",
    "snake_case",
]
