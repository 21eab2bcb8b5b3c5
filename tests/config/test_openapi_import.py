"""OpenAPI import: routes, parameter specs and request schemas; merging into the manifest."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from interlock.config.loader import check_manifest, load_manifest
from interlock.config.manifest import DEFAULT_PARAM, SCOPE_PATTERN
from interlock.config.openapi import (
    MAX_OPERATIONS,
    OpenApiDocument,
    OpenApiError,
    apply_import,
    convert_openapi,
    merge_routes,
    our_scope,
    plan_import,
    read_openapi,
    routes_yaml,
    snake_case,
)
from interlock.config.yaml_source import MAX_BYTES
from interlock.errors import InvalidRequestError, ManifestError, NotFoundError
from interlock.validation.artifacts import route_artifacts
from interlock.validation.schema import compile_schema

ERP_URL = "https://erp.internal.example:9443"

# An ERP's orders API as OpenAPI 3.0: servers with a variable, global and
# per-operation OAuth scopes, a $ref'd path parameter, nullable, enums, formats,
# boolean exclusiveMinimum, readOnly, a header parameter, YAML integer status keys.
SPEC_30 = """\
openapi: 3.0.3
info: {title: ERP orders, version: 1.4.0}
servers:
  - url: "https://erp.example.com/api/{version}"
    variables: {version: {default: v2}}
security:
  - erpAuth: ["orders:read"]
paths:
  /orders:
    get:
      operationId: listOrders
      parameters:
        - {name: status, in: query, schema: {$ref: "#/components/schemas/Status"}}
        - {name: limit, in: query, required: true, schema: {type: integer, format: int32, minimum: 1, maximum: 100}}
        - {name: since, in: query, schema: {type: string, format: date-time}}
        - {name: X-Request-Id, in: header, schema: {type: string}}
      responses:
        200: {description: The orders}
    post:
      security: [{erpAuth: ["orders:write"]}]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/NewOrder"}
      responses:
        201: {description: Created}
  /orders/{orderId}:
    parameters:
      - $ref: "#/components/parameters/OrderId"
    get:
      responses:
        200: {description: The order}
    patch:
      security: [{erpAuth: ["orders:write"]}]
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                status: {$ref: "#/components/schemas/Status"}
                note: {type: string, maxLength: 500, nullable: true}
              additionalProperties: false
      responses:
        200: {description: Updated}
  /orders/{orderId}/lines/{lineNo}:
    get:
      parameters:
        - $ref: "#/components/parameters/OrderId"
        - {name: lineNo, in: path, required: true, schema: {type: integer, minimum: 0, exclusiveMinimum: true}}
      responses:
        200: {description: One line}
components:
  securitySchemes:
    erpAuth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://erp.example.com/oauth/token
          scopes: {"orders:read": Read orders, "orders:write": Change orders}
  parameters:
    OrderId:
      name: orderId
      in: path
      required: true
      schema: {type: string, pattern: "^ORD-[0-9]{6}$"}
  schemas:
    Status: {type: string, enum: [open, shipped, cancelled]}
    NewOrder:
      type: object
      required: [id, customer, lines]
      properties:
        id: {type: string, format: uuid, readOnly: true}
        customer: {$ref: "#/components/schemas/Customer"}
        lines:
          type: array
          minItems: 1
          items: {$ref: "#/components/schemas/Line"}
        coupon: {type: string, nullable: true, example: SUMMER10}
      additionalProperties: false
    Customer:
      type: object
      required: [email]
      properties:
        email: {type: string, format: email}
        name: {type: string, maxLength: 200}
    Line:
      type: object
      required: [sku, quantity]
      properties:
        sku: {type: string, pattern: "^[A-Z0-9-]{3,32}$"}
        quantity: {type: integer, minimum: 0, exclusiveMinimum: true, maximum: 1000}
        unitPrice: {type: number, minimum: 0}
