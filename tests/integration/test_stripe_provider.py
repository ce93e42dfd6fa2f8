"""StripeProvider through the real `stripe` SDK, over HTTP, against a fake Stripe
on 127.0.0.1 (tests/fakes/stripe_server.py). No network, no database: the
provider keeps nothing in Broker's tables, so `session` is None throughout."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
import stripe

from broker.config import Settings
from broker.payments.factory import make_payment_provider
from broker.payments.provider import PaymentError
from broker.payments.stripe_provider import (
    STRIPE_API_VERSION,
    StripeProvider,
    WebhookPayloadError,
    WebhookSignatureError,
    account_ready,
    payment_state,
    verify_webhook,
)
from tests.fakes.stripe_server import FakeStripe, event, parse_form, sign

WEBHOOK_SECRET = "whsec_test"
NO_SESSION = None


def stripe_settings(api_base: str, key: str = "sk_test_123") -> Settings:
    settings = Settings(database_url="sqlite://", stripe_secret_key=key, stripe_webhook_secret=WEBHOOK_SECRET,
                        stripe_api_base=api_base)
    settings.validate()
    return settings


@pytest.fixture
def provider(fake):
    provider = StripeProvider(stripe_settings(fake.url))
    yield provider
    provider.close()


@pytest.fixture
def fast_retries(monkeypatch):
    """The SDK's own retries, without its 0.5 s and 1 s back-off."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0)


def authorize(provider, *, amount=2599, key="payment-1-authorize", metadata=None):
    return provider.authorize(NO_SESSION, amount=amount, currency="USD", idempotency_key=key,
                              description="Order 7 at Example Store",
                              metadata={"order_id": "7", "transfer_group": "order-7"} if metadata is None else metadata)


def held(provider, fake, *, amount=2599, key="payment-1-authorize"):
    """A payment the customer has confirmed: the hold is in place."""
    ref = authorize(provider, amount=amount, key=key).ref
    fake.authorize(ref)
    return ref


def ready_account(provider, fake, key="retailer-3-account"):
    ref = provider.create_account(NO_SESSION, email="shop@example.com", country="US", idempotency_key=key).ref
    fake.complete_onboarding(ref)
    return ref


class TestAuthorize:
    def test_creates_a_manual_capture_intent_for_the_customer_to_confirm(self, provider, fake):
        auth = authorize(provider)

        assert auth.authorized is False
        assert auth.ref.startswith("pi_")
        assert auth.client_secret and auth.client_secret.startswith(f"{auth.ref}_secret_")
        intent = fake.payment_intents[auth.ref]
        assert intent["status"] == "requires_payment_method"
        assert intent["amount"] == 2599
        assert intent["currency"] == "usd"
        assert intent["capture_method"] == "manual"
        assert intent["automatic_payment_methods"] == {"enabled": True}
        assert intent["description"] == "Order 7 at Example Store"
        assert intent["metadata"] == {"order_id": "7", "transfer_group": "order-7"}
        assert intent["transfer_group"] == "order-7"

    def test_sends_what_the_sdk_encodes_on_the_wire(self, provider, fake):
        authorize(provider)

        (sent,) = fake.requests_to("/v1/payment_intents", "POST")
        assert sent.params == {
            "amount": "2599", "currency": "usd", "capture_method": "manual",
            "automatic_payment_methods": {"enabled": "true"}, "description": "Order 7 at Example Store",
            "metadata": {"order_id": "7", "transfer_group": "order-7"}, "transfer_group": "order-7",
        }
        assert sent.headers["Authorization"] == "Bearer sk_test_123"

    def test_without_a_transfer_group_sends_none(self, provider, fake):
        auth = authorize(provider, metadata={"order_id": "7"})

        assert fake.payment_intents[auth.ref]["transfer_group"] is None
        assert "transfer_group" not in fake.requests_to("/v1/payment_intents", "POST")[0].params

    def test_retried_with_the_same_key_creates_one_intent(self, provider, fake):
        first = authorize(provider)
        second = authorize(provider)

        assert second == first
        assert len(fake.payment_intents) == 1
        assert [r.idempotency_key for r in fake.requests] == ["payment-1-authorize"] * 2

    def test_a_key_reused_for_another_request_is_refused(self, provider, fake):
        authorize(provider, amount=2599)

        with pytest.raises(PaymentError) as raised:
            authorize(provider, amount=1000)
        assert raised.value.retryable is False
        assert "idempotent" in str(raised.value)
        assert len(fake.payment_intents) == 1


