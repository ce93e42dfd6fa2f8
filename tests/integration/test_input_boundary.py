"""The input boundary (web/boundary.py): bytes no field can hold are refused with a
400 before any view, service or database sees them, on every route.

PostgreSQL refuses NUL in text and cannot encode a lone surrogate: before the
boundary, such a byte in a name, a SKU, a slug, a cart parameter or a message
reached the database and answered 500 there. The route walker below sends them
in every place (path, query, header, form, file name, JSON value and key) to
every route the app has, as a signed-in manufacturer and retailer would, and
asserts a 400 that names what was wrong, and that nothing was written.
"""

from __future__ import annotations

import io
import json
import re
from urllib.parse import unquote_to_bytes

import pytest
from sqlalchemy import select

from broker.accounts.models import Role
from broker.catalog.models import Product
from broker.inputs import MAX_JSON_DEPTH
from tests.fakes.stripe_server import event, sign
from tests.factories import HERE, World, north_of
from tests.integration.test_bad_input import assert_unchanged, database
from tests.integration.test_console_pages import sign_in

NUL, SURROGATE = "%00", "%ED%A0%80"  # percent-encoded, as they come on the wire
DEEP = "[" * 100_000 + "]" * 100_000
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
WEBHOOK_SECRET = "whsec_boundary"


@pytest.fixture
def scene(ctx, app):
    """A manufacturer and a retailer, each with a signed-in browser, and the values
    a route's variables take (real ones, so a request that got past the boundary
    would reach a real object)."""
    world = World(ctx)
    maker = world.manufacturer(products=(("SKU-1", 5000),))
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
    placed = world.order(maker)
    console, portal = app.test_client(), app.test_client()
    sign_in(console, ctx, Role.MANUFACTURER, maker.id)
    sign_in(portal, ctx, Role.RETAILER, shop.id)
    values = {"slug": maker.slug, "sku": "SKU-1", "token": placed.access_token, "filename": "store.css",
              "order_id": placed.order.id, "retailer_id": shop.id, "store_id": shop.store_id,
              "manufacturer_id": maker.id}
    return {"maker": maker, "shop": shop, "console": console, "portal": portal, "values": values}


def _routes(app):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def _url(rule, values: dict, bad: str | None = None) -> str:
    """The rule's path with its variables filled; `bad` goes into the first text
    variable, or, when it has none, becomes a segment of its own."""
    out, placed = rule.rule, False
    for name, converter in rule._converters.items():
        text = type(converter).__name__ in ("UnicodeConverter", "PathConverter")
        value = str(values.get(name, 1))
        if bad is not None and text and not placed:
            value, placed = value + bad, True
        out = re.sub(rf"<(?:[^:<>]+:)?{name}>", value, out)
    if bad is not None and not placed:
        out = out.rstrip("/") + "/" + bad
    return out


def _open_raw_path(client, url: str, method: str, headers: dict):
    """As a WSGI server passes the path: percent-decoded bytes, as latin-1 (PEP 3333).
    Werkzeug's test client would decode it itself and replace what is not UTF-8."""
    raw = unquote_to_bytes(url).decode("latin-1")
    return client.open(url, method=method, headers=headers, environ_overrides={"PATH_INFO": raw})


def _client(scene, path: str):
    return scene["portal"] if path.startswith("/portal") else scene["console"]


def _csrf(client) -> str:
    with client.session_transaction() as session:
        return session.get("csrf_token", "")


def _assert_refused(resp, what: str, route: str) -> None:
    assert resp.status_code == 400, (route, what, resp.status_code, resp.get_data(as_text=True)[:300])
    text = resp.get_data(as_text=True)
    assert re.search(what, text), (route, text[:300])
    if route.startswith(("/api/", "/webhooks/")):
        assert resp.mimetype == "application/problem+json", route