"""

# A shop's catalogue API as OpenAPI 3.1: type arrays with "null", numeric
# exclusive bounds, a recursive schema, array and object query parameters,
# several body media types, no security (so scopes come from the prefix).
SPEC_31 = """\
openapi: 3.1.0
info: {title: Shop catalogue, version: "3"}
servers: [{url: "https://shop.example.com/api/v3"}]
paths:
  /products/{productId}:
    get:
      parameters:
        - {name: productId, in: path, required: true, schema: {type: string, format: uuid}}
        - {name: fields, in: query, schema: {type: array, items: {type: string, enum: [name, price]}}}
        - {name: filter, in: query, style: deepObject, schema: {type: object}}
      responses:
        "200": {description: The product}
    put:
      requestBody:
        content:
          application/json: {schema: {$ref: "#/components/schemas/Product"}}
          application/xml: {schema: {$ref: "#/components/schemas/Product"}}
          multipart/form-data: {schema: {type: object}}
      responses:
        "204": {description: Stored}
  /reviews:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [rating, text]
              properties:
                rating: {type: integer, minimum: 1, maximum: 5}
                text: {type: string, maxLength: 2000}
                replyTo: {type: [string, "null"], format: uuid}
                score: {type: number, exclusiveMinimum: 0, exclusiveMaximum: 1}
      responses:
        "201": {description: Created}
components:
  schemas:
    Product:
      type: object
      required: [sku, name, price]
      properties:
        sku: {type: string, readOnly: true}
        name: {type: string, minLength: 1, maxLength: 120}
        price: {type: number, exclusiveMinimum: 0}
        tags: {type: array, items: {type: string}, examples: [[sale]]}
        parent: {oneOf: [{$ref: "#/components/schemas/Product"}, {type: "null"}]}
"""

MANIFEST = """\
# Interlock manifest for the OpenAPI import tests.
version: 1

systems:
  erp:
    url: https://erp.internal.example:9443   # the ERP's own API endpoint
    location: DE
  shop:
    url: https://shop.example.com/api/v3
    location: DE
  warehouse: {url: "https://ingest.warehouse.example.nl", location: NL}

roles:
  order-agent:
    # orders.* come from the ERP's OAuth scopes, catalogue.* from --scope-prefix.
    scopes: [orders.read, orders.write, catalogue.read, catalogue.write]
  feed: {scopes: [sales.read]}

clients:
  order-sync: {auth: [oauth2], roles: [order-agent]}
  feed: {auth: [api_key], roles: [feed]}

integrations:
  order-sync:
    source: shop
    target: erp
    client: order-sync
    purpose: Send shop orders to the ERP for fulfilment
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    routes:
      # Hand-tuned: the rate limit and the allow-list survive a re-import.
      - method: GET
        path: /orders/{id}
        upstream: erp
        scope: orders.read
        rate_limit: {per_client: 100/min}
        response_fields: [id, status]

  sales-feed:
    source: erp
    target: warehouse
    client: feed
    purpose: Sales reporting on pseudonymised order lines
    legal_basis: legitimate_interests
    retention: 13w
    routes:
      - {method: GET, path: /sales/lines, upstream: erp, scope: sales.read}  # nightly
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    """``text`` as ``tmp_path/name``."""
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def convert(tmp_path: Path) -> Any:
    """Convert an OpenAPI text; returns (routes by 'METHOD path', warnings)."""

    def run(
        text: str, *, url: str = ERP_URL, scope_prefix: str | None = None, name: str = "spec.yaml"
    ) -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
        doc = read_openapi(write(tmp_path, name, text))
        result = convert_openapi(
            doc,
            system="erp",
            system_url=url,
            scope_prefix=scope_prefix,
            schema_check=compile_schema,
        )
        return {f"{r['method']} {r['path']}": r for r in result.routes}, result.warnings

    return run


# -- routes and parameters -------------------------------------------------------


def test_openapi_30_operations_become_routes_with_snake_case_templates(convert: Any) -> None:
    """Every operation is a route; {orderId} is {order_id}; the server path prefixes upstream_path."""
    routes, _ = convert(SPEC_30)
    assert sorted(routes) == [
        "GET /orders",
        "GET /orders/{order_id}",
        "GET /orders/{order_id}/lines/{line_no}",
        "PATCH /orders/{order_id}",
        "POST /orders",
    ]
    line = routes["GET /orders/{order_id}/lines/{line_no}"]
    assert line["upstream"] == "erp"
    assert line["upstream_path"] == "/api/v2/orders/{order_id}/lines/{line_no}"


def test_server_path_already_in_the_system_url_is_not_repeated(convert: Any) -> None:
    """servers[0] ends in /api/v3 and so does the system's url: upstream_path is the bare path."""
    routes, _ = convert(SPEC_31, url="https://shop.example.com/api/v3/")
    assert routes["GET /products/{product_id}"]["upstream_path"] == "/products/{product_id}"