class TestRetrieve:
    def test_is_requires_action_until_the_customer_confirms(self, provider, fake):
        ref = authorize(provider).ref

        state = provider.retrieve(NO_SESSION, ref)

        assert (state.status, state.amount, state.amount_capturable, state.charge_ref) == \
               ("requires_action", 2599, 0, None)

    def test_is_authorized_once_the_hold_is_in_place(self, provider, fake):
        ref = held(provider, fake)

        state = provider.retrieve(NO_SESSION, ref)

        assert state.status == "authorized"
        assert state.amount_capturable == 2599
        assert state.charge_ref == fake.payment_intents[ref]["latest_charge"]
        assert state.charge_ref.startswith("ch_")
        assert state.amount_received == state.amount_refunded == 0

    def test_a_declined_card_is_failed_and_names_no_charge(self, provider, fake):
        ref = authorize(provider).ref
        fake.decline(ref)

        state = provider.retrieve(NO_SESSION, ref)

        assert state.status == "failed"
        assert state.charge_ref is None  # the failed charge must not stick to the payment

    def test_a_second_attempt_after_a_decline_is_authorized_with_its_own_charge(self, provider, fake):
        ref = authorize(provider).ref
        failed_charge = fake.decline(ref)["latest_charge"]
        fake.authorize(ref)

        state = provider.retrieve(NO_SESSION, ref)

        assert state.status == "authorized"
        assert state.charge_ref not in (None, failed_charge)

    def test_a_lapsed_hold_is_released(self, provider, fake):
        ref = held(provider, fake)
        fake.expire(ref)

        assert provider.retrieve(NO_SESSION, ref).status == "released"

    def test_an_unknown_payment_is_an_error_not_worth_retrying(self, provider):
        with pytest.raises(PaymentError) as raised:
            provider.retrieve(NO_SESSION, "pi_nope")
        assert raised.value.retryable is False
        assert "resource_missing" in str(raised.value)


class TestCapture:
    def test_captures_part_of_the_hold_and_the_rest_is_not_a_refund(self, provider, fake):
        ref = held(provider, fake)

        state = provider.capture(NO_SESSION, ref, amount=2000, idempotency_key="payment-1-capture")

        assert (state.status, state.amount_received, state.amount_capturable) == ("captured", 2000, 0)
        # Stripe counts the released 599 in the charge's amount_refunded; Broker must not.
        assert fake.charges[state.charge_ref]["amount_refunded"] == 599
        assert state.amount_refunded == 0
        assert provider.retrieve(NO_SESSION, ref) == state
        assert fake.requests_to(f"/v1/payment_intents/{ref}/capture")[0].params["amount_to_capture"] == "2000"

    def test_captures_the_whole_hold(self, provider, fake):
        ref = held(provider, fake)

        state = provider.capture(NO_SESSION, ref, amount=2599, idempotency_key="payment-1-capture")

        assert (state.status, state.amount_received) == ("captured", 2599)

    def test_more_than_was_authorised_is_refused(self, provider, fake):
        ref = held(provider, fake)

        with pytest.raises(PaymentError) as raised:
            provider.capture(NO_SESSION, ref, amount=2600, idempotency_key="payment-1-capture")
        assert raised.value.retryable is False
        assert "amount_too_large" in str(raised.value)
        assert fake.payment_intents[ref]["status"] == "requires_capture"

    def test_before_the_customer_confirmed_is_refused(self, provider, fake):
        ref = authorize(provider).ref

        with pytest.raises(PaymentError) as raised:
            provider.capture(NO_SESSION, ref, amount=2599, idempotency_key="payment-1-capture")
        assert raised.value.retryable is False

    def test_a_released_payment_cannot_be_captured(self, provider, fake):
        ref = held(provider, fake)
        provider.release(NO_SESSION, ref, idempotency_key="payment-1-release")

        with pytest.raises(PaymentError) as raised:
            provider.capture(NO_SESSION, ref, amount=2599, idempotency_key="payment-1-capture")
        assert raised.value.retryable is False

    def test_retried_with_the_same_key_is_replayed(self, provider, fake):
        ref = held(provider, fake)

        first = provider.capture(NO_SESSION, ref, amount=2000, idempotency_key="payment-1-capture")
        again = provider.capture(NO_SESSION, ref, amount=2000, idempotency_key="payment-1-capture")

        assert again == first
        assert [r.status for r in fake.requests_to(f"/v1/payment_intents/{ref}/capture")] == [200, 200]

    def test_captured_already_under_another_key_reads_back_the_capture(self, provider, fake):
        # Stripe forgets keys after 24 hours: a late retry must not fail a captured payment.
        ref = held(provider, fake)
        first = provider.capture(NO_SESSION, ref, amount=2000, idempotency_key="payment-1-capture")

        again = provider.capture(NO_SESSION, ref, amount=2000, idempotency_key="payment-1-capture-later")

        assert again == first


