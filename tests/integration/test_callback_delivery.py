"""Delivering agents' callbacks from the outbox to a real HTTP server.

The receiver is a werkzeug server on 127.0.0.1, a loopback address that the
destination check refuses by default, so most tests use `lan_ctx`: the test
Context with the operator setting `allow_private_callbacks` turned on.
"""

from __future__ import annotations

import dataclasses
import http
import socket
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

from broker.outbox.delivery import MAX_ATTEMPTS, deliver_due, run_callbacks, send_request
from broker.outbox.signing import encode_body, signing_secret, verify
from broker.outbox.models import OutboxMessage
from broker.outbox.queue import LEASE_SECONDS, ROW_KIND, DeliveryReport
from broker.outbox.services import enqueue
from broker.parking.models import JobFailure
from tests.conftest import START

BODY = {"event": "offer", "request_id": 41, "offer": {"price": 1999, "currency": "USD", "retailer": "Northwind"}}


class Receiver:
    """An agent's endpoint: records every request and answers with the next of
    `statuses` (then `status`), after `delay` seconds if set."""

    def __init__(self, ssl_context=None) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.status = 200
        self.delay = 0.0
        self._lock = threading.Lock()
        # Set at close, so a handler still "being slow" returns at once and the
        # server can join its thread.
        self._closing = threading.Event()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True, ssl_context=ssl_context)
        self.port = self.server.server_port
        # A short poll interval: shutdown() waits for the next poll.
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="callback-receiver")
        self._thread.start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            self.requests.append({"path": request.full_path.rstrip("?"), "headers": dict(request.headers),
                                  "body": request.get_data()})
            status = self.statuses.pop(0) if self.statuses else self.status
        if self.delay:
            self._closing.wait(self.delay)
        headers = [("Content-Type", "text/plain"), ("Content-Length", "2")]
        if 300 <= status < 400:
            headers.append(("Location", "http://169.254.169.254/latest/meta-data/"))
        start_response(f"{status} {http.HTTPStatus(status).phrase}", headers)
        return [b"ok"]

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


class CallbackSettings:
    """The test Settings plus the callback settings Settings does not have yet.

    Settings is a frozen dataclass, so `dataclasses.replace` cannot add a field;
    this proxy answers the new attributes and forwards everything else. Delivery
    reads them with getattr and a default, so it works with and without it.
    """

    def __init__(self, settings, **extra):
        self._settings = settings
        self.__dict__.update(extra)

    def __getattr__(self, name):
        return getattr(self._settings, name)


@pytest.fixture
def lan_ctx(ctx):
    """The test Context, allowed to call private and loopback addresses."""
    return dataclasses.replace(ctx, settings=CallbackSettings(ctx.settings, allow_private_callbacks=True))


def add_callback(ctx, url: str, body: dict | None = None, *, topic: str = "callback.offer", key: str = "1",
                 recipient_kind: str = "agent", payload: dict | None = None) -> int:
    with ctx.uow() as uow:
        enqueue(uow.session, topic=topic, dedupe_key=key, recipient_kind=recipient_kind, recipient_id=3,
                payload=payload if payload is not None else {"url": url, "body": body or BODY}, now=ctx.now())
        uow.commit()
        return uow.session.scalar(select(OutboxMessage.id).where(OutboxMessage.topic == topic,
                                                                 OutboxMessage.dedupe_key == key))


def load(ctx, message_id: int) -> OutboxMessage:
    with ctx.uow() as uow:
        return uow.session.get(OutboxMessage, message_id)


@dataclasses.dataclass(frozen=True)
class State:
    attempts: int
    last_error: str
    parked: bool
    next_at: object  # when the message is due again (None: now, or parked)