def test_scope_comes_from_the_one_oauth_scope_converted_to_our_pattern(convert: Any) -> None:
    """orders:read (document default) and orders:write (per operation) read as orders.read/.write."""
    routes, _ = convert(SPEC_30)
    assert routes["GET /orders"]["scope"] == "orders.read"
    assert routes["GET /orders/{order_id}"]["scope"] == "orders.read"
    assert routes["POST /orders"]["scope"] == "orders.write"
    assert routes["PATCH /orders/{order_id}"]["scope"] == "orders.write"


def test_without_a_usable_scope_read_and_write_come_from_the_prefix(convert: Any) -> None:
    """No security: GET is PREFIX.read, PUT and POST PREFIX.write (system name by default)."""
    routes, _ = convert(SPEC_31)
    assert routes["GET /products/{product_id}"]["scope"] == "erp.read"
    assert routes["POST /reviews"]["scope"] == "erp.write"
    routes, _ = convert(SPEC_31, scope_prefix="catalogue")
    assert routes["PUT /products/{product_id}"]["scope"] == "catalogue.write"


def test_several_or_foreign_scopes_fall_back_with_a_warning(convert: Any) -> None:
    """Two scopes, or a URL scope, are not guessed at: the fallback applies and is reported."""
    spec = SPEC_30.replace('["orders:write"]', '["orders:write", "orders:admin"]', 1)
    spec = spec.replace('["orders:read"]', '["https://erp.example.com/orders"]', 1)
    routes, warnings = convert(spec)
    assert routes["POST /orders"]["scope"] == "erp.write"
    assert routes["GET /orders"]["scope"] == "erp.read"
    assert any("orders:admin, orders:write" in w and "erp.write" in w for w in warnings)


def test_path_parameters_are_typed_from_their_schemas(convert: Any) -> None:
    """A $ref'd parameter keeps its pattern; 3.0 exclusiveMinimum on an integer is minimum + 1."""
    routes, _ = convert(SPEC_30)
    line = routes["GET /orders/{order_id}/lines/{line_no}"]
    assert line["params"] == {
        "order_id": {"type": "string", "pattern": "^ORD-[0-9]{6}$"},
        "line_no": {"type": "integer", "minimum": 1},
    }


def test_unconstrained_string_path_parameter_gets_the_unreserved_pattern(convert: Any) -> None:
    """A bare string (plus maxLength) path parameter is limited to RFC 3986 unreserved characters."""
    spec = SPEC_30.replace('pattern: "^ORD-[0-9]{6}$"', "maxLength: 40", 1)
    routes, _ = convert(spec)
    spec_ = routes["GET /orders/{order_id}"]["params"]["order_id"]
    assert spec_ == {"type": "string", "pattern": "[A-Za-z0-9._~-]{1,40}", "max_length": 40}