class TestRelease:
    def test_cancels_the_hold_and_a_second_release_is_quiet(self, provider, fake):
        ref = held(provider, fake)

        provider.release(NO_SESSION, ref, idempotency_key="payment-1-release")
        provider.release(NO_SESSION, ref, idempotency_key="payment-1-release")  # replayed
        provider.release(NO_SESSION, ref, idempotency_key="payment-1-release-again")  # canceled already

        assert fake.payment_intents[ref]["status"] == "canceled"
        assert provider.retrieve(NO_SESSION, ref).status == "released"

    def test_releases_a_payment_the_customer_never_confirmed(self, provider, fake):
        ref = authorize(provider).ref

        provider.release(NO_SESSION, ref, idempotency_key="payment-1-release")

        assert fake.payment_intents[ref]["status"] == "canceled"

    def test_a_captured_payment_cannot_be_released(self, provider, fake):
        ref = held(provider, fake)
        provider.capture(NO_SESSION, ref, amount=2599, idempotency_key="payment-1-capture")

        with pytest.raises(PaymentError) as raised:
            provider.release(NO_SESSION, ref, idempotency_key="payment-1-release")
        assert raised.value.retryable is False
        assert fake.payment_intents[ref]["status"] == "succeeded"


class TestRefund:
    def test_refunds_part_then_the_rest(self, provider, fake):
        ref = held(provider, fake)
        provider.capture(NO_SESSION, ref, amount=2599, idempotency_key="payment-1-capture")

        refund_ref = provider.refund(NO_SESSION, ref, amount=500, idempotency_key="refund-1")

        assert refund_ref.startswith("re_")
        assert fake.refunds[refund_ref]["amount"] == 500
        assert fake.refunds[refund_ref]["payment_intent"] == ref
        assert provider.retrieve(NO_SESSION, ref).amount_refunded == 500
        provider.refund(NO_SESSION, ref, amount=2099, idempotency_key="refund-2")
        assert provider.retrieve(NO_SESSION, ref).amount_refunded == 2599

    def test_after_a_partial_capture_only_what_was_captured_can_be_refunded(self, provider, fake):
        ref = held(provider, fake)
        provider.capture(NO_SESSION, ref, amount=2000, idempotency_key="payment-1-capture")

        provider.refund(NO_SESSION, ref, amount=1500, idempotency_key="refund-1")
        with pytest.raises(PaymentError) as raised:
            provider.refund(NO_SESSION, ref, amount=501, idempotency_key="refund-2")

        assert raised.value.retryable is False
        assert provider.retrieve(NO_SESSION, ref).amount_refunded == 1500

    def test_retried_with_the_same_key_refunds_once(self, provider, fake):
        ref = held(provider, fake)
        provider.capture(NO_SESSION, ref, amount=2599, idempotency_key="payment-1-capture")

        first = provider.refund(NO_SESSION, ref, amount=500, idempotency_key="refund-1")
        again = provider.refund(NO_SESSION, ref, amount=500, idempotency_key="refund-1")

        assert again == first
        assert len(fake.refunds) == 1

    def test_an_uncaptured_payment_cannot_be_refunded(self, provider, fake):
        ref = held(provider, fake)

        with pytest.raises(PaymentError) as raised:
            provider.refund(NO_SESSION, ref, amount=500, idempotency_key="refund-1")
        assert raised.value.retryable is False