def delivery_state(ctx, message_id: int) -> State:
    """The message's queue state: its failures (job_failures, under the callbacks job) and its next try."""
    with ctx.uow() as uow:
        failure = uow.session.scalar(select(JobFailure).where(
            JobFailure.job == "callbacks", JobFailure.row_kind == ROW_KIND, JobFailure.row_id == message_id))
        message = uow.session.get(OutboxMessage, message_id)
    if failure is None:
        return State(0, "", False, message.next_attempt_at)
    return State(failure.attempts, failure.last_error, failure.parked_at is not None, message.next_attempt_at)


def resolver_to(address: str):
    calls = []

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    resolve.calls = calls
    return resolve


class Crash(BaseException):
    """The dispatcher dying between sending and recording (not an Exception, so
    the delivery loop does not treat it as a failed send)."""


class TestDelivery:
    def test_agent_receives_the_exact_body_signed(self, lan_ctx, receiver, clock):
        message_id = add_callback(lan_ctx, receiver.url("/hook?agent=7"))

        report = deliver_due(lan_ctx)

        assert report == DeliveryReport(sent=1, failed=0, parked=0)
        [received] = receiver.requests
        assert received["path"] == "/hook?agent=7"
        assert received["body"] == encode_body(BODY)
        headers = received["headers"]
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"] == "Broker-Callbacks/1"
        assert headers["Broker-Event"] == "offer"
        assert headers["Broker-Delivery"] == str(message_id)
        assert headers["Host"] == f"127.0.0.1:{receiver.port}"
        assert verify(received["body"], headers["Broker-Signature"], signing_secret(lan_ctx.settings),
                      now=clock.now.timestamp())
        assert load(lan_ctx, message_id).sent_at == clock.now

    def test_a_sent_callback_is_not_sent_again(self, lan_ctx, receiver):
        add_callback(lan_ctx, receiver.url())
        deliver_due(lan_ctx)

        assert deliver_due(lan_ctx) == DeliveryReport()
        assert len(receiver.requests) == 1

    def test_explicit_callback_secret_signs(self, ctx, receiver, clock):
        settings = CallbackSettings(ctx.settings, allow_private_callbacks=True, callback_secret="agent-shared")
        add_callback(ctx, receiver.url())

        deliver_due(dataclasses.replace(ctx, settings=settings))

        [received] = receiver.requests
        assert verify(received["body"], received["headers"]["Broker-Signature"], "agent-shared",
                      now=clock.now.timestamp())

    def test_connects_to_the_address_it_checked_with_the_host_name_in_the_request(self, lan_ctx, receiver):
        resolver = resolver_to("127.0.0.1")
        add_callback(lan_ctx, receiver.url(host="agent.test"))

        assert deliver_due(lan_ctx, resolver=resolver).sent == 1

        assert resolver.calls == ["agent.test"]
        assert receiver.requests[0]["headers"]["Host"] == f"agent.test:{receiver.port}"

    def test_only_agent_callbacks_are_delivered(self, lan_ctx, receiver):
        other = add_callback(lan_ctx, receiver.url(), topic="assignment.lapsed", recipient_kind="retailer")
        not_agent = add_callback(lan_ctx, receiver.url(), topic="callback.offer", key="2",
                                 recipient_kind="retailer")

        assert deliver_due(lan_ctx) == DeliveryReport()
        assert receiver.requests == []
        assert load(lan_ctx, other).sent_at is None and load(lan_ctx, not_agent).sent_at is None

    def test_run_callbacks_delivers_everything_due(self, lan_ctx, receiver):
        for n in range(5):
            add_callback(lan_ctx, receiver.url(), {"n": n}, key=str(n))

        assert run_callbacks(lan_ctx, batch=2).sent == 5
        assert sorted(r["body"] for r in receiver.requests) == [encode_body({"n": n}) for n in range(5)]


