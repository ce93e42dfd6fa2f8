"""People signing up, in and out: passwords, sessions, CSRF, rate limits,
password reset and colleagues by email, API keys from the account page, and
becoming a dealer."""

from __future__ import annotations

import os
import re

import itsdangerous.timed
import pytest
from sqlalchemy import select

from broker.accounts import applications, invitations
from broker.accounts.models import ApiKey, DealerAuthorisation, Role
from broker.errors import Invalid
from broker.identity import services as identity
from broker.identity.models import User
from broker.identity.passwords import hash_password, needs_rehash, verify_password
from broker.notifications.services import opted_out, unsubscribe_url
from tests.factories import HERE, World
from tests.pages import PASSWORD, delivered, link_in, outbox_link, post, sign_in, submit, user_for

SIGNUP = {"company": "Bay Bikes", "name": "Robin", "email": "Robin@Bay-Bikes.example", "password": PASSWORD,
          "store_name": "Mission St", "postal_code": "94103", "country": "US", "service_radius_km": "40"}


class TestPasswords:
    def test_hash_verifies_only_the_same_password(self):
        stored = hash_password("correct horse battery")
        assert verify_password("correct horse battery", stored)
        assert not verify_password("correct horse batterY", stored)
        assert not needs_rehash(stored)
        assert "correct" not in stored

    def test_two_hashes_of_one_password_differ(self):
        assert hash_password("same password!") != hash_password("same password!")

    @pytest.mark.parametrize("stored", [None, "", "md5$abc", "scrypt$x$y$z$a$b", "scrypt$16384$8$1$!!$!!"])
    def test_malformed_hashes_never_verify(self, stored):
        assert not verify_password("anything at all", stored)


class TestSignUp:
    def test_a_retailer_signs_up_and_is_signed_in_until_it_confirms_its_address(self, client, ctx):
        response = post(client, "/signup", SIGNUP, form="/signup")
        assert response.status_code == 302 and response.headers["Location"].endswith("/account/verify")
        with ctx.uow() as uow:
            user = uow.session.scalar(select(User))
            assert user.email == "robin@bay-bikes.example" and user.role == Role.RETAILER
            assert user.password_hash.startswith("scrypt$") and PASSWORD not in user.password_hash
            assert user.verified_at is None
        page = client.get("/account/verify").get_data(as_text=True)
        assert "Check your email" in page and "robin@bay-bikes.example" in page
        assert client.get("/account").headers["Location"].endswith("/account/verify")
        path = outbox_link(ctx, "robin@bay-bikes.example", "/verify/")
        assert post(client, path, form=path).headers["Location"].endswith("/portal/dealers")
        assert client.get("/account").status_code == 200

    @pytest.mark.parametrize("field,value,message", [
        ("email", "not-an-email", "not an email address we can write to"),
        ("password", "short", "at least 10"),
        ("password", "robin@bay-bikes.example", "not be your email"),
        ("postal_code", "00000", "postal"),
        ("service_radius_km", "0", "more than 0"),
        ("service_radius_km", "lots", "more than 0"),
        ("company", "  ", "must not be blank"),
    ])
    def test_bad_input_is_shown_next_to_the_field_and_nothing_is_written(self, client, ctx, field, value, message):
        response = post(client, "/signup", {**SIGNUP, field: value}, form="/signup")
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
        with ctx.uow() as uow:
            assert uow.session.scalar(select(User)) is None

    def test_a_verified_email_signs_up_once(self, client, app, ctx):
        post(client, "/signup", SIGNUP, form="/signup")
        path = outbox_link(ctx, "robin@bay-bikes.example", "/verify/")
        post(client, path, form=path)
        other = app.test_client()
        response = post(other, "/signup", {**SIGNUP, "email": "robin@BAY-bikes.example"}, form="/signup")
        assert response.status_code == 422 and "already has an account" in response.get_data(as_text=True)


