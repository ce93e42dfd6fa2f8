"""Callback signatures, retry backoff and the destination (SSRF) check.

No test here resolves a real name: every resolver is a fake, and address
literals are never looked up.
"""

import hashlib
import hmac
import socket
from datetime import timedelta
from types import SimpleNamespace

import pytest

from broker.config import Settings
from broker.outbox.signing import encode_body, sign, signing_secret, verify
from broker.outbox.destinations import check_destination
from broker.parking.services import BACKOFF_CAP, backoff

SECRET = "whsec-test"
T = 1_772_441_200
BODY = encode_body({"request_id": 7, "offer": {"price": 1250, "currency": "USD"}})


def resolver_to(*addresses):
    """A getaddrinfo stand-in answering every name with `addresses`."""
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
             (a, port, 0, 0) if ":" in a else (a, port))
            for a in addresses
        ]
    return resolve


def no_lookup(host, *args, **kwargs):
    raise AssertionError(f"looked up {host!r}")


class TestSignature:
    def test_round_trip(self):
        header = sign(BODY, SECRET, T)
        assert verify(BODY, header, SECRET, now=T + 10)

    def test_is_stripes_scheme(self):
        mac = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
        assert sign(BODY, SECRET, T) == f"t={T},v1={mac}"

    def test_body_is_compact_with_sorted_keys(self):
        assert encode_body({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'

    def test_wrong_secret_is_rejected(self):
        assert not verify(BODY, sign(BODY, SECRET, T), "another-secret", now=T)

    def test_tampered_body_is_rejected(self):
        assert not verify(BODY.replace(b"1250", b"1", 1), sign(BODY, SECRET, T), SECRET, now=T)

    @pytest.mark.parametrize("age", [301, -301, 86_400])
    def test_stale_or_future_timestamp_is_rejected(self, age):
        assert not verify(BODY, sign(BODY, SECRET, T), SECRET, now=T + age)

    def test_tolerance_is_configurable(self):
        assert verify(BODY, sign(BODY, SECRET, T), SECRET, tolerance=3600, now=T + 3000)

    def test_changed_timestamp_is_rejected(self):
        forged = sign(BODY, SECRET, T).replace(f"t={T}", f"t={T + 60}")
        assert not verify(BODY, forged, SECRET, now=T + 60)

    @pytest.mark.parametrize("header", [
        "", "garbage", "t=abc,v1=00", f"t={T}", "v1=00", f"t={T},v1", f"t={T};v1=00", f"t={T},v0=00",
    ])
    def test_malformed_header_is_rejected(self, header):
        assert not verify(BODY, header, SECRET, now=T)

    def test_any_of_several_signatures_may_match(self):
        """As Stripe does while a secret is rotated."""
        good = sign(BODY, SECRET, T).split(",v1=")[1]
        assert verify(BODY, f"t={T},v1={'0' * 64},v1={good}", SECRET, now=T)


class TestSigningSecret:
    def test_derived_from_the_secret_key(self):
        settings = Settings(secret_key="k")
        expected = hmac.new(b"k", b"callbacks", hashlib.sha256).hexdigest()
        assert signing_secret(settings) == expected != "k"

    def test_explicit_callback_secret_wins(self):
        assert signing_secret(SimpleNamespace(secret_key="k", callback_secret="cb")) == "cb"

    def test_empty_callback_secret_falls_back(self):
        assert signing_secret(SimpleNamespace(secret_key="k", callback_secret="")) == signing_secret(Settings(
            secret_key="k"))


class TestBackoff:
    """Every job's retry backoff (broker.parking), callbacks' among them."""

    def test_starts_near_thirty_seconds(self):
        assert timedelta(seconds=27) <= backoff(1, seed=5) <= timedelta(seconds=33)

    def test_doubles(self):
        for attempts in range(1, 11):
            nominal = timedelta(seconds=30 * 2 ** (attempts - 1))
            assert nominal * 0.9 <= backoff(attempts, seed=5) <= nominal * 1.1

    @pytest.mark.parametrize("attempts", [11, 12, 20, 64, 10_000])  # 30 s * 2**10 > 6 h
    def test_caps_at_six_hours(self, attempts):
        assert BACKOFF_CAP * 0.9 <= backoff(attempts, seed=5) <= BACKOFF_CAP * 1.1

    def test_jitter_is_deterministic_per_row_and_attempt(self):
        assert backoff(3, seed=5) == backoff(3, seed=5)
        assert len({backoff(3, seed=n) for n in range(20)}) > 1


class TestCheckDestination:
    @pytest.mark.parametrize("url", [
        "http://127.0.0.1/hook",
        "http://127.9.9.9/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://agent.localhost/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fc00::1]/hook",
        "http://[fd12:3456::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://[2002:7f00:1::]/hook",         # 6to4 around 127.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook",  # Teredo whose client is 10.0.0.1
        "http://[64:ff9b::a00:1]/hook",         # NAT64 around 10.0.0.1
        "http://0.0.0.0/hook",
        "http://[::]/hook",
        "http://100.64.0.1/hook",               # carrier-grade NAT
        "http://224.0.0.1/hook",
        "http://240.0.0.1/hook",
    ])
    def test_refuses_internal_addresses(self, url):
        assert check_destination(url, allow_private=False, resolver=no_lookup) is not None

    @pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1", "fd00::5"])
    def test_refuses_a_name_resolving_to_an_internal_address(self, address):
        reason = check_destination("https://agent.example/hook", allow_private=False, resolver=resolver_to(address))
        assert reason is not None and "agent.example" in reason

    def test_refuses_a_name_if_any_of_its_addresses_is_internal(self):
        resolver = resolver_to("93.184.216.34", "10.0.0.5")
        assert check_destination("https://agent.example/hook", allow_private=False, resolver=resolver)

    def test_refuses_a_name_that_does_not_resolve(self):
        def fails(*args, **kwargs):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        assert "cannot resolve" in check_destination("https://nowhere.example/", allow_private=False,
                                                     resolver=fails)

    @pytest.mark.parametrize("url, words", [
        ("file:///etc/passwd", "scheme"),
        ("ftp://agent.example/hook", "scheme"),
        ("gopher://agent.example/", "scheme"),
        ("agent.example/hook", "scheme"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http:///hook", "host"),
        ("http://example.com:22/", "port"),
        ("https://example.com:8443/", "port"),
        ("http://example.com:99999/", "valid"),
    ])
    def test_refuses_bad_urls(self, url, words):
        reason = check_destination(url, allow_private=False, resolver=resolver_to("93.184.216.34"))
        assert reason is not None and words in reason

    @pytest.mark.parametrize("url", ["https://agent.example/a b", "https://agent.example/hook\r\nX-Injected: 1",
                                     "https://agent.example/\x00", "https://agent.example\t.evil.example/",
                                     "https://agent.example/\ud800"])
    def test_refuses_spaces_and_control_characters(self, url):
        reason = check_destination(url, allow_private=False, resolver=resolver_to("93.184.216.34"))
        assert reason is not None and "control characters" in reason

    def test_the_request_line_is_serialised_from_the_parsed_url(self):
        from broker.outbox.destinations import parse_destination

        destination = parse_destination("https://agent.example/h\u00e9?q=\u00fc", allow_private=False)
        assert destination.target == "/h%C3%A9?q=%C3%BC"

    @pytest.mark.parametrize("url", [
        "https://agent.example/hook", "http://agent.example/hook?k=v", "https://agent.example:443/",
        "http://agent.example:80/",
    ])
    def test_accepts_a_public_address(self, url):
        assert check_destination(url, allow_private=False, resolver=resolver_to("93.184.216.34")) is None

    def test_accepts_a_public_address_literal(self):
        assert check_destination("https://93.184.216.34/hook", allow_private=False, resolver=no_lookup) is None
        assert check_destination("https://[2606:2800:220:1::]/hook", allow_private=False, resolver=no_lookup) is None

    @pytest.mark.parametrize("url", [
        "http://127.0.0.1:8080/hook", "http://localhost:5000/", "http://[::1]/", "http://192.168.1.10:22/",
    ])
    def test_operator_setting_allows_private_addresses_and_ports(self, url):
        assert check_destination(url, allow_private=True, resolver=no_lookup) is None

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://10.0.0.1/", "http://user:pw@127.0.0.1/"])
    def test_operator_setting_never_allows_other_schemes_or_credentials(self, url):
        assert check_destination(url, allow_private=True, resolver=no_lookup) is not None