class TestRetries:
    def test_failure_is_retried_after_backoff_until_it_succeeds(self, lan_ctx, receiver, clock):
        receiver.statuses = [500, 500]
        message_id = add_callback(lan_ctx, receiver.url())

        assert deliver_due(lan_ctx) == DeliveryReport(failed=1)
        state = delivery_state(lan_ctx, message_id)
        assert (state.attempts, state.last_error, state.parked) == (1, "HTTP 500", False)
        assert timedelta(seconds=27) <= state.next_at - clock.now <= timedelta(seconds=33)

        assert deliver_due(lan_ctx) == DeliveryReport()  # not yet due
        assert len(receiver.requests) == 1

        clock.now = state.next_at
        assert deliver_due(lan_ctx) == DeliveryReport(failed=1)
        state = delivery_state(lan_ctx, message_id)
        assert state.attempts == 2
        assert timedelta(seconds=54) <= state.next_at - clock.now <= timedelta(seconds=66)

        clock.advance(seconds=67)
        assert deliver_due(lan_ctx) == DeliveryReport(sent=1)
        message = load(lan_ctx, message_id)
        assert message.sent_at == clock.now
        assert [r["headers"]["Broker-Delivery"] for r in receiver.requests] == [str(message_id)] * 3

    def test_is_parked_after_the_last_attempt(self, lan_ctx, receiver, clock):
        receiver.status = 503
        message_id = add_callback(lan_ctx, receiver.url())

        reports = []
        for _ in range(MAX_ATTEMPTS):
            reports.append(deliver_due(lan_ctx))
            clock.advance(hours=7)

        assert reports == [DeliveryReport(failed=1)] * (MAX_ATTEMPTS - 1) + [DeliveryReport(parked=1)]
        state = delivery_state(lan_ctx, message_id)
        assert (state.attempts, state.parked, state.next_at) == (MAX_ATTEMPTS, True, None)
        clock.advance(days=30)
        assert deliver_due(lan_ctx) == DeliveryReport()
        assert len(receiver.requests) == MAX_ATTEMPTS
        assert load(lan_ctx, message_id).sent_at is None

    def test_a_slow_agent_times_out(self, lan_ctx, receiver):
        receiver.delay = 5
        message_id = add_callback(lan_ctx, receiver.url())

        started = time.monotonic()
        assert deliver_due(lan_ctx, timeout=0.3) == DeliveryReport(failed=1)

        assert time.monotonic() - started < 3
        assert "timed out" in delivery_state(lan_ctx, message_id).last_error
        assert len(receiver.requests) == 1

    def test_a_redirect_is_a_failure_and_is_not_followed(self, lan_ctx, receiver):
        receiver.status = 302
        message_id = add_callback(lan_ctx, receiver.url())

        assert deliver_due(lan_ctx) == DeliveryReport(failed=1)

        assert len(receiver.requests) == 1
        assert "redirect" in delivery_state(lan_ctx, message_id).last_error

    def test_a_closed_port_is_a_failure(self, lan_ctx):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        message_id = add_callback(lan_ctx, f"http://127.0.0.1:{port}/hook")

        assert deliver_due(lan_ctx) == DeliveryReport(failed=1)
        assert "ConnectionRefused" in delivery_state(lan_ctx, message_id).last_error

    def test_one_bad_message_does_not_stop_the_others(self, lan_ctx, receiver):
        receiver.statuses = [500]
        first = add_callback(lan_ctx, receiver.url(), key="1")
        second = add_callback(lan_ctx, receiver.url(), key="2")
        malformed = add_callback(lan_ctx, "", key="3", payload={"body": BODY})

        assert deliver_due(lan_ctx) == DeliveryReport(sent=1, failed=1, parked=1)
        assert load(lan_ctx, first).sent_at is None
        assert load(lan_ctx, second).sent_at is not None
        state = delivery_state(lan_ctx, malformed)
        assert state.parked and "url" in state.last_error


class TestDestinationCheck:
    def test_loopback_is_refused_without_any_request(self, ctx, receiver):
        message_id = add_callback(ctx, receiver.url())

        assert deliver_due(ctx) == DeliveryReport(failed=1)

        assert receiver.requests == []
        state = delivery_state(ctx, message_id)
        assert state.attempts == 1
        assert state.last_error.startswith("refused:") and "loopback" in state.last_error

    def test_a_name_resolving_to_a_private_address_is_refused(self, ctx, receiver):
        message_id = add_callback(ctx, "https://agent.example/hook")

        assert deliver_due(ctx, resolver=resolver_to("10.0.0.7")) == DeliveryReport(failed=1)
        assert "10.0.0.7" in delivery_state(ctx, message_id).last_error


