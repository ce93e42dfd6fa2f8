"""Grammars for the values a party controls that reach a header, a URL, a style
or a script: origins, host names and custom domains, image URLs, colours, local
paths (`next=`), names shown in a header.

Each parser takes text and returns a parsed value, or raises `GrammarError` with
a message for a person. Each parsed value serialises itself. Whatever Broker puts
in a header or an absolute URL is serialised from a parsed value, never
concatenated from stored text, so text that does not fit its grammar never
reaches one; code that reads a value stored before a rule existed parses it
again and drops it when it no longer fits.

Host names are compared as browsers send them: lowercase, without a trailing
dot, internationalised names in punycode (IDNA 2008 with UTS 46 mapping, as the
WHATWG URL standard does).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

import idna


class GrammarError(ValueError):
    """The text does not fit its grammar; the message says why, for a person."""


# Characters no origin, host or URL Broker accepts may hold: whitespace and
# control characters (header splitting), lone surrogates (no encoding can carry
# them), and what would end a CSP source list, an HTML attribute or a JavaScript
# string (`;` `,` quotes `<` `>` backslash).
_NEVER = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029\ud800-\udfff;,\"'<>\\`]")
_URL_NEVER = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029\ud800-\udfff\"<>\\`]")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_HEX_NUMBER = re.compile(r"0x[0-9a-f]*", re.ASCII)
DEFAULT_PORTS = {"http": 80, "https": 443}
# Names that never name a site on the internet (RFC 6761, RFC 6762, RFC 8375,
# RFC 7686, ICANN's .internal): a store's domain or an image's host is none of them.
_LOCAL_SUFFIXES = ("localhost", "local", "internal", "arpa", "invalid", "onion", "localdomain")
# Characters percent-encoding leaves as they are in a path, a query or a fragment.
_PATH_SAFE = "/%:@!$&()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
# Bidirectional overrides and isolates: they reorder what a reader sees.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _text(value: object, what: str, *, max_length: int, never: re.Pattern = _NEVER) -> str:
    if not isinstance(value, str):
        raise GrammarError(f"{what} must be text")
    text = value.strip()
    if not text:
        raise GrammarError(f"{what} must not be blank")
    if len(text) > max_length:
        raise GrammarError(f"{what} is longer than {max_length} characters")
    bad = never.search(text)
    if bad:
        char = bad.group()
        shown = repr(char) if char.isprintable() and not char.isspace() else "spaces or control characters"
        raise GrammarError(f"{what} {text!r} may not contain {shown}")
    return text


# --- host names -------------------------------------------------------------------


def _looks_numeric(name: str) -> bool:
    """A host browsers read as an IPv4 address: its last label is a number
    (decimal, 0x-hex or 0-octal), as in `127.1`, `2130706433` or `0x7f.1`."""
    last = name.rsplit(".", 1)[-1]
    return last.isdigit() or bool(_HEX_NUMBER.fullmatch(last))


def _is_local(name: str) -> bool:
    return any(name == suffix or name.endswith("." + suffix) for suffix in _LOCAL_SUFFIXES)


def parse_host(value: object, *, allow_ip: bool = False, allow_local: bool = False, allow_ipv6: bool = False,
               what: str = "host") -> str:
    """A host name as browsers send it (ASCII, lowercase, no trailing dot).

    `allow_ip`: an IPv4 address written as four decimal numbers (any other
    spelling of an address is refused: `0x7f.1` and `2130706433` reach 127.0.0.1
    too). `allow_ipv6`: an IPv6 address in brackets. `allow_local`: `localhost`,
    single-label names and the other names that never leave a network.
    """
    text = _text(value, what, max_length=300, never=_NEVER)
    if text.startswith("["):
        if not (allow_ipv6 and text.endswith("]")):
            raise GrammarError(f"{what} {text!r} is an IP address; use a domain name")
        try:
            return ipaddress.IPv6Address(text[1:-1]).compressed
        except ValueError:
            raise GrammarError(f"{what} {text!r} is not an IPv6 address") from None
    if ":" in text or "/" in text or "@" in text or "?" in text or "#" in text:
        raise GrammarError(f"{what} {text!r} must be a host name alone, like shop.example.com")
    name = text[:-1] if text.endswith(".") else text
    try:
        name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise GrammarError(f"{what} {text!r} is not a valid host name ({exc})") from None
    name = name.lower()
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise GrammarError(f"{what} {text!r} is not a valid host name")
    if _looks_numeric(name):
        if allow_ip:
            try:
                if str(ipaddress.IPv4Address(name)) == name:
                    return name
            except ValueError:
                pass
            raise GrammarError(f"{what} {text!r}: write an IP address as four decimal numbers, like 192.0.2.1")
        raise GrammarError(f"{what} {text!r} is an IP address; use a domain name")
    if not allow_local:
        if _is_local(name):
            raise GrammarError(f"{what} {text!r} is a local name, not a domain on the internet")
        if "." not in name:
            raise GrammarError(f"{what} {text!r} needs a full domain name, like shop.example.com")
    return name


def parse_custom_domain(value: object, *, own_hosts: Iterable[str] = ()) -> str:
    """A store's own domain: a real DNS name on the internet (no IP address in any
    spelling, no `localhost` or other local name, at least two labels), never one
    of Broker's own hosts or a name under them."""
    name = parse_host(value, what="domain")
    for own in own_hosts:
        if name == own or name.endswith("." + own):
            raise GrammarError(f"{name} is this Broker's own address; use your own domain")
    return name