class TestAccounts:
    def test_creates_an_express_account_that_may_receive_transfers(self, provider, fake):
        account = provider.create_account(NO_SESSION, email="shop@example.com", country="us",
                                          idempotency_key="retailer-3-account")

        assert account.ref.startswith("acct_")
        assert account.ready is False
        stored = fake.accounts[account.ref]
        assert (stored["type"], stored["email"], stored["country"]) == ("express", "shop@example.com", "US")
        sent = fake.requests_to("/v1/accounts", "POST")[0]
        assert sent.params["capabilities"] == {"transfers": {"requested": "true"}}
        assert sent.idempotency_key == "retailer-3-account"

    def test_is_not_ready_until_onboarding_is_complete(self, provider, fake):
        ref = provider.create_account(NO_SESSION, email="shop@example.com", country="US",
                                      idempotency_key="retailer-3-account").ref
        assert provider.account(NO_SESSION, ref).ready is False

        fake.complete_onboarding(ref)

        assert provider.account(NO_SESSION, ref).ready is True

    def test_retried_with_the_same_key_creates_one_account(self, provider, fake):
        first = provider.create_account(NO_SESSION, email="shop@example.com", country="US",
                                        idempotency_key="retailer-3-account")
        again = provider.create_account(NO_SESSION, email="shop@example.com", country="US",
                                        idempotency_key="retailer-3-account")

        assert again.ref == first.ref
        assert len(fake.accounts) == 1

    def test_onboarding_link_goes_to_stripe_and_back_to_broker(self, provider, fake):
        ref = provider.create_account(NO_SESSION, email="shop@example.com", country="US",
                                      idempotency_key="retailer-3-account").ref

        url = provider.onboarding_link(NO_SESSION, ref, return_url="https://broker.example/portal/payouts/done",
                                       refresh_url="https://broker.example/portal/payouts/again")

        assert url.startswith(fake.url)
        (link,) = fake.account_links
        assert link == {**link, "account": ref, "type": "account_onboarding",
                        "return_url": "https://broker.example/portal/payouts/done",
                        "refresh_url": "https://broker.example/portal/payouts/again"}

    def test_an_unknown_account_is_an_error(self, provider):
        with pytest.raises(PaymentError) as raised:
            provider.account(NO_SESSION, "acct_nope")
        assert raised.value.retryable is False

    @pytest.mark.parametrize("account, ready", [
        ({"payouts_enabled": True, "details_submitted": True}, True),
        ({"payouts_enabled": True, "details_submitted": True, "capabilities": {"transfers": "active"}}, True),
        ({"payouts_enabled": True, "details_submitted": True, "capabilities": {"transfers": "pending"}}, False),
        ({"payouts_enabled": False, "details_submitted": True}, False),
        ({"payouts_enabled": True, "details_submitted": False}, False),
    ])
    def test_ready_means_payouts_details_and_transfers(self, account, ready):
        assert account_ready(account) is ready