def test_query_parameters_keep_their_names_types_formats_and_required(convert: Any) -> None:
    """enum via $ref, int32 bounds narrowed by the schema, date-time, required; headers skipped."""
    routes, warnings = convert(SPEC_30)
    assert routes["GET /orders"]["query"] == {
        "status": {"type": "string", "enum": ["open", "shipped", "cancelled"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "required": True},
        "since": {"type": "string", "format": "date-time"},
    }
    assert any("header parameter 'X-Request-Id' not imported" in w for w in warnings)


def test_header_parameters_become_forward_headers_unless_never_forwarded(convert: Any) -> None:
    """X-Tenant is forwarded (warned: unchecked); X-Request-Id and X_Tenant are refused, said why."""
    header = "        - {name: X-Request-Id, in: header, schema: {type: string}}\n"
    assert header in SPEC_30
    more = "".join(
        header.replace("X-Request-Id", name) for name in ("X-Request-Id", "X-Tenant", "X_Tenant")
    )
    routes, warnings = convert(SPEC_30.replace(header, more, 1))
    assert routes["GET /orders"]["forward_headers"] == ["X-Tenant"]
    assert any("'X-Tenant' is forwarded unchecked" in w for w in warnings)
    assert any(
        "'X-Request-Id' not imported: X-Request-Id is set by Interlock" in w for w in warnings
    )
    assert any("'X_Tenant' not imported: 'X_Tenant' contains '_'" in w for w in warnings)


def test_array_query_is_one_item_and_object_query_is_not_imported(convert: Any) -> None:
    """An array becomes its item's spec (warned); a deepObject is left out, so it is refused."""
    routes, warnings = convert(SPEC_31)
    assert routes["GET /products/{product_id}"]["query"] == {
        "fields": {"type": "string", "enum": ["name", "price"]}
    }
    assert any("'fields' is an array" in w for w in warnings)
    assert any("object parameter 'filter' not imported" in w for w in warnings)


def test_unusable_pattern_becomes_the_strict_default_with_a_warning(convert: Any) -> None:
    """A Unicode property escape is not Python regex: the parameter falls back to DEFAULT_PARAM."""
    spec = SPEC_30.replace('"^ORD-[0-9]{6}$"', r'"^\\p{L}+$"', 1)
    routes, warnings = convert(spec)
    assert routes["GET /orders/{order_id}"]["params"]["order_id"]["pattern"] == DEFAULT_PARAM
    assert any("is not usable here" in w for w in warnings)


def test_a_path_no_template_can_express_is_skipped_with_a_located_warning(convert: Any) -> None:
    """/files/{name}.{ext} is not a whole-segment template: skipped, reported at its line."""
    spec = SPEC_30.replace(
        "components:\n",
        "  /files/{name}.{ext}:\n    get:\n      responses: {200: {description: A file}}\n"
        "components:\n",
        1,
    )
    routes, warnings = convert(spec)
    assert "GET /files/{name}.{ext}" not in routes
    line = spec.splitlines().index("  /files/{name}.{ext}:") + 1
    assert any(f"spec.yaml:{line}:3: warning: paths./files/" in w for w in warnings), warnings


def test_every_generated_route_passes_the_manifest_route_model(convert: Any) -> None:
    """The routes are what the loader accepts (a smoke test over both specs)."""
    for spec in (SPEC_30, SPEC_31):
        routes, _ = convert(spec)
        assert routes


# -- request schemas ------------------------------------------------------------


def test_openapi_30_body_schema_is_self_contained_2020_12(convert: Any) -> None:
    """$refs become $defs; nullable, example, boolean exclusiveMinimum and readOnly are translated."""
    routes, _ = convert(SPEC_30)
    schema = routes["POST /orders"]["request_schema"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$ref"] == "#/$defs/NewOrder"
    assert sorted(schema["$defs"]) == ["Customer", "Line", "NewOrder"]
    order = schema["$defs"]["NewOrder"]
    assert order["required"] == ["customer", "lines"]  # id is readOnly
    assert order["properties"]["coupon"] == {"type": ["string", "null"]}
    quantity = schema["$defs"]["Line"]["properties"]["quantity"]
    assert quantity == {"type": "integer", "exclusiveMinimum": 0, "maximum": 1000}
    assert "components" not in json.dumps(schema)


def test_openapi_30_schema_accepts_a_good_body_and_rejects_bad_ones(convert: Any) -> None:
    """Compiled with jsonschema-rs, the schema decides like the OpenAPI document."""
    routes, _ = convert(SPEC_30)
    validator = jsonschema_rs.validator_for(routes["POST /orders"]["request_schema"])
    good = {
        "customer": {"email": "ana@example.com"},
        "lines": [{"sku": "ABC-123", "quantity": 2, "unitPrice": 9.5}],
        "coupon": None,
    }
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "lines": [{"sku": "ABC-123", "quantity": 0}]})
    assert not validator.is_valid({**good, "lines": [{"sku": "ABC-123", "quantity": "2"}]})
    assert not validator.is_valid({**good, "lines": []})
    assert not validator.is_valid({**good, "coupon": 10})
    assert not validator.is_valid({**good, "admin": True})
    assert not validator.is_valid({"customer": {"email": "ana@example.com"}})


def test_nullable_ref_in_an_inline_body_and_enums(convert: Any) -> None:
    """PATCH: a $ref'd enum and a nullable string with maxLength; unknown keys refused."""
    routes, _ = convert(SPEC_30)
    validator = jsonschema_rs.validator_for(routes["PATCH /orders/{order_id}"]["request_schema"])
    assert validator.is_valid({"status": "shipped", "note": None})
    assert not validator.is_valid({"status": "lost"})
    assert not validator.is_valid({"note": "x" * 501})
    assert not validator.is_valid({"status": "open", "extra": 1})


def test_openapi_31_schema_keeps_type_unions_and_numeric_exclusive_bounds(convert: Any) -> None:
    """3.1 is 2020-12 already: null in type arrays, numeric exclusive bounds, examples dropped."""
    routes, _ = convert(SPEC_31)
    schema = routes["POST /reviews"]["request_schema"]
    validator = jsonschema_rs.validator_for(schema)
    good = {"rating": 5, "text": "Great", "replyTo": None, "score": 0.5}
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "rating": 6})
    assert not validator.is_valid({**good, "score": 0})
    assert not validator.is_valid({**good, "replyTo": 7})
    assert not validator.is_valid({"rating": 3})