class TestSignIn:
    @pytest.fixture
    def retailer(self, ctx):
        shop = World(ctx).retailer(HERE)
        return user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")

    def test_right_password_signs_in_and_goes_to_the_portal(self, client, retailer):
        response = sign_in(client, "KIM@shop.example")
        assert response.headers["Location"].endswith("/portal/")
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie

    @pytest.mark.parametrize("email,password", [("kim@shop.example", "wrong password"),
                                                ("nobody@shop.example", PASSWORD), ("", "")])
    def test_wrong_email_or_password_says_the_same_either_way(self, client, retailer, email, password):
        response = post(client, "/signin", {"email": email, "password": password})
        assert response.status_code == 401
        assert "wrong email or password" in response.get_data(as_text=True)
        assert client.get("/account").status_code == 302

    def test_signing_in_is_rate_limited_per_account(self, client, retailer, app):
        for _ in range(5):
            assert post(client, "/signin", {"email": "kim@shop.example", "password": "guess guess"}).status_code == 401
        assert post(client, "/signin", {"email": "kim@shop.example", "password": PASSWORD}).status_code == 429
        # Another account from the same address is still allowed (the per-address limit is higher).
        assert post(client, "/signin", {"email": "other@shop.example", "password": "x"}).status_code == 401

    def test_successful_sign_ins_use_up_no_limit(self, client, retailer):
        for _ in range(12):  # more than either limit allows in a minute
            signed = post(client, "/signin", {"email": "kim@shop.example", "password": PASSWORD})
            assert signed.status_code == 302
            post(client, "/signout", form="/account")
        # Failures still count, from the first.
        for _ in range(5):
            assert post(client, "/signin", {"email": "kim@shop.example", "password": "guess guess"}).status_code == 401
        assert post(client, "/signin", {"email": "kim@shop.example", "password": PASSWORD}).status_code == 429

    def test_signing_in_is_rate_limited_per_address(self, client, retailer):
        for n in range(10):
            post(client, "/signin", {"email": f"guess{n}@shop.example", "password": "guess guess"})
        assert post(client, "/signin", {"email": "kim@shop.example", "password": PASSWORD}).status_code == 429

    def test_a_form_without_the_csrf_token_is_refused(self, client, retailer):
        client.get("/signin")
        response = client.post("/signin", data={"email": "kim@shop.example", "password": PASSWORD})
        assert response.status_code == 400
        sign_in(client, "kim@shop.example")
        assert client.post("/account/keys", data={"csrf_token": "forged"}).status_code == 400

    def test_next_only_goes_to_a_path_on_this_site(self, client, retailer):
        for target, expected in [("/account", "/account"), ("https://evil.example/", "/portal/"),
                                 ("//evil.example/x", "/portal/"), ("/\\evil.example", "/portal/")]:
            response = post(client, "/signin", {"email": "kim@shop.example", "password": PASSWORD, "next": target})
            assert response.headers["Location"].endswith(expected), target
            post(client, "/signout", form="/account")

    def test_signing_out_ends_the_session(self, client, retailer):
        sign_in(client, "kim@shop.example")
        post(client, "/signout", form="/account")
        assert client.get("/account").status_code == 302

    def test_pages_need_a_session_and_send_strict_headers(self, client, retailer):
        assert client.get("/account").headers["Location"].startswith("/signin?next=/account")
        sign_in(client, "kim@shop.example")
        page = client.get("/account")
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
        assert page.headers["X-Content-Type-Options"] == "nosniff"


