"""What the OpenAPI document says beyond each operation: its introduction, and who
may call each operation, in words (the API reference at /api/v1/docs shows both).

Descriptions are CommonMark. The problems each operation answers, and when, are
documented by `api.problems.ProblemResponses`; amounts and currencies by the
field types in `api.schemas` (`Money`, `Amount`, `Currency`); examples by each
view's decorators, from `api.examples`.
"""

from __future__ import annotations

from apispec import BasePlugin

DESCRIPTION = """\
Broker's public API: JSON under `/api/v1`. This reference is drawn from the OpenAPI 3
document at [`/api/v1/openapi.json`](/api/v1/openapi.json); integrations can read it too.

The examples follow one story: **Northwind Cycles** (storefront `northwind`, selling in
USD from San Francisco) sells a commuter helmet (`NW-HELMET`, 79.00 USD) to a customer
in 94103; **Mission Bike Shop**, an authorised dealer in 94110, bids, wins and ships it.

## Authentication

Each operation says who may call it.

- **Manufacturers and retailers**: `Authorization: Bearer <api_key>`. The key is in the
  answer that creates the account (`POST /manufacturers`, `POST /retailers`), once: Broker
  keeps only its hash.
- **The operator**: `Authorization: Bearer <BROKER_ADMIN_TOKEN>`.
- **Customers**, or a personal agent acting for one: `X-Access-Token: <access_token>`,
  given once by `POST /storefronts/{slug}/orders` and `POST /requests`. It opens that order
  or request, and nothing else.
- Operations without a lock are public: a storefront's catalog, placing an order,
  posting a personal request, a retailer's reputation.

No credentials, or unknown ones, get a 401; valid ones of a role that may not call the
operation get a 403; an object the caller may not see is a 404, as if it did not exist.

## Errors

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem details, as
`application/problem+json`:

```json
{"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
 "detail": "the request has invalid fields: items.0.quantity",
 "errors": {"items.0.quantity": ["Not a valid integer."]}}
```

`errors` (on a 422) maps each invalid field, by its dotted path, to what is wrong with
it. Each operation lists the problems it can answer and when. A request that fails
writes nothing.

## Lists

Lists are paginated: `page` (from 1) and `page_size` (1 to 100, default 10). The
`X-Pagination` header holds the position as JSON:
`{"total": 25, "total_pages": 3, "first_page": 1, "last_page": 3, "page": 1, "next_page": 2}`.

## Money

Every amount (`price`, `total`, `max_price`, `amount`, `fee`, ...) is an integer in
**minor units** of its currency (`2500` is 25.00 USD; in a currency without minor
units, such as JPY, whole units), beside an ISO 4217 `currency`. A float (`12.5`), a
string (`"2500"`) or a boolean is refused with a 422. An order's prices come from the
catalog, never from the request.

## Bids are idempotent

`POST /board/{listing_id}/bids` is safe to send again, or twice at once: there is one
bid, the first answer is 201 and a repeat is 200 with the same bid. On a personal
request, a lower `price` improves your offer. `DELETE` on the same path withdraws it
while the listing is open.

## Rate limits

Placing an order and posting a personal request are limited per client address (each
operation's 429 says how much); past the limit the answer is 429 with `Retry-After`.
"""


class Audience(BasePlugin):
    """Says in each operation's description who may call it, from its `x-roles`
    (written by `api.auth`): a reader of the reference should not have to decode
    the security requirement. Public operations (no `x-roles`) say so too."""

    WHO = {"operator": "the operator (`BROKER_ADMIN_TOKEN`)", "manufacturer": "manufacturers (API key)",
           "retailer": "retailers (API key)", "customer": "the customer (`X-Access-Token`)"}

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            roles = operation.get("x-roles")
            who = "anyone, without credentials" if not roles else _listed([self.WHO.get(r, r) for r in roles])
            said = f"**Who may call:** {who}."
            text = operation.get("description")
            operation["description"] = f"{text}\n\n{said}" if text else said


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
