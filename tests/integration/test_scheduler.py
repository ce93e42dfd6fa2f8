"""The scheduler: jobs as data, catch-up after downtime, retries, and never in web processes."""

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import select

from broker.settlement.models import RunStatus, SettlementRun
from jobs.definitions import JOBS
from jobs.scheduler import MAX_RETRIES, build_scheduler, catch_up, run_job
from tests.conftest import START
from tests.factories import HERE, World, north_of


@pytest.fixture
def scheduler(ctx):
    sched = build_scheduler(ctx, background=True)  # never started: jobs are only inspected
    yield sched


class TestDefinitions:
    def test_every_job_has_a_stable_id_one_instance_and_coalescing(self, scheduler):
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {spec.id for spec in JOBS} == {"settlement", "deadlines", "payouts", "requests", "callbacks",
                                                              "emails", "digest", "retention", "accounts",
                                                              "delivered", "form-keys", "unrecorded-holds"}
        for job in jobs.values():
            assert job.max_instances == 1
            assert job.coalesce is True
            assert job.misfire_grace_time >= 300

    def test_settlement_follows_the_configured_cron_and_time_zone(self, ctx):
        import dataclasses

        la = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, settle_cron="30 1 * * *",
                                                                      timezone="America/Los_Angeles"))
        job = build_scheduler(la, background=True).get_job("settlement")
        fire = job.trigger.get_next_fire_time(None, datetime(2026, 7, 1, tzinfo=timezone.utc))
        assert fire.astimezone(timezone.utc) == datetime(2026, 7, 1, 8, 30, tzinfo=timezone.utc)  # 01:30 PDT


class TestCatchUp:
    def test_a_scheduler_that_was_down_at_settlement_time_settles_when_it_starts(self, ctx, clock, session):
        world = World(ctx)
        maker = world.manufacturer()
        shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
        from broker.settlement.services import settle

        clock.now = START - timedelta(days=1, hours=7)  # yesterday's 02:00 run
        settle(ctx, trigger="scheduled")
        placed = world.order(maker, when=START - timedelta(days=1))  # due at today's 02:00
        world.bid(shop, placed.order.id)
        clock.now = START  # 09:00 UTC: 02:00 passed with no scheduler running

        assert catch_up(ctx) == ["settlement"]
        run = session.scalar(select(SettlementRun).order_by(SettlementRun.id.desc()))
        assert (run.status, run.trigger, run.settled) == (RunStatus.COMPLETED, "scheduled", 1)
        assert catch_up(ctx) == []  # the missed run is done now

    def test_a_new_install_has_nothing_to_catch_up(self, ctx, clock):
        clock.now = START
        assert catch_up(ctx) == []

    def test_nothing_to_catch_up_when_the_last_run_completed(self, ctx, clock):
        from broker.settlement.services import settle

        clock.now = START.replace(hour=2, minute=0)
        settle(ctx, trigger="scheduled")
        clock.now = START
        assert catch_up(ctx) == []

    def test_a_sharded_scheduler_counts_only_runs_of_its_shard_or_of_everything(self, ctx, clock):
        from broker.settlement.services import missed_settlement, settle, settlement_scope

        maker = World(ctx).manufacturer()
        clock.now = START - timedelta(days=1)
        settle(ctx, trigger="scheduled")  # yesterday's: not a new install
        clock.now = START  # 09:00 UTC: today's 02:00 run is due
        due = START.replace(hour=2, minute=0)
        one, two = settlement_scope(ctx, shard="1/2"), settlement_scope(ctx, shard="2/2")

        settle(ctx, trigger="scheduled", scope=one)
        settle(ctx, trigger="manual", scope=settlement_scope(ctx, manufacturers=[maker.slug]))
        assert missed_settlement(ctx, START, one) is None
        assert missed_settlement(ctx, START, two) == due
        assert missed_settlement(ctx, START, settlement_scope(ctx, shard="1/3")) == due
        assert missed_settlement(ctx, START) == due  # neither a shard nor a manufacturer is everything
        settle(ctx, trigger="manual")
        assert [missed_settlement(ctx, START, scope) for scope in (one, two, None)] == [None, None, None]

    def test_a_sharded_scheduler_catches_up_its_own_shard(self, ctx, clock, session):
        import dataclasses

        from broker.settlement.services import settle

        world = World(ctx)
        makers = [world.manufacturer() for _ in range(2)]
        clock.now = START - timedelta(days=1, hours=7)  # yesterday's 02:00 run
        settle(ctx, trigger="scheduled")
        for maker in makers:
            world.order(maker, when=START - timedelta(days=1))  # due at today's 02:00
        clock.now = START
        sharded = dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, settle_shard="2/2"))

        assert catch_up(sharded) == ["settlement"]
        run = session.scalar(select(SettlementRun).order_by(SettlementRun.id.desc()))
        assert (run.status, run.trigger, run.scope) == (RunStatus.COMPLETED, "scheduled", "shard 2/2")
        assert run.settled == 1  # the one manufacturer with an odd id
        assert catch_up(sharded) == []
        assert catch_up(ctx) == ["settlement"]  # an unsharded scheduler waits for a run of everything
        run = session.scalar(select(SettlementRun).order_by(SettlementRun.id.desc()))
        assert (run.scope, run.settled) == (None, 1)


class TestRetries:
    def test_a_failed_job_is_retried_later_and_not_forever(self, ctx, scheduler, monkeypatch):
        import jobs.definitions as definitions

        spec = next(s for s in JOBS if s.id == "settlement")
        calls = []

        def failing(_ctx):
            calls.append(1)
            raise RuntimeError("database unavailable")

        failing_spec = definitions.JobSpec(id=spec.id, func=failing, trigger=spec.trigger)
        assert run_job(ctx, failing_spec, scheduler) is False
        retry = scheduler.get_job("settlement-retry")
        assert retry is not None
        assert retry.trigger.run_date == ctx.now() + timedelta(minutes=ctx.settings.job_retry_minutes)
        assert retry.args[-1] == 1
        scheduler.remove_job("settlement-retry")
        assert run_job(ctx, failing_spec, scheduler, attempt=MAX_RETRIES) is False
        assert scheduler.get_job("settlement-retry") is None
        assert len(calls) == 2


def test_web_processes_never_start_a_scheduler(ctx, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("a web process started a scheduler")

    monkeypatch.setattr(BaseScheduler, "start", refuse)
    from web.app import create_app

    app = create_app(context=ctx)
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/healthz").status_code == 200