def test_recursive_schema_and_other_body_types(convert: Any) -> None:
    """A self-referencing schema works through $defs; JSON and XML are accepted, multipart is not."""
    routes, warnings = convert(SPEC_31)
    route = routes["PUT /products/{product_id}"]
    assert route["content_types"] == ["application/json", "application/xml"]
    assert route["xml"] == {}
    assert any("multipart/form-data bodies are not accepted" in w for w in warnings)
    validator = jsonschema_rs.validator_for(route["request_schema"])
    child = {"name": "Mug", "price": 4.5, "tags": ["sale"], "parent": {"name": "Cups", "price": 1}}
    assert validator.is_valid(child)
    assert not validator.is_valid({**child, "parent": {"name": "Cups", "price": 0}})
    assert "examples" not in json.dumps(route["request_schema"])


def test_only_multipart_body_skips_the_operation(convert: Any) -> None:
    """With no body type Interlock can validate the route is not generated at all (deny)."""
    spec = SPEC_31.replace(
        '          application/json: {schema: {$ref: "#/components/schemas/Product"}}\n'
        '          application/xml: {schema: {$ref: "#/components/schemas/Product"}}\n',
        "",
    )
    routes, warnings = convert(spec)
    assert "PUT /products/{product_id}" not in routes
    assert any("no request body type" in w for w in warnings)


def test_body_schema_the_gateway_cannot_compile_skips_the_operation(convert: Any) -> None:
    """A schema the gateway could not compile never reaches the manifest."""
    spec = SPEC_30.replace("maxLength: 500, nullable: true", "maxLength: many", 1)
    routes, warnings = convert(spec)
    assert "PATCH /orders/{order_id}" not in routes
    assert any("request schema does not compile" in w for w in warnings)


def test_dynamic_references_are_refused(convert: Any) -> None:
    """$dynamicRef could resolve outside the document: refused, located."""
    spec = SPEC_31.replace("text: {type: string, maxLength: 2000}", 'text: {$dynamicRef: "#node"}')
    with pytest.raises(
        OpenApiError, match=r"properties\.text\.\$dynamicRef: \$dynamicRef is not supported"
    ):
        convert(spec)


# -- reading and refusals -------------------------------------------------------


def test_json_document_reads_like_yaml(convert: Any) -> None:
    """The same 3.1 document as JSON gives the same routes."""
    as_json = json.dumps(yaml.safe_load(SPEC_31), indent=2)
    from_yaml, _ = convert(SPEC_31)
    from_json, _ = convert(as_json, name="spec.json")
    assert from_json == from_yaml


def test_swagger_2_is_refused_with_a_located_error(tmp_path: Path) -> None:
    """Swagger 2.0 is named as such, with file and line."""
    path = write(
        tmp_path, "spec.yaml", 'swagger: "2.0"\ninfo: {title: x, version: "1"}\npaths: {}\n'
    )
    with pytest.raises(
        OpenApiError, match=r"spec\.yaml:1:\d+: swagger: Swagger 2\.0 \(OpenAPI 2\)"
    ):
        read_openapi(path)


@pytest.mark.parametrize("version", ["4.0.0", "3.2", "3", '"3.0"', "3.1.0-rc0"])
def test_unknown_versions_are_refused(tmp_path: Path, version: str) -> None:
    """Only 3.0.x and 3.1.x are read."""
    path = write(tmp_path, "spec.yaml", f"openapi: {version}\npaths: {{}}\n")
    with pytest.raises(
        OpenApiError, match=r"spec\.yaml:1:\d+: openapi: unsupported OpenAPI version"
    ):
        read_openapi(path)


@pytest.mark.parametrize(
    "ref", ["https://schemas.example.com/order.yaml#/Order", "common.yaml#/components/schemas/X"]
)
def test_remote_ref_is_refused_at_its_line(tmp_path: Path, convert: Any, ref: str) -> None:
    """A $ref out of the document would be fetched or depended on: refused, located."""
    spec = SPEC_30.replace('{$ref: "#/components/schemas/Customer"}', f'{{$ref: "{ref}"}}', 1)
    line = next(i for i, text in enumerate(spec.splitlines(), 1) if ref in text)
    with pytest.raises(
        OpenApiError, match=rf"spec\.yaml:{line}:\d+: .*customer\.\$ref: remote \$ref"
    ):
        convert(spec)