class TestTransfer:
    def test_pays_a_connected_account_from_the_order_s_charge(self, provider, fake):
        ref = held(provider, fake)
        charge = provider.capture(NO_SESSION, ref, amount=2599, idempotency_key="payment-1-capture").charge_ref
        account = ready_account(provider, fake)

        transfer_ref = provider.transfer(NO_SESSION, account_ref=account, amount=2339, currency="USD",
                                         transfer_group="order-7", source_ref=charge,
                                         idempotency_key="payout-4-transfer")

        assert transfer_ref.startswith("tr_")
        transfer = fake.transfers[transfer_ref]
        assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (2339, "usd", account)
        assert (transfer["transfer_group"], transfer["source_transaction"]) == ("order-7", charge)

    def test_without_a_source_sends_none(self, provider, fake):
        account = ready_account(provider, fake)

        provider.transfer(NO_SESSION, account_ref=account, amount=100, currency="USD", transfer_group="order-7",
                          source_ref=None, idempotency_key="payout-4-transfer")

        assert "source_transaction" not in fake.requests_to("/v1/transfers")[0].params

    def test_retried_with_the_same_key_transfers_once(self, provider, fake):
        account = ready_account(provider, fake)

        refs = {provider.transfer(NO_SESSION, account_ref=account, amount=100, currency="USD",
                                  transfer_group="order-7", source_ref=None, idempotency_key="payout-4-transfer")
                for _ in range(2)}

        assert len(refs) == 1
        assert len(fake.transfers) == 1

    def test_an_account_still_onboarding_cannot_be_paid(self, provider, fake):
        account = provider.create_account(NO_SESSION, email="shop@example.com", country="US",
                                          idempotency_key="retailer-3-account").ref

        with pytest.raises(PaymentError) as raised:
            provider.transfer(NO_SESSION, account_ref=account, amount=100, currency="USD",
                              transfer_group="order-7", source_ref=None, idempotency_key="payout-4-transfer")
        assert raised.value.retryable is False
        assert fake.transfers == {}


class TestEveryRequest:
    def test_pins_the_api_version_and_every_write_carries_broker_s_key(self, provider, fake):
        ref = held(provider, fake)
        provider.retrieve(NO_SESSION, ref)
        provider.capture(NO_SESSION, ref, amount=2599, idempotency_key="payment-1-capture")
        provider.refund(NO_SESSION, ref, amount=100, idempotency_key="refund-1")
        other = authorize(provider, key="payment-2-authorize").ref
        provider.release(NO_SESSION, other, idempotency_key="payment-2-release")
        account = ready_account(provider, fake)
        provider.account(NO_SESSION, account)
        provider.onboarding_link(NO_SESSION, account, return_url="https://b.example/r",
                                 refresh_url="https://b.example/f")
        provider.transfer(NO_SESSION, account_ref=account, amount=100, currency="USD", transfer_group="order-7",
                          source_ref=None, idempotency_key="payout-4-transfer")

        assert len(fake.requests) == 10
        assert {r.stripe_version for r in fake.requests} == {STRIPE_API_VERSION}
        writes = [r for r in fake.requests if r.method == "POST"]
        assert all(r.idempotency_key for r in writes)
        assert {r.idempotency_key for r in writes if r.path != "/v1/account_links"} == {
            "payment-1-authorize", "payment-1-capture", "refund-1", "payment-2-authorize", "payment-2-release",
            "retailer-3-account", "payout-4-transfer"}

    def test_the_pinned_version_is_the_one_the_sdk_was_generated_for(self):
        assert STRIPE_API_VERSION == stripe._api_version._ApiVersion.CURRENT, (
            "stripe-python was upgraded: read Stripe's API changelog from the pinned version to the SDK's, "
            "check StripeProvider against it, then bump STRIPE_API_VERSION"
        )


