from apispec import BasePlugin

from broker.errors import Invalid
from broker.pagination import PageRequest

# flask-smorest's `page` has no upper bound; an offset past 2**63 fits neither
# SQLite's nor PostgreSQL's integers (a 500, found by the API fuzz test).
MAX_PAGE = 2**31


def page_request(parameters) -> PageRequest:
    if parameters.page > MAX_PAGE:
        raise Invalid.field("page", f"must be at most {MAX_PAGE}")
    return PageRequest(page=parameters.page, page_size=parameters.page_size)


class PaginationHeader(BasePlugin):
    """Documents `X-Pagination` as what it is: a JSON object in a header.

    flask-smorest's `PAGINATION` header gives it an object `schema`, which in
    OpenAPI 3 means the `simple` style (`total,2,page,1`); a JSON value is
    described by `content` instead. Each paginated response gets this one.
    """

    NAME = "PaginationJson"

    def init_spec(self, spec):
        super().init_spec(spec)
        spec.components.header(self.NAME, {
            "description": "Pagination metadata, as JSON.",
            "content": {"application/json": {"schema": "PaginationMetadata"}},
        }, lazy=True)

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            for response in operation.get("responses", {}).values():
                headers = response.get("headers", {}) if isinstance(response, dict) else {}
                for name, header in headers.items():
                    if header == "PAGINATION":
                        headers[name] = self.NAME