class TestPasswordChanges:
    def test_reset_by_email_works_once_and_signs_out_other_sessions(self, app, client, ctx, mail_dir):
        shop = World(ctx).retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")
        elsewhere = app.test_client()
        sign_in(elsewhere, "kim@shop.example")
        post(client, "/password/forgot", {"email": "kim@shop.example"}, form="/password/forgot")
        post(client, "/password/forgot", {"email": "nobody@shop.example"}, form="/password/forgot")
        reset = [m for m in delivered(ctx, mail_dir) if m["Subject"] == "Reset your Broker password"]
        assert [m["To"] for m in reset] == ["kim@shop.example"]  # nobody@ got nothing, and was told nothing
        path = link_in(reset[0], "/password/reset/")
        response = submit(client, path, {"password": "a brand new one", "confirm": "a brand new one"})
        assert response.status_code == 302
        assert post(client, path, {"password": "yet another one", "confirm": "yet another one"},
                    form="/account").status_code == 422
        assert elsewhere.get("/account").status_code == 302  # the old session ended
        client2 = app.test_client()
        assert post(client2, "/signin", {"email": "kim@shop.example", "password": PASSWORD}).status_code == 401
        sign_in(client2, "kim@shop.example", "a brand new one")

    def test_a_reset_link_expires_after_two_hours(self, ctx, mail_dir, monkeypatch):
        shop = World(ctx).retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")
        identity.request_password_reset(ctx, "kim@shop.example")
        token = link_in([m for m in delivered(ctx, mail_dir) if "Reset" in m["Subject"]][0],
                        "/password/reset/").rsplit("/", 1)[1]
        real = itsdangerous.timed.TimestampSigner.get_timestamp
        monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp",
                            lambda self: real(self) + identity.RESET_HOURS * 3600 + 60)
        with pytest.raises(Invalid):
            identity.reset_password(ctx, token, "a brand new one")

    def test_changing_the_password_keeps_this_session_and_ends_the_others(self, app, client, ctx):
        shop = World(ctx).retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")
        other = app.test_client()
        sign_in(other, "kim@shop.example")
        sign_in(client, "kim@shop.example")
        response = post(client, "/account/password", {"current_password": PASSWORD, "new_password": "new password 1",
                                                       "confirm": "new password 1"}, form="/account")
        assert response.status_code == 302
        assert client.get("/account").status_code == 200
        assert other.get("/account").status_code == 302

    def test_a_wrong_current_password_changes_nothing(self, client, ctx):
        shop = World(ctx).retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")
        sign_in(client, "kim@shop.example")
        response = post(client, "/account/password", {"current_password": "not it at all", "new_password":
                                                       "new password 1", "confirm": "new password 1"}, form="/account")
        assert response.status_code == 422 and "is not your current password" in response.get_data(as_text=True)


class TestColleaguesAndKeys:
    def test_a_colleague_is_invited_by_email_and_sets_a_password(self, app, client, ctx, mail_dir):
        shop = World(ctx).retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")
        sign_in(client, "kim@shop.example")
        response = post(client, "/account/users", {"email": "lee@shop.example", "name": "Lee"}, form="/account")
        assert response.status_code == 302
        welcome = [m for m in delivered(ctx, mail_dir) if m["To"] == "lee@shop.example"]
        assert len(welcome) == 1 and "added you to" in welcome[0]["Subject"]
        path = link_in(welcome[0], "/password/reset/")
        lee = app.test_client()
        assert submit(lee, path, {"password": "lee's password", "confirm": "lee's password"}).status_code == 302
        assert lee.get("/portal/").status_code == 200

    def test_removing_a_colleague_ends_their_access(self, app, client, ctx):
        shop = World(ctx).retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")
        lee = user_for(ctx, Role.RETAILER, shop.id, "lee@shop.example", "Lee")
        lee_client = app.test_client()
        sign_in(lee_client, "lee@shop.example")
        sign_in(client, "kim@shop.example")
        assert post(client, f"/account/users/{lee.user_id}/remove", form="/account").status_code == 302
        assert lee_client.get("/account").status_code == 302

    def test_another_companys_user_cannot_be_removed(self, client, ctx):
        world = World(ctx)
        mine, theirs = world.retailer(HERE), world.retailer(HERE)
        user_for(ctx, Role.RETAILER, mine.id, "kim@shop.example")
        stranger = user_for(ctx, Role.RETAILER, theirs.id, "sam@other.example")
        sign_in(client, "kim@shop.example")
        assert post(client, f"/account/users/{stranger.user_id}/remove", form="/account").status_code == 404

    def test_an_api_key_is_shown_once_works_and_can_be_revoked(self, client, ctx):
        shop = World(ctx).retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")
        sign_in(client, "kim@shop.example")
        page = post(client, "/account/keys", form="/account").get_data(as_text=True)
        key = re.search(r'<code class="secret">(bk_r_[^<]+)</code>', page).group(1)
        auth = {"Authorization": f"Bearer {key}"}
        assert client.get("/api/v1/board", headers=auth).status_code == 200
        assert key not in client.get("/account").get_data(as_text=True)  # never shown again
        with ctx.uow() as uow:
            key_id = uow.session.scalar(select(ApiKey.id).where(ApiKey.prefix == key[:10]))
        assert post(client, f"/account/keys/{key_id}/revoke", form="/account").status_code == 302
        assert client.get("/api/v1/board", headers=auth).status_code == 401

    def test_a_key_of_another_company_cannot_be_revoked(self, client, ctx):
        world = World(ctx)
        mine, theirs = world.retailer(HERE), world.retailer(HERE)
        user_for(ctx, Role.RETAILER, mine.id, "kim@shop.example")
        with ctx.uow() as uow:
            their_key = uow.session.scalar(select(ApiKey.id).where(ApiKey.retailer_id == theirs.id))
        sign_in(client, "kim@shop.example")
        assert post(client, f"/account/keys/{their_key}/revoke", form="/account").status_code == 404
        assert client.get("/api/v1/board", headers={"Authorization": f"Bearer {theirs.key}"}).status_code == 200