class TestFailures:
    def test_a_server_error_that_outlasts_the_sdk_s_retries_is_retryable(self, provider, fake, fast_retries):
        fake.fail_next(status=500, times=3)

        with pytest.raises(PaymentError) as raised:
            authorize(provider)

        assert raised.value.retryable is True
        tries = fake.requests_to("/v1/payment_intents", "POST")
        assert [r.status for r in tries] == [500, 500, 500]
        assert {r.idempotency_key for r in tries} == {"payment-1-authorize"}
        assert fake.payment_intents == {}

    def test_one_server_error_is_retried_by_the_sdk_with_the_same_key(self, provider, fake, fast_retries):
        fake.fail_next(status=500)

        auth = authorize(provider)

        assert [r.status for r in fake.requests] == [500, 200]
        assert list(fake.payment_intents) == [auth.ref]

    def test_a_server_error_stripe_says_not_to_retry_is_still_retryable_later(self, provider, fake):
        fake.fail_next(status=500, should_retry=False)

        with pytest.raises(PaymentError) as raised:
            authorize(provider)

        assert raised.value.retryable is True
        assert len(fake.requests) == 1

    def test_a_rate_limit_is_retryable(self, provider, fake):
        fake.fail_next(status=429)

        with pytest.raises(PaymentError) as raised:
            provider.retrieve(NO_SESSION, "pi_whatever")
        assert raised.value.retryable is True

    def test_a_card_error_is_not_retryable_and_names_only_codes(self, provider, fake):
        fake.fail_next(status=402, message="Your card number 4000000000000002 was declined.")

        with pytest.raises(PaymentError) as raised:
            authorize(provider)

        assert raised.value.retryable is False
        assert "card_declined" in str(raised.value)
        assert "4000" not in str(raised.value)

    def test_a_wrong_api_key_is_not_retryable(self, fake):
        provider = StripeProvider(stripe_settings(fake.url, key="sk_test_wrong"))
        fake.api_key = "sk_test_right"
        try:
            with pytest.raises(PaymentError) as raised:
                authorize(provider)
        finally:
            provider.close()
        assert raised.value.retryable is False
        assert [r.status for r in fake.requests] == [401]

    def test_stripe_out_of_reach_is_retryable(self, fast_retries):
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        provider = StripeProvider(stripe_settings(f"http://127.0.0.1:{port}"))
        try:
            with pytest.raises(PaymentError) as raised:
                authorize(provider)
        finally:
            provider.close()
        assert raised.value.retryable is True
        assert "could not reach Stripe" in str(raised.value)


class TestWebhookSignature:
    def body(self, **obj):
        return json.dumps(event("payment_intent.amount_capturable_updated",
                                {"id": "pi_1", "object": "payment_intent", **obj})).encode()

    def test_a_good_signature_gives_the_event(self):
        payload = self.body(amount=2599)

        found = verify_webhook(payload, sign(payload, WEBHOOK_SECRET), WEBHOOK_SECRET)

        assert found == json.loads(payload)
        assert type(found) is dict
        assert found["data"]["object"]["amount"] == 2599

    def test_a_signature_within_the_tolerance_is_accepted(self):
        payload = self.body()

        verify_webhook(payload, sign(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 200), WEBHOOK_SECRET)

    @pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "t=1700000000", "v1=deadbeef"])
    def test_a_missing_or_malformed_signature_is_refused(self, header):
        with pytest.raises(WebhookSignatureError):
            verify_webhook(self.body(), header, WEBHOOK_SECRET)

    def test_a_signature_made_with_another_secret_is_refused(self):
        payload = self.body()

        with pytest.raises(WebhookSignatureError):
            verify_webhook(payload, sign(payload, "whsec_other"), WEBHOOK_SECRET)

    def test_a_tampered_body_is_refused(self):
        payload = self.body(amount=2599)
        header = sign(payload, WEBHOOK_SECRET)

        with pytest.raises(WebhookSignatureError):
            verify_webhook(payload.replace(b"2599", b"1"), header, WEBHOOK_SECRET)

    def test_a_stale_signature_is_refused(self):
        payload = self.body()
        header = sign(payload, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)

        with pytest.raises(WebhookSignatureError, match="tolerance"):
            verify_webhook(payload, header, WEBHOOK_SECRET)

    @pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"id": "evt_\\u0000"}',
                                         b"[" * 1000 + b"]" * 1000])
    def test_a_signed_body_that_is_not_a_json_object_is_refused(self, payload):
        """Signed, so not a signature error: a payload Broker cannot read (strict JSON, broker.inputs)."""
        with pytest.raises(WebhookPayloadError):
            verify_webhook(payload, sign(payload, WEBHOOK_SECRET), WEBHOOK_SECRET)

    def test_a_signed_body_that_is_not_text_is_refused(self):
        payload = b"\xff\xfe"
        with pytest.raises(WebhookSignatureError):
            verify_webhook(payload, sign(payload, WEBHOOK_SECRET), WEBHOOK_SECRET)


