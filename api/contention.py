"""The 503 every operation may answer when its work kept losing races to other
requests (`broker.retry`), in the OpenAPI document: a problem with `Retry-After`.

Kept apart from `api.problems` (which documents the problems an operation
answers by its shape): this one comes from the request boundary, for any
operation, read or write, since on SQLite every transaction queues for the one
write lock.
"""

from __future__ import annotations

from apispec import BasePlugin

from api.problems import PROBLEM_JSON

NAME = "ServiceUnavailable"
DESCRIPTION = ("The records this touches were busy with other changes and the work was rolled back "
               "(it is retried a few times first): nothing was changed; try again after `Retry-After`.")


class ContentionResponses(BasePlugin):
    def __init__(self, schema):
        self.schema = schema

    def init_spec(self, spec):
        super().init_spec(spec)
        spec.components.response(NAME, {
            "description": DESCRIPTION,
            "headers": {"Retry-After": {"description": "Seconds to wait before trying again.",
                                        "schema": {"type": "integer"}}},
            "content": {PROBLEM_JSON: {"schema": self.schema}},
        }, lazy=True)

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            operation.setdefault("responses", {}).setdefault("503", NAME)