def test_dangling_local_ref_is_refused(convert: Any) -> None:
    """A reference to a component that does not exist names the reference."""
    spec = SPEC_30.replace('"#/components/schemas/Line"', '"#/components/schemas/Lines"', 1)
    with pytest.raises(OpenApiError, match="points at nothing"):
        convert(spec)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    """A syntax error is reported as FILE:LINE:COL: invalid YAML."""
    path = write(tmp_path, "spec.yaml", "openapi: 3.0.3\npaths:\n  /x: {get: [\n")
    with pytest.raises(OpenApiError, match=r"spec\.yaml:4:1: invalid YAML"):
        read_openapi(path)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    """A JSON syntax error is located by the JSON parser."""
    path = write(tmp_path, "spec.json", '{\n  "openapi": "3.1.0",\n  "paths": {,}\n}\n')
    with pytest.raises(OpenApiError, match=r"spec\.json:3:\d+: invalid JSON"):
        read_openapi(path)


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    """Two values for one key: a reviewer would read one, a parser use the other."""
    path = write(tmp_path, "spec.json", '{"openapi": "3.1.0", "paths": {}, "paths": {"/x": {}}}')
    with pytest.raises(OpenApiError, match="duplicate key 'paths'"):
        read_openapi(path)


def test_aliases_are_refused_where_the_import_reads(tmp_path: Path) -> None:
    """YAML aliases (billion laughs) are refused by the safe reader."""
    text = SPEC_30.replace(
        "    Status: {type: string, enum: [open, shipped, cancelled]}",
        "    Status: &s {type: string, enum: [open, shipped, cancelled]}\n    Again: *s",
    )
    with pytest.raises(OpenApiError, match="aliases"):
        read_openapi(write(tmp_path, "spec.yaml", text))