def _attempts(scene, rule, method):
    """(what the refusal must name, a callable sending one bad request)."""
    values = scene["values"]
    path = _url(rule, values)
    client = _client(scene, path)
    key = {"Authorization": f"Bearer {scene['maker'].key}"}
    for bad, what in ((NUL, "U\\+0000"), (SURROGATE, "UTF-8")):
        yield f"path {bad}", what, lambda bad=bad: _open_raw_path(client, _url(rule, values, bad), method, key)
        yield f"query {bad}", what, lambda bad=bad: client.open(
            f"{path}?cart={bad}&page=1{bad}&status={bad}&q={bad}", method=method, headers=key)
    yield "header", "U\\+0000", lambda: client.open(path, method=method,
                                                    headers={**key, "X-Access-Token": "tok\x00en"})
    if method not in BODY_METHODS:
        return
    for bad, what in ((NUL, "U\\+0000"), (SURROGATE, "UTF-8")):
        yield f"form {bad}", what, lambda bad=bad: client.open(
            path, method=method, headers=key, content_type="application/x-www-form-urlencoded",
            data=f"csrf_token={_csrf(client)}&name=Ada{bad}&email=ada{bad}@example.com&price=1{bad}")
    for text, what in (('"Ada\\u0000"', "U\\+0000"), ('"Ada\\ud800"', "surrogate")):
        body = '{"name": %s, "email": %s, "sku": %s, "items": [{"sku": %s, "quantity": 1}]}' % ((text,) * 4)
        yield f"json {text}", what, lambda body=body: client.open(path, method=method, headers=key, data=body,
                                                                  content_type="application/json")
    yield "json key", "U\\+0000", lambda: client.open(path, method=method, headers=key, data='{"na\\u0000me": 1}',
                                                      content_type="application/json")
    yield "deep json", "nested too deeply", lambda: client.open(path, method=method, headers=key, data=DEEP,
                                                                content_type="application/json")
    yield "file name", "U\\+0000", lambda: client.open(
        path, method=method, headers=key, content_type="multipart/form-data",
        data={"csrf_token": _csrf(client), "file": (io.BytesIO(b"sku,name,price\n"), "cata\x00log.csv")})


def test_every_route_refuses_nul_surrogates_and_deep_json_in_every_place_and_writes_nothing(app, ctx, scene):
    before = database(ctx)
    seen = 0
    for rule, method in _routes(app):
        for place, what, send in _attempts(scene, rule, method):
            _assert_refused(send(), what, f"{method} {rule.rule} {place}")
            seen += 1
    assert seen > 500  # every route, several places each
    assert_unchanged(ctx, before)


def test_every_operation_of_the_document_refuses_bad_bytes_in_its_parameters(app, client, ctx, scene):
    """The OpenAPI document's operations, each with NUL and a lone surrogate in every
    parameter it declares (path and query) and in every field of its body."""
    spec = client.get("/api/v1/openapi.json").get_json()
    before = database(ctx)
    key = {"Authorization": f"Bearer {scene['maker'].key}"}
    operations = 0
    for template, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue  # the path's own `parameters`
            operations += 1
            params = [p for p in operation.get("parameters", []) + item.get("parameters", []) if isinstance(p, dict)]
            for bad, what in ((NUL, "U\\+0000"), (SURROGATE, "UTF-8")):
                path = re.sub(r"\{(\w+)\}", lambda m: str(scene["values"].get(m.group(1), 1)) + bad, template)
                if path != template:
                    _assert_refused(_open_raw_path(client, path, method.upper(), key), what,
                                    f"{method} {template} path")
                query = "&".join(f"{p['name']}=x{bad}" for p in params if p.get("in") == "query")
                if query:
                    resp = client.open(f"{template}?{query}", method=method.upper(), headers=key)
                    _assert_refused(resp, what, f"{method} {template} query")
            schema = (operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                      .get("schema", {}))
            if schema:
                fields = _body_fields(spec, schema)
                for text, what in (('"x\\u0000"', "U\\+0000"), ('"x\\ud800"', "surrogate")):
                    body = "{" + ", ".join(f'"{name}": {text}' for name in fields) + "}"
                    resp = client.open(template.replace("{", "").replace("}", ""), method=method.upper(),
                                       headers=key, data=body, content_type="application/json")
                    _assert_refused(resp, what, f"{method} {template} body")
    assert operations > 40
    assert_unchanged(ctx, before)


def _body_fields(spec: dict, schema: dict) -> list[str]:
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return sorted(schema.get("properties", {})) or ["name"]


# --- what is allowed -------------------------------------------------------------------