class TestBecomingADealer:
    def test_a_retailer_applies_and_the_manufacturer_approves(self, ctx, mail_dir):
        world = World(ctx)
        maker = world.manufacturer()
        user_for(ctx, Role.MANUFACTURER, maker.id, "sales@maker.example")
        shop = world.retailer(HERE)
        kim = user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example", "Kim")
        application = applications.apply(ctx, kim, maker.id, "We stock your range")
        asked = [m for m in delivered(ctx, mail_dir) if m["To"] == "sales@maker.example" and "asks" in m["Subject"]]
        assert len(asked) == 1 and "We stock your range" in asked[0].get_body(preferencelist=("plain",)).get_content()
        pending = applications.list_applications(ctx, maker.actor)
        assert [(a.retailer_id, a.note, a.applicant_email, a.applicant_verified) for a in pending] == [
            (shop.id, "We stock your range", "kim@shop.example", True)]
        # The retailer cannot approve itself.
        with pytest.raises(Exception) as refused:
            applications.decide(ctx, shop.actor, application.id, True)
        assert getattr(refused.value, "status", None) == 403
        applications.decide(ctx, maker.actor, application.id, True)
        with ctx.uow() as uow:
            assert uow.session.scalar(select(DealerAuthorisation.retailer_id).where(
                DealerAuthorisation.manufacturer_id == maker.id)) == shop.id
        assert [c.status for c in applications.manufacturers_for(ctx, shop.actor) if c.id == maker.id] == ["authorised"]

    def test_an_invitation_by_email_makes_a_new_retailer_a_dealer_at_sign_up(self, client, ctx, mail_dir):
        maker = World(ctx).manufacturer()
        applications_sent = invitations.invite(ctx, maker.actor, "new@retail.example")
        assert applications_sent.email == "new@retail.example"
        invitation = [m for m in delivered(ctx, mail_dir) if m["To"] == "new@retail.example"][0]
        path = link_in(invitation, "/invitations/")
        response = post(client, f"{path}/signup", {**SIGNUP, "email": "new@retail.example"}, form=path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/portal/")
        with ctx.uow() as uow:
            user = uow.session.scalar(select(User).where(User.email == "new@retail.example"))
            assert user.verified_at is not None  # the link proved the address
            assert uow.session.scalar(select(DealerAuthorisation.id).where(
                DealerAuthorisation.retailer_id == user.retailer_id, DealerAuthorisation.manufacturer_id == maker.id))
        assert client.get("/portal/").status_code == 200

    def test_an_invitation_signs_up_only_the_address_it_was_sent_to(self, client, ctx, mail_dir):
        maker = World(ctx).manufacturer()
        invitations.invite(ctx, maker.actor, "new@retail.example")
        path = link_in(delivered(ctx, mail_dir)[0], "/invitations/")
        response = post(client, f"{path}/signup", {**SIGNUP, "email": "someone.else@retail.example"}, form=path)
        assert response.status_code == 422 and "was sent to new@retail.example" in response.get_data(as_text=True)
        with ctx.uow() as uow:
            assert uow.session.scalar(select(User)) is None


class TestUnsubscribe:
    def test_get_asks_and_post_unsubscribes(self, client, ctx):
        path = "/" + unsubscribe_url(ctx, "kim@shop.example", "digest").split("/", 3)[3]
        assert client.get(path, follow_redirects=True).status_code == 200
        with ctx.uow() as uow:
            assert not opted_out(uow.session, "kim@shop.example", "digest")
        assert submit(client, path).status_code == 200  # the page's own form, on /unsubscribe
        with ctx.uow() as uow:
            assert opted_out(uow.session, "KIM@shop.example", "digest")

    def test_one_click_unsubscribe_posts_to_the_link(self, client, ctx):
        path = "/" + unsubscribe_url(ctx, "kim@shop.example", "digest").split("/", 3)[3]
        assert client.post(path).status_code == 200  # one-click: no CSRF token from a mail client
        with ctx.uow() as uow:
            assert opted_out(uow.session, "KIM@shop.example", "digest")
        assert client.post(path[:-3] + "xyz").status_code == 422


class TestPostingLimits:
    def test_posting_requests_is_rate_limited_per_address_and_only_there(self, client, ctx):
        body = {"description": "a bell", "quantity": 1, "max_price": 1000, "currency": "USD",
                "location": {"postal_code": "94103", "country": "US"},
                "ship_to": {"name": "G", "line1": "1 Main St", "city": "SF", "postal_code": "94103", "country": "US"}}
        statuses = [client.post("/api/v1/requests", json=body).status_code for _ in range(11)]
        assert statuses[:10] == [201] * 10 and statuses[10] == 429
        assert client.post("/api/v1/requests", json=body, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 201
        # Other endpoints keep their own counts.
        maker = World(ctx).manufacturer("limits")
        order = {"items": [{"sku": "SKU-1", "quantity": 1}], "customer": {"name": "A", "email": "a@example.com"},
                 "ship_to": {"line1": "1 Main St", "city": "SF", "postal_code": "94103", "country": "US"}}
        assert client.post(f"/api/v1/storefronts/{maker.slug}/orders", json=order).status_code == 201

    def test_limited_answers_say_their_limit_and_the_others_say_nothing(self, client, ctx):
        body = {"description": "a bell", "quantity": 1, "max_price": 1000, "currency": "USD",
                "location": {"postal_code": "94103", "country": "US"},
                "ship_to": {"name": "G", "line1": "1 Main St", "city": "SF", "postal_code": "94103", "country": "US"}}
        answers = [client.post("/api/v1/requests", json=body) for _ in range(11)]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers[:3]] == ["9", "8", "7"]
        assert answers[0].headers["X-RateLimit-Limit"] == "10"
        refused = answers[10]
        assert refused.status_code == 429 and refused.headers["X-RateLimit-Remaining"] == "0"
        assert int(refused.headers["Retry-After"]) > 0
        # An endpoint without limits, after a limited one in the same process, says nothing of them.
        maker = World(ctx).manufacturer("unlimited")
        page = client.get(f"/s/{maker.slug}/")
        assert page.status_code == 200
        assert not [name for name in page.headers.keys() if name.startswith("X-RateLimit")]


class TestSharedRateLimits:
    """With BROKER_REDIS_URL every web process counts in one place: five failed
    sign-ins spread over two processes lock the account in both."""

    def test_two_processes_share_their_counts_through_redis(self, ctx):
        import dataclasses
        import uuid

        import redis

        from web.app import create_app

        url = "redis://127.0.0.1:6379/15"
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        except redis.exceptions.ConnectionError:
            if os.environ.get("BROKER_REQUIRE_REDIS") == "1":
                raise
            pytest.skip("no Redis at 127.0.0.1:6379 (CI has one, and requires it)")
        shared = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, redis_url=url))
        prefix = f"test-{uuid.uuid4().hex}"
        one, two = (create_app(context=shared, test_config={"TESTING": True, "RATELIMIT_KEY_PREFIX": prefix})
                    .test_client() for _ in range(2))
        shop = World(ctx).retailer(HERE)
        user_for(ctx, Role.RETAILER, shop.id, "kim@shop.example")
        for client in (one, two, one, two, one):
            assert post(client, "/signin", {"email": "kim@shop.example", "password": "guess guess"}).status_code == 401
        assert post(two, "/signin", {"email": "kim@shop.example", "password": PASSWORD}).status_code == 429