def test_oversized_and_deep_documents_are_refused(tmp_path: Path) -> None:
    """Size and depth caps hold for YAML and JSON alike."""
    big = write(tmp_path, "big.yaml", "openapi: 3.1.0\n" + "#" * MAX_BYTES + "\n")
    with pytest.raises(OpenApiError, match="larger than"):
        read_openapi(big)
    deep = write(
        tmp_path, "deep.json", '{"openapi": "3.1.0", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    )
    with pytest.raises(OpenApiError, match="nested"):
        read_openapi(deep)


def test_too_many_operations_are_refused(convert: Any) -> None:
    """The operation count is capped, so a hostile document cannot flood the manifest."""
    paths = "".join(f"  /r{i}:\n    get: {{}}\n" for i in range(MAX_OPERATIONS + 1))
    with pytest.raises(OpenApiError, match=f"more than {MAX_OPERATIONS} operations"):
        convert(f"openapi: 3.0.3\npaths:\n{paths}")


_WORDS = st.sampled_from(
    [
        *("get", "post", "parameters", "requestBody", "content", "application/json", "schema"),
        *("$ref", "type", "properties", "items", "nullable", "enum", "name", "in", "required"),
        *("minimum", "exclusiveMinimum", "pattern", "format", "security", "oneOf", "readOnly"),
        *("maxLength", "path", "query", "string", "integer", "array", "object", "null", "A"),
        *("#/components/schemas/A", "#/components/schemas/B/properties/x", "#/paths", "x"),
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _WORDS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_WORDS, inner, max_size=6),
    max_leaves=30,
)
_MEDIA = st.sampled_from(["application/json", "application/xml", "text/csv", "*/*", "a/b+json"])
_OPERATION = st.fixed_dictionaries(
    {},
    optional={
        "parameters": st.lists(st.dictionaries(_WORDS, _JSON, max_size=6), max_size=3),
        "requestBody": st.fixed_dictionaries(
            {"content": st.dictionaries(_MEDIA, st.fixed_dictionaries({"schema": _JSON}))}
        ),
        "security": st.lists(st.dictionaries(st.just("auth"), st.lists(_WORDS)), max_size=2),
    },
)
_PATHS = st.dictionaries(
    st.sampled_from(["/x/{id}", "/y", "z", "/a/{b}.{c}", "/x/{ID}"]),
    st.dictionaries(st.sampled_from(["get", "post", "trace", "parameters"]), _OPERATION),
    max_size=3,
)
_COMPONENTS = st.fixed_dictionaries(
    {"schemas": st.dictionaries(st.sampled_from(["A", "B"]), _JSON)},
    optional={"securitySchemes": st.just({"auth": {"type": "oauth2"}}) | _JSON},
)


@given(paths=_PATHS, components=_COMPONENTS, version=st.sampled_from(["3.0", "3.1"]))
def test_hostile_documents_fail_only_with_located_errors(
    paths: dict[str, Any], components: Any, version: Any
) -> None:
    """Any structure converts or raises OpenApiError: never an unexpected exception."""
    data = {"openapi": f"{version}.0", "paths": paths, "components": components}
    doc = OpenApiDocument("spec.json", data, version)
    try:
        convert_openapi(doc, system="erp", system_url=ERP_URL)
    except OpenApiError as exc:
        message = exc.message
    else:
        message = "spec.json:1:1: converted"
    assert message.startswith("spec.json:1:1: ")


@given(st.text(min_size=1, max_size=40))
def test_snake_case_always_gives_a_valid_parameter_name(name: str) -> None:
    """Whatever the OpenAPI name, ours fits ^[a-z_][a-z0-9_]*$."""
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", snake_case(name))


def test_snake_case_examples() -> None:
    """camelCase, acronyms and dashes."""
    assert snake_case("orderId") == "order_id"
    assert snake_case("OrderID") == "order_id"
    assert snake_case("HTTPStatusCode") == "http_status_code"
    assert snake_case("line-no") == "line_no"
    assert snake_case("2fa") == "_2fa"


@given(st.text(max_size=40))
def test_our_scope_is_valid_or_none(scope: str) -> None:
    """A converted scope always fits our pattern; anything else is None."""
    converted = our_scope(scope)
    assert converted is None or re.fullmatch(SCOPE_PATTERN, converted)


# -- the manifest -----------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(manifest, 3.0 spec, 3.1 spec) in ``tmp_path``."""
    return (
        write(tmp_path, "interlock.yaml", MANIFEST),
        write(tmp_path, "erp.yaml", SPEC_30),
        write(tmp_path, "shop.yaml", SPEC_31),
    )


def test_import_merges_routes_and_keeps_comments_and_other_integrations(
    files: tuple[Path, Path, Path],
) -> None:
    """Comments, the other integration and hand-tuned fields survive; the result loads."""
    manifest, erp, _ = files
    plan = plan_import(erp, manifest, system="erp", integration="order-sync")
    assert (plan.added, plan.replaced, plan.unchanged) == (4, 1, 0)
    assert apply_import(plan, deep=route_artifacts) is True
    text = manifest.read_text()
    for line in MANIFEST.splitlines():
        if "#" in line or "sales" in line:
            assert line in text
    assert text.startswith(MANIFEST.split("  order-sync:\n    source", maxsplit=1)[0])
    assert text.endswith(MANIFEST.split("\n\n  sales-feed:")[1])
    loaded = load_manifest(manifest)
    routes = {f"{r.method} {r.path}": r for r in loaded.integrations["order-sync"].routes}
    replaced = routes["GET /orders/{order_id}"]
    assert replaced.rate_limit is not None
    assert replaced.response_fields == ("id", "status")
    assert replaced.upstream_path == "/api/v2/orders/{order_id}"
    assert replaced.params["order_id"].pattern == "^ORD-[0-9]{6}$"
    assert routes["POST /orders"].request_schema is not None
    assert [r.path for r in loaded.integrations["sales-feed"].routes] == ["/sales/lines"]


def test_reimport_is_idempotent(files: tuple[Path, Path, Path]) -> None:
    """A second import of the same documents changes nothing and does not rewrite the file."""
    manifest, erp, shop = files
    apply_import(plan_import(erp, manifest, system="erp", integration="order-sync"))
    apply_import(plan_import(shop, manifest, system="shop", scope_prefix="catalogue"))
    first = manifest.read_text()
    again = plan_import(erp, manifest, system="erp", integration="order-sync")
    assert (again.added, again.replaced, again.unchanged) == (0, 0, 5)
    assert again.after == first
    assert apply_import(again) is False
    again = plan_import(shop, manifest, system="shop", scope_prefix="catalogue")
    assert (again.added, again.replaced, again.unchanged) == (0, 0, 3)
    assert again.after == first


def test_integration_defaults_to_the_one_connecting_the_system(
    files: tuple[Path, Path, Path],
) -> None:
    """No route uses the shop yet, and only order-sync has it as source or target."""
    manifest, _, shop = files
    plan = plan_import(shop, manifest, system="shop", scope_prefix="catalogue")
    assert plan.integration == "order-sync"
    assert plan.added == 3
    apply_import(plan)
    assert check_manifest(manifest).ok


def test_ambiguous_or_unknown_integration_is_refused(files: tuple[Path, Path, Path]) -> None:
    """The ERP is used by two integrations; a named integration must exist and reach the system."""
    manifest, erp, _ = files
    with pytest.raises(
        InvalidRequestError,
        match=r"interlock\.yaml:\d+:\d+: integrations: .*order-sync, sales-feed",
    ):
        plan_import(erp, manifest, system="erp")
    with pytest.raises(NotFoundError, match="unknown integration 'orders'"):
        plan_import(erp, manifest, system="erp", integration="orders")
    with pytest.raises(InvalidRequestError, match="connects erp and warehouse, not shop"):
        plan_import(erp, manifest, system="shop", integration="sales-feed")


def test_unknown_system_is_refused_at_the_systems_section(files: tuple[Path, Path, Path]) -> None:
    """The system must exist in the manifest; the error lists the known ones."""
    manifest, erp, _ = files
    with pytest.raises(
        NotFoundError,
        match=r"interlock\.yaml:4:1: systems: unknown system 'crm' \(known: erp, shop, warehouse\)",
    ):
        plan_import(erp, manifest, system="crm")


def test_result_failing_the_manifest_checks_leaves_the_file_untouched(
    files: tuple[Path, Path, Path],
) -> None:
    """shop.read is granted to no role: every located error, nothing written, no temp file left."""
    manifest, _, shop = files
    before = manifest.read_bytes()
    plan = plan_import(shop, manifest, system="shop")
    with pytest.raises(ManifestError, match=r"unknown scope 'shop\.read'") as caught:
        apply_import(plan)
    assert len(caught.value.diagnostics) == 3
    assert all(str(d).startswith(f"{manifest}:") for d in caught.value.diagnostics)
    assert manifest.read_bytes() == before
    assert sorted(p.name for p in manifest.parent.iterdir()) == [
        "erp.yaml",
        "interlock.yaml",
        "shop.yaml",
    ]


def test_dry_run_checks_but_writes_nothing(files: tuple[Path, Path, Path]) -> None:
    """A dry run validates the result and leaves the manifest as it was."""
    manifest, erp, _ = files
    plan = plan_import(erp, manifest, system="erp", integration="order-sync")
    assert apply_import(plan, dry_run=True, deep=route_artifacts) is False
    assert manifest.read_text() == MANIFEST
    assert sorted(p.name for p in manifest.parent.iterdir()) == [
        "erp.yaml",
        "interlock.yaml",
        "shop.yaml",
    ]
    listed = yaml.safe_load(routes_yaml(plan.routes))
    assert [r["path"] for r in listed] == [r["path"] for r in plan.routes]


def test_write_keeps_the_file_mode(files: tuple[Path, Path, Path]) -> None:
    """os.replace swaps in a new file; it gets the manifest's mode, not mkstemp's 0600."""
    manifest, erp, _ = files
    manifest.chmod(0o640)
    apply_import(plan_import(erp, manifest, system="erp", integration="order-sync"))
    assert manifest.stat().st_mode & 0o777 == 0o640


def test_invalid_manifest_is_refused_before_any_import(files: tuple[Path, Path, Path]) -> None:
    """An already broken manifest is reported with its own located errors."""
    manifest, erp, _ = files
    manifest.write_text(MANIFEST.replace("location: DE\n  shop", "location: XX1\n  shop", 1))
    with pytest.raises(ManifestError, match=r"interlock\.yaml:7:"):
        plan_import(erp, manifest, system="erp", integration="order-sync")


def test_routes_go_into_a_flow_style_routes_list_as_block_entries(tmp_path: Path) -> None:
    """An empty flow list (routes: []) becomes a block list; the file still loads."""
    text = MANIFEST.replace(
        "      - {method: GET, path: /sales/lines, upstream: erp, scope: sales.read}  # nightly\n",
        "",
    ).replace("    retention: 13w\n    routes:\n", "    retention: 13w\n    routes: []\n")
    merged, added, replaced, unchanged = merge_routes(
        text,
        "sales-feed",
        ({"method": "GET", "path": "/x", "upstream": "erp", "scope": "sales.read"},),
    )
    assert (added, replaced, unchanged) == (1, 0, 0)
    assert "    routes:\n      - method: GET\n        path: /x\n" in merged