class TestPaymentState:
    @pytest.mark.parametrize("status, error, expected", [
        ("requires_payment_method", None, "requires_action"),
        ("requires_payment_method", {"code": "card_declined"}, "failed"),
        ("requires_confirmation", None, "requires_action"),
        ("requires_action", None, "requires_action"),
        ("processing", None, "requires_action"),
        ("requires_capture", None, "authorized"),
        ("succeeded", None, "captured"),
        ("canceled", None, "released"),
        ("canceled", {"code": "card_declined"}, "failed"),
        ("some_future_status", None, "requires_action"),
    ])
    def test_maps_stripe_s_status(self, status, error, expected):
        intent = {"id": "pi_1", "status": status, "amount": 100, "last_payment_error": error, "latest_charge": None}

        assert payment_state(intent).status == expected

    def test_reads_an_unexpanded_charge_id(self):
        intent = {"id": "pi_1", "status": "succeeded", "amount": 100, "amount_received": 100,
                  "latest_charge": "ch_1"}

        assert payment_state(intent).charge_ref == "ch_1"


class TestChoosingTheProvider:
    @pytest.mark.parametrize("key, test_mode", [("sk_test_123", True), ("rk_test_123", True),
                                                ("sk_live_123", False)])
    def test_a_secret_key_means_stripe(self, key, test_mode):
        provider = make_payment_provider(stripe_settings("", key=key))
        try:
            assert isinstance(provider, StripeProvider)
            assert (provider.name, provider.test_mode) == ("stripe", test_mode)
        finally:
            provider.close()


    def test_an_api_base_with_a_trailing_slash_works(self, fake):
        provider = StripeProvider(stripe_settings(fake.url + "/"))
        try:
            authorize(provider)
        finally:
            provider.close()
        assert [r.path for r in fake.requests] == ["/v1/payment_intents"]


class TestTheFake:
    def test_parses_stripe_s_nested_form_keys(self):
        pairs = [("metadata[order_id]", "7"), ("capabilities[transfers][requested]", "true"),
                 ("expand[0]", "latest_charge"), ("expand[1]", "customer"), ("amount", "100")]

        assert parse_form(pairs) == {"metadata": {"order_id": "7"},
                                     "capabilities": {"transfers": {"requested": "true"}},
                                     "expand": ["latest_charge", "customer"], "amount": "100"}

    @pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer pk_test_123"}, {"Authorization": "sk_test_1"}])
    def test_refuses_a_request_without_a_secret_key(self, fake, headers):
        with requests.Session() as http:
            response = http.post(f"{fake.url}/v1/payment_intents", data={"amount": "1", "currency": "usd"},
                                 headers=headers)

        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert fake.payment_intents == {}

    def test_refuses_an_unknown_parameter(self, fake):
        with requests.Session() as http:
            response = http.post(f"{fake.url}/v1/payment_intents", headers={"Authorization": "Bearer sk_test_1"},
                                 data={"amount": "1", "currency": "usd", "captur_method": "manual"})

        assert response.status_code == 400
        assert response.json()["error"]["param"] == "captur_method"

    def test_confirm_places_the_hold(self, fake):
        with requests.Session() as http:
            auth = {"Authorization": "Bearer sk_test_1"}
            intent = http.post(f"{fake.url}/v1/payment_intents", headers=auth,
                               data={"amount": "100", "currency": "usd", "capture_method": "manual"}).json()
            confirmed = http.post(f"{fake.url}/v1/payment_intents/{intent['id']}/confirm", headers=auth).json()

        assert (confirmed["status"], confirmed["amount_capturable"]) == ("requires_capture", 100)

    def test_stops_and_frees_its_port(self):
        server = FakeStripe().start()
        url = server.url
        server.stop()

        with requests.Session() as http, pytest.raises(requests.ConnectionError):
            http.get(f"{url}/v1/accounts/acct_1", timeout=2)