def test_line_breaks_are_refused_in_one_line_fields_and_kept_in_multi_line_ones(client, ctx, scene):
    key = {"Authorization": f"Bearer {scene['maker'].key}"}
    before = database(ctx)

    resp = client.post("/api/v1/products", json={"sku": "TWO\nLINES", "name": "Kettle", "price": 100}, headers=key)
    _assert_refused(resp, "line break", "/api/v1/products")
    resp = client.post("/api/v1/products", json={"sku": "K1", "name": "Ket\rtle", "price": 100}, headers=key)
    _assert_refused(resp, "line break", "/api/v1/products")
    assert_unchanged(ctx, before)

    resp = client.post("/api/v1/products", headers=key, json={
        "sku": "K1", "name": "Kettle\twith a tab", "price": 100, "description": "Brass.\nHolds two litres.\r\n"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    with ctx.uow() as uow:
        product = uow.session.scalar(select(Product).where(Product.sku == "K1"))
        assert product.description.startswith("Brass.\nHolds two litres.")


def test_ordinary_unicode_passes_the_boundary(client, scene):
    key = {"Authorization": f"Bearer {scene['maker'].key}"}
    resp = client.post("/api/v1/products", headers=key, json={
        "sku": "ÄÖ-1", "name": "Théière 急須 🫖", "price": 100, "description": "ünïcödé"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert client.get(f"/s/{scene['maker'].slug}/p/%C3%84%C3%96-1").status_code == 200


@pytest.mark.parametrize("body", [
    '{"price": NaN}', '{"price": Infinity}', '{"price": 1e999}', '{"price": %s}' % ("9" * 40),
    '[' * (MAX_JSON_DEPTH + 1) + ']' * (MAX_JSON_DEPTH + 1),
    '{"a": ' * (MAX_JSON_DEPTH + 1) + '1' + '}' * (MAX_JSON_DEPTH + 1),
])
def test_pathological_json_is_400(client, ctx, scene, body):
    before = database(ctx)
    resp = client.post("/api/v1/products", data=body, content_type="application/json",
                       headers={"Authorization": f"Bearer {scene['maker'].key}"})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert_unchanged(ctx, before)


def test_json_as_deep_as_the_limit_still_passes_the_boundary(client, scene):
    body = '{"a": ' * (MAX_JSON_DEPTH - 1) + '1' + '}' * (MAX_JSON_DEPTH - 1)
    resp = client.post("/api/v1/products", data=body, content_type="application/json",
                       headers={"Authorization": f"Bearer {scene['maker'].key}"})
    assert resp.status_code == 422  # past the boundary: the schema names the unknown field


# --- webhooks: signed, but not an event Broker can read ---------------------------------------


@pytest.fixture
def hook_client(ctx):
    import dataclasses

    from web.app import create_app

    settings = dataclasses.replace(ctx.settings, stripe_webhook_secret=WEBHOOK_SECRET)
    return create_app(context=dataclasses.replace(ctx, settings=settings), test_config={"TESTING": True}).test_client()


def _signed(client, body: bytes, content_type: str = "application/json"):
    return client.post("/webhooks/stripe", data=body, content_type=content_type,
                       headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)})


MALFORMED = [
    pytest.param(b"[]", id="a-list"),
    pytest.param(b'"payment_intent.succeeded"', id="a-string"),
    pytest.param(b"null", id="null"),
    pytest.param(json.dumps({"id": 5, "type": "payment_intent.succeeded", "data": {"object": {}}}).encode(),
                 id="id-not-a-string"),
    pytest.param(json.dumps({"id": "evt_1", "type": ["x"], "data": {"object": {}}}).encode(), id="type-a-list"),
    pytest.param(json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "data": "pi_1"}).encode(),
                 id="data-not-an-object"),
    pytest.param(json.dumps({"id": "evt_1", "type": "payment_intent.succeeded",
                             "data": {"object": "pi_1"}}).encode(), id="object-not-an-object"),
    pytest.param(json.dumps({"id": "evt_1", "type": "payment_intent.succeeded",
                             "data": {"object": {"id": {"nested": "pi_1"}}}}).encode(), id="object-id-an-object"),
    pytest.param(json.dumps(event("charge.dispute.created", {"id": "dp_1", "amount": "lots",
                                                              "charge": "ch_1"})).encode(), id="amount-text"),
    pytest.param(json.dumps(event("charge.dispute.created", {"amount": 100, "charge": "ch_1"})).encode(),
                 id="dispute-without-id"),
    pytest.param(json.dumps({"id": "e" * 101, "type": "payment_intent.succeeded",
                             "data": {"object": {}}}).encode(), id="id-too-long"),
    pytest.param(json.dumps(event("payment_intent.succeeded", {"id": "pi_\u0000"})).encode(), id="nul-in-id"),
    pytest.param(json.dumps(event("payment_intent.succeeded", {"id": "pi_\ud800"})).encode(), id="surrogate"),
    pytest.param(DEEP.encode(), id="deep"),
    pytest.param(b'{"id": "evt_\xff"}', id="not-utf-8"),
]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
@pytest.mark.parametrize("body", MALFORMED)
def test_a_signed_webhook_that_is_not_an_event_is_400_and_writes_nothing(hook_client, ctx, body, content_type):
    """`text/plain`: the boundary parses JSON bodies only; the handler's own loader
    is the same strict one, so a body that skips the first check meets the second."""
    before = database(ctx)

    resp = _signed(hook_client, body, content_type)

    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert_unchanged(ctx, before)


def test_a_signed_well_formed_webhook_is_still_applied(hook_client):
    resp = _signed(hook_client, json.dumps(event("customer.created", {"id": "cus_1"})).encode())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["outcome"] == "ignored"