# --- origins ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Origin:
    """`scheme://host[:port]`, nothing else. `port` is None for the scheme's default."""

    scheme: str
    host: str  # ASCII: a DNS name in punycode, an IPv4 address, or an IPv6 address without brackets
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port is None else f":{self.port}")

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    def join(self, path: str) -> str:
        """An absolute URL: this origin and a path Broker made (from `url_for`, or a
        fixed one), such as `/s/acme/embed.js?x=1`."""
        if not path.startswith("/") or path.startswith("//") or _URL_NEVER.search(path):
            raise ValueError(f"not a path on this site: {path!r}")
        return f"{self}{path}"


def _split_port(authority: str, what: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise GrammarError(f"{what}: the IPv6 address has no closing ]")
        host, rest = authority[:end + 1], authority[end + 1:]
        if rest and not rest.startswith(":"):
            raise GrammarError(f"{what}: unexpected text after the address")
        port_text = rest[1:] if rest else None
    elif ":" in authority:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, None
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and 1 <= int(port_text) <= 65535):
        raise GrammarError(f"{what}: the port must be a number from 1 to 65535, not {port_text!r}")
    return host, int(port_text)


def parse_origin(value: object, *, allow_ipv6: bool = False, what: str = "origin") -> Origin:
    """`https://www.example.com`, `http://127.0.0.1:8000`: scheme (http or https),
    host and an optional port; no path (a lone trailing `/` is dropped), query,
    fragment, user name, whitespace, `;` or wildcard."""
    text = _text(value, what, max_length=300)
    example = f"{what} {text!r} is not an origin like https://www.example.com"
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise GrammarError(f"{example}: it must start with https:// or http://")
    if rest.endswith("/"):
        rest = rest[:-1]
    if not rest or any(c in rest for c in "/?#@*"):
        raise GrammarError(f"{example}: only scheme://host[:port], without a path, query, user name or wildcard")
    host_text, port = _split_port(rest, what)
    host = parse_host(host_text, allow_ip=True, allow_local=True, allow_ipv6=allow_ipv6, what=what)
    return Origin(scheme, host, None if port == DEFAULT_PORTS[scheme] else port)


def origins_or_none(values: Iterable[object]) -> list[Origin]:
    """The values that parse as origins, in order, without repeats; the others
    dropped. For values stored before the grammar was enforced."""
    found: list[Origin] = []
    for value in values if isinstance(values, (list, tuple)) else ():
        try:
            origin = parse_origin(value)
        except GrammarError:
            continue
        if origin not in found:
            found.append(origin)
    return found


# --- URLs -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WebUrl:
    """An http(s) URL on a public host, its path, query and fragment percent-encoded."""

    origin: Origin
    path: str
    query: str = ""
    fragment: str = ""

    def __str__(self) -> str:
        return (f"{self.origin}{self.path or '/'}" + (f"?{self.query}" if self.query else "")
                + (f"#{self.fragment}" if self.fragment else ""))


