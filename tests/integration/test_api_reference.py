"""The API reference: the OpenAPI document says enough to use every operation, and
`/api/v1/docs` draws it with the vendored Swagger UI under the strict policy.

The document is walked whole, so an operation added tomorrow is held to the same
rules: an example request (when it takes a body) and an example answer, every
response described (when it happens, not "OK"), no docstring markup anywhere,
every amount in minor units and every currency ISO 4217, and examples that
validate against their schemas (as JSON Schema, and through the view's own
marshmallow schema for request bodies). The browser half is
tests/e2e/test_api_reference_browser.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from http import HTTPStatus
from pathlib import Path

import jsonschema_rs
import pytest

from api import problems
from api import schemas as api_schemas
from tests.integration.test_authorisation_matrix import _document_without_a_database

METHODS = ("get", "post", "put", "patch", "delete")
VENDOR = Path(__file__).resolve().parents[2] / "web" / "static" / "vendor" / "swagger-ui"
# Sphinx/reStructuredText that means nothing in CommonMark: field lists (`:raise 404:`,
# `:param x:`), roles (`:class:`Foo``) and double-backtick literals (not a ``` fence).
RST = re.compile(r":(raise|raises|param|parameter|arg|type|returns?|rtype|ivar|cvar|var)\b"
                 r"|:[a-z]+:`|(?<!`)``[^`\s][^`]*``(?!`)")
# A property named like an amount of money (`total` in PaginationMetadata is a count).
AMOUNT = re.compile(r"(^|_)(price|total|amount|fee|gross|accrued|frozen|paid|refunded|subtotal|tax|shipping|"
                    r"free_over|earnings?)$")
NOT_AMOUNTS = {("PaginationMetadata", "total"),
               # true or false: whether prices include tax
               ("TaxTableIn", "prices_include_tax"), ("TaxTableOut", "prices_include_tax")}


@pytest.fixture(scope="module")
def doc():
    return _document_without_a_database()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", op


def strings_under(node, keys=("description", "summary"), where="$"):
    """Every (where, text) under one of `keys`, anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                yield f"{where}.{key}", value
            yield from strings_under(value, keys, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings_under(value, keys, f"{where}[{i}]")


def media_examples(media: dict) -> list:
    if "example" in media:
        return [media["example"]]
    return [example["value"] for example in media.get("examples", {}).values()]


# --- OpenAPI 3.0 schemas as JSON Schema -------------------------------------------

def json_schema(node, *, names: bool = False):
    """OpenAPI 3.0's `nullable` as JSON Schema (draft 4) says it; the rest is alike.
    `names`: `node` maps names to schemas (`properties`, `components.schemas`), so a
    key called `example` there is a field's name, not the keyword."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: json_schema(value) for key, value in node.items()}
    out = {key: json_schema(value, names=key in ("properties", "definitions"))
           for key, value in node.items() if key not in ("nullable", "example")}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def validator(doc, schema):
    root = {"allOf": [json_schema(schema)],
            "components": {"schemas": json_schema(doc["components"]["schemas"], names=True)}}
    return jsonschema_rs.Draft4Validator(root, validate_formats=True)


def examples_with_schemas(doc):
    """(where, schema, example) for every example of a body in the document."""
    for name, op in operations(doc):
        for media_type, media in op.get("requestBody", {}).get("content", {}).items():
            for example in media_examples(media):
                yield f"{name} request {media_type}", media["schema"], example
        for status, response in op["responses"].items():
            for media_type, media in response.get("content", {}).items():
                for example in media_examples(media):
                    yield f"{name} {status} {media_type}", media["schema"], example


# --- the document -------------------------------------------------------------------

def test_every_operation_has_an_example_request_and_a_successful_answer(doc):
    missing = []
    for name, op in operations(doc):
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and not media_examples(body):
            missing.append(f"{name}: request body")
        successes = {status: r for status, r in op["responses"].items() if status.startswith("2")}
        if not successes:
            missing.append(f"{name}: no success response")
        for status, response in successes.items():
            for media_type, media in response.get("content", {}).items():
                if not media_examples(media):
                    missing.append(f"{name}: {status} {media_type}")
    assert not missing


def test_every_response_of_every_operation_says_when_it_happens(doc):
    bare = {phrase.phrase.lower() for phrase in HTTPStatus} | {"default response", ""}
    vague = [f"{name} {status}: {response.get('description')!r}" for name, op in operations(doc)
             for status, response in op["responses"].items()
             if (response.get("description") or "").strip().rstrip(".").lower() in bare]
    assert not vague


def test_no_description_carries_docstring_markup(doc):
    leaked = [f"{where}: {text!r}" for where, text in strings_under(doc) if RST.search(text)]
    assert not leaked


def test_every_operation_has_a_one_line_summary_and_says_who_may_call_it(doc):
    for name, op in operations(doc):
        assert op.get("summary") and "\n" not in op["summary"] and len(op["summary"]) <= 80, name
        roles = op.get("x-roles")
        said = op["description"].rsplit("\n\n", 1)[-1]
        assert said.startswith("**Who may call:**"), name
        assert ("anyone" in said) if not roles else ("anyone" not in said), name


def test_every_amount_is_documented_in_minor_units_and_every_currency_as_iso_4217(doc):
    amounts, wrong = 0, []
    for schema_name, schema in doc["components"]["schemas"].items():
        for prop, spec in schema.get("properties", {}).items():
            text = spec.get("description", "")
            if AMOUNT.search(prop) and (schema_name, prop) not in NOT_AMOUNTS:
                amounts += 1
                if "minor units" not in text:
                    wrong.append(f"{schema_name}.{prop}: {text!r}")
            if "minor units" in text and spec.get("type") not in ("integer", "object"):
                wrong.append(f"{schema_name}.{prop} says minor units but is {spec.get('type')}")
            if prop == "currency" and "ISO 4217" not in text:
                wrong.append(f"{schema_name}.{prop}: {text!r}")
    assert not wrong
    assert amounts >= 25  # price, total, max_price, amount, fee, ... across the schemas


def test_the_examples_match_their_schemas(doc):
    checked, invalid = 0, []
    for where, schema, example in examples_with_schemas(doc):
        checked += 1
        errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
                  for e in validator(doc, schema).iter_errors(example)]
        if errors:
            invalid.append(f"{where}: {errors}")
    assert not invalid
    assert checked > 300  # every success and every problem of every operation


def test_a_wrong_example_fails_the_schema_check(doc):
    """The check above can fail: a price as a string, an unknown field, a bad date."""
    order = {"$ref": "#/components/schemas/OrderOut"}
    from api import examples

    assert validator(doc, order).is_valid(examples.ORDER_OPEN)
    assert not validator(doc, order).is_valid({**examples.ORDER_OPEN, "total": "128.00"})
    assert not validator(doc, order).is_valid({**examples.ORDER_OPEN, "customer_email": "ada.park@example.com"})
    assert not validator(doc, order).is_valid({**examples.ORDER_OPEN, "created_at": "yesterday"})


def test_request_examples_load_through_the_views_own_schemas(doc):
    """What the reference shows a caller sending is what the API takes."""
    loaded = 0
    for name, op in operations(doc):
        media = op.get("requestBody", {}).get("content", {}).get("application/json")
        if media is None:
            continue
        schema_name = media["schema"]["$ref"].rsplit("/", 1)[1]
        schema = getattr(api_schemas, schema_name)()
        for example in media_examples(media):
            schema.load(example)  # raises ValidationError if the API would answer 422
            loaded += 1
    assert loaded >= 20  # every operation that takes a body, some with several examples


def test_the_introduction_says_how_to_use_the_api(doc):
    intro = doc["info"]["description"]
    for heading in ("## Authentication", "## Errors", "## Lists", "## Money", "## Bids are idempotent",
                    "## Rate limits"):
        assert heading in intro
    for term in ("Authorization: Bearer", "X-Access-Token", "application/problem+json", "X-Pagination",
                 "page_size", "minor units", "ISO 4217", "Retry-After"):
        assert term in intro
    assert {scheme["description"] for scheme in doc["components"]["securitySchemes"].values()}


def test_every_operation_is_in_a_described_tag(doc):
    tags = {tag["name"]: tag.get("description", "") for tag in doc["tags"]}
    assert all(len(description) > 40 for description in tags.values()), tags
    for name, op in operations(doc):
        assert op["tags"] and all(tag in tags for tag in op["tags"]), name


# --- problems, from the views' `:raise` fields and the operations' shapes --------------

def test_raise_fields_are_split_from_the_prose():
    prose, raised = problems.split_raises(
        "Cancel an order.\n\nThe hold is released.\n\n:raise 404: No such order.\n:raise 409: Shipped,\n"
        "    or closed. :raise 503: Try again.")
    assert prose == "Cancel an order.\n\nThe hold is released."
    assert raised == {404: "No such order.", 409: "Shipped, or closed.", 503: "Try again."}
    assert problems.split_raises("No fields here.") == ("No fields here.", {})


def test_a_views_raise_fields_become_its_responses(doc):
    erase = doc["paths"]["/api/v1/orders/{order_id}/erase"]["post"]
    assert erase["responses"]["503"]["description"].startswith(
        "The payment provider could not release the hold; nothing was erased, try again. Or: the records")
    assert erase["responses"]["404"]["description"] == "No such order, or the token is not this order's."
    assert ":raise" not in erase["description"]
    placing = doc["paths"]["/api/v1/storefronts/{slug}/orders"]["post"]
    assert {"402", "503"} <= set(placing["responses"])
    # A 422 a view describes still says how invalid fields are reported.
    assert "Each invalid field is named in `errors`" in placing["responses"]["422"]["description"]


def test_problems_are_worded_for_each_operation(doc):
    paths = doc["paths"]
    assert "only a retailer's key" in paths["/api/v1/board"]["get"]["responses"]["403"]["description"]
    assert paths["/api/v1/board"]["get"]["responses"]["403"]["content"]["application/problem+json"][
        "example"]["detail"] == "only a retailer may do this"
    cancel = paths["/api/v1/orders/{order_id}/cancel"]["post"]["responses"]["401"]
    assert "`X-Access-Token`" in cancel["description"] and "API key" not in cancel["description"]
    assert paths["/api/v1/stores/{store_id}"]["patch"]["responses"]["404"]["content"][
        "application/problem+json"]["example"]["detail"] == "no store 7"


def test_rate_limited_operations_say_their_limits(doc):
    from web.security import RATE_LIMITS

    for path, endpoint in (("/api/v1/storefronts/{slug}/orders", "orders.StorefrontOrders"),
                           ("/api/v1/requests", "personal.Requests")):
        [(limits, _)] = RATE_LIMITS[endpoint]
        said = doc["paths"][path]["post"]["responses"]["429"]["description"]
        for limit in limits.split(";"):
            assert limit.split(" per ")[0] + " a" in said  # "30 a minute", "300 an hour"
    assert problems.rate_limit_text("30 per minute;300 per hour") == "30 a minute or 300 an hour"
    unlimited = [name for name, op in operations(doc) if "429" in op["responses"]]
    assert unlimited == ["POST /api/v1/storefronts/{slug}/orders", "POST /api/v1/requests"]


# --- the page ---------------------------------------------------------------------

def test_the_reference_page_loads_swagger_ui_from_broker_under_the_strict_policy(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe" not in csp
    assert "frame-ancestors 'none'" in csp
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert [attrs.strip() for attrs, _ in scripts] == ['src="/static/vendor/swagger-ui/swagger-ui-bundle.js"',
                                                       'src="/static/api-reference.js"']
    assert all(not body.strip() for _, body in scripts)  # no inline script
    assert "<style" not in html and "style=" not in html  # no inline style
    assert 'data-spec-url="/api/v1/openapi.json"' in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from another host


def test_the_vendored_renderer_is_served_as_recorded(client):
    """The files are those of the package named in the vendor note, byte for byte."""
    note = (VENDOR / "README.md").read_text()
    recorded = dict(re.findall(r"\| `([\w.-]+)` \| `([0-9a-f]{64})` \|", note))
    assert set(recorded) == {"swagger-ui-bundle.js", "swagger-ui.css"}
    for name, digest in recorded.items():
        with client.get(f"/static/vendor/swagger-ui/{name}") as served:
            assert served.status_code == 200
            assert hashlib.sha256(served.get_data()).hexdigest() == digest, name
    assert (VENDOR / "LICENSE").read_text().startswith("\n                                 Apache License")
    assert "5.36.0" in note and (VENDOR / "NOTICE").exists()


def test_the_document_is_the_json_the_page_reads(client, doc):
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.mimetype == "application/json"
    assert json.loads(served.get_data()) == doc
