"""`broker serve`'s gunicorn logger: access and error logs without capability tokens.

gunicorn formats its access log from "atoms" (`%(r)s` the request line, `%(U)s`
the path, `%(q)s` the query, `%(f)s` the Referer, `%({name}i)s` any request
header, `%({name}o)s` any response header, `%({name}e)s` any WSGI environ
value). Every atom is redacted here before the format sees it, so no
`access_log_format` an operator chooses can print a token. Headers that are
credentials as a whole (the session and capability cookies, `Authorization`,
`X-Access-Token`, `Set-Cookie`) are replaced entirely.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from broker.logs import REDACT
from broker.redact import REDACTED, redact_url

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-access-token"})


def _is_credential(atom: str) -> bool:
    """`{cookie}i`, `{set-cookie}o`, `{http_cookie}e`, `{http_x_access_token}e`..."""
    if not (atom.startswith("{") and atom[-2:] in ("}i", "}o", "}e")):
        return False
    name = atom[1:-2].lower()
    if atom.endswith("}e"):
        name = name.removeprefix("http_").replace("_", "-")
    return name in CREDENTIAL_HEADERS


class RedactingLogger(Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        # Error lines quote request lines and URIs ("Error handling request /s/...").
        # On the loggers themselves: gunicorn logs on them directly, whatever their
        # handlers (logconfig may replace those). The access log gets the same, as a
        # second net under the atoms.
        for log in (self.error_log, self.access_log):
            if REDACT not in log.filters:
                log.addFilter(REDACT)

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if _is_credential(key):
                atoms[key] = REDACTED
            elif isinstance(value, str):
                atoms[key] = redact_url(value)
        return atoms