_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
                  r"(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?", re.DOTALL)


# The product pictures Broker ships (web/static/products: the demo catalog's), by
# their path on Broker's own site: a store's pages load them from 'self'.
_SHIPPED_IMAGE = re.compile(r"/static/products/[a-z0-9][a-z0-9-]{0,80}\.(?:svg|png|webp|jpg)")


def parse_image_url(value: object, *, https_only: bool, what: str = "image URL",
                    max_length: int = 500) -> WebUrl | str:
    """An image's address: https (or http, unless `https_only`: an HTTPS
    deployment's pages load nothing over plain HTTP), on a public host name (no IP
    address, no local name), without a user name or password; or one of the
    pictures Broker ships, by its path (`/static/products/nw-lock.svg`)."""
    if isinstance(value, str) and _SHIPPED_IMAGE.fullmatch(value):
        return value
    text = _text(value, what, max_length=max_length, never=_URL_NEVER)
    match = _URL.fullmatch(text)
    scheme = match["scheme"].lower() if match else ""
    if not match or scheme not in DEFAULT_PORTS:
        raise GrammarError(f"{what} must be an https:// URL")
    if https_only and scheme != "https":
        raise GrammarError(f"{what} must be https://: this shop is served over HTTPS, and its pages "
                           "load nothing over plain HTTP")
    authority = match["authority"]
    if "@" in authority:
        raise GrammarError(f"{what} may not hold a user name or password")
    host_text, port = _split_port(authority, what)
    host = parse_host(host_text, what=what)
    origin = Origin(scheme, host, None if port == DEFAULT_PORTS[scheme] else port)
    url = WebUrl(origin, quote(match["path"], safe=_PATH_SAFE), quote(match["query"] or "", safe=_QUERY_SAFE),
                 quote(match["fragment"] or "", safe=_QUERY_SAFE))
    if len(str(url)) > max_length:
        raise GrammarError(f"{what} is longer than {max_length} characters once percent-encoded")
    return url


def image_url_or_none(value: object, *, https_only: bool) -> str | None:
    """A stored image URL as it may be rendered, or None when it no longer fits."""
    if not value:
        return None
    try:
        return str(parse_image_url(value, https_only=https_only))
    except GrammarError:
        return None


def parse_local_path(value: object) -> str:
    """A path on this site (`next=` after signing in): `/portal/orders?page=2`.
    Never another site: no scheme, no `//host`, no backslash, tab or newline
    (browsers drop those, so `/\\t/evil.example` would become `//evil.example`)."""
    if not isinstance(value, str) or not value or len(value) > 2000:
        raise GrammarError("not a path on this site")
    if _URL_NEVER.search(value) or not value.startswith("/") or value.startswith("//"):
        raise GrammarError("not a path on this site")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        raise GrammarError("not a path on this site")
    path = quote(parts.path, safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    return path + (f"?{query}" if query else "")


# --- colours and text -------------------------------------------------------------


_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}", re.ASCII)


def parse_color(value: object, *, what: str = "colour") -> str:
    """`#rrggbb`, lowercased: the one shape that goes into the store's inline style."""
    if not isinstance(value, str) or not _HEX_COLOR.fullmatch(value.strip()):
        raise GrammarError(f"{what}: use a colour like #1d4ed8")
    return value.strip().lower()


def color_or(value: object, default: str) -> str:
    try:
        return parse_color(value)
    except GrammarError:
        return default


def _unprintable(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI


def parse_display_name(value: object, *, what: str = "name", max_length: int = 200) -> str:
    """A name shown to people, in pages and in email subjects: one line, without
    control characters or bidirectional overrides."""
    if not isinstance(value, str) or not value.strip():
        raise GrammarError(f"{what} must not be blank")
    text = value.strip()
    if len(text) > max_length:
        raise GrammarError(f"{what} is longer than {max_length} characters")
    if any(_unprintable(c) for c in text):
        raise GrammarError(f"{what} must be one line, without control characters")
    return text


def header_text(value: str) -> str:
    """Text made safe for a one-line header (an email's Subject): every line
    break, control character and bidirectional override becomes a space, and runs
    of spaces become one."""
    return " ".join("".join(" " if _unprintable(c) else c for c in value).split())