class TestLease:
    def test_a_claimed_message_is_not_sent_again_while_its_lease_runs(self, lan_ctx, receiver, clock):
        """A dispatcher that dies after sending, before recording, leaves a lease:
        nobody sends the message again until it runs out; then it is retried
        with the same Broker-Delivery id (at least once)."""
        message_id = add_callback(lan_ctx, receiver.url())

        def send_then_crash(request):
            send_request(request)
            raise Crash

        with pytest.raises(Crash):
            deliver_due(lan_ctx, http=send_then_crash)
        message = load(lan_ctx, message_id)
        assert message.sent_at is None
        assert message.next_attempt_at == START + timedelta(seconds=LEASE_SECONDS)

        clock.advance(seconds=LEASE_SECONDS - 1)
        assert deliver_due(lan_ctx) == DeliveryReport()
        assert len(receiver.requests) == 1

        clock.advance(seconds=1)
        assert deliver_due(lan_ctx) == DeliveryReport(sent=1)
        assert [r["headers"]["Broker-Delivery"] for r in receiver.requests] == [str(message_id)] * 2

    def test_a_late_failure_does_not_overwrite_a_newer_claim(self, lan_ctx, receiver, clock):
        """Dispatcher A's call outlives its lease; B claims and fails too. A's
        late result is dropped rather than counted as a second attempt."""
        message_id = add_callback(lan_ctx, receiver.url())
        receiver.status = 500

        def slow_failure(request):
            clock.advance(seconds=LEASE_SECONDS + 1)
            assert deliver_due(lan_ctx) == DeliveryReport(failed=1)  # B, while A is "still" calling
            return 500

        assert deliver_due(lan_ctx, http=slow_failure) == DeliveryReport()  # A's outcome: superseded
        state = delivery_state(lan_ctx, message_id)
        assert state.attempts == 1


@pytest.fixture(scope="module")
def agent_certificate(tmp_path_factory):
    """A self-signed certificate for agent.test: (cert path, key path)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agent.test")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START.replace(year=2020)).not_valid_after(START.replace(year=2100))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("agent.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_receiver(agent_certificate, monkeypatch):
    """A receiver speaking HTTPS as agent.test, trusted by Broker's TLS context."""
    import ssl

    cert, key = agent_certificate
    # ssl.create_default_context() reads SSL_CERT_FILE: trust only our certificate.
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver = Receiver(ssl_context=context)
    yield receiver
    receiver.close()


class TestHttps:
    def test_checked_address_is_used_with_sni_and_the_certificate_checked_for_the_host(self, lan_ctx,
                                                                                        tls_receiver):
        """The connection goes to the resolved 127.0.0.1, yet TLS is still done for
        agent.test: a pinned address costs no certificate verification."""
        message_id = add_callback(lan_ctx, tls_receiver.url(host="agent.test", scheme="https"))

        assert deliver_due(lan_ctx, resolver=resolver_to("127.0.0.1")) == DeliveryReport(sent=1)

        [received] = tls_receiver.requests
        assert received["headers"]["Host"] == f"agent.test:{tls_receiver.port}"
        assert received["headers"]["Broker-Delivery"] == str(message_id)

    def test_a_certificate_for_another_host_is_a_failure(self, lan_ctx, tls_receiver):
        message_id = add_callback(lan_ctx, tls_receiver.url(host="other.test", scheme="https"))

        assert deliver_due(lan_ctx, resolver=resolver_to("127.0.0.1")) == DeliveryReport(failed=1)

        assert tls_receiver.requests == []
        assert "CERTIFICATE_VERIFY_FAILED" in delivery_state(lan_ctx, message_id).last_error
