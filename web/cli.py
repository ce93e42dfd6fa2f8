"""The `broker` command: the operator's way in.

    broker db upgrade          apply the migrations
    broker serve               web and API processes (gunicorn), for production
    broker scheduler [--shard K/N]   the scheduler process, for production
    broker run                 everything in one process on SQLite, with demo data
    broker settle [--shard K/N | --manufacturer SLUG ...]   settle now and print the report
    broker demo                add the demo data
    broker emails send         send the due emails now
    broker user add EMAIL      an account for a manufacturer's or retailer's person
    broker customer find EMAIL --reason WHY   a customer's orders and requests (logged for them)
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from datetime import datetime

import click

from broker.clock import as_utc
from broker.config import ConfigError, Settings
from broker.context import Context


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _context(settings: Settings | None = None, *, migrated: bool = True) -> Context:
    ctx = Context.from_settings(settings or _settings())
    if migrated:
        from broker.migrate import pending

        problem = pending(ctx.engine)
        if problem:
            raise click.ClickException(problem)
    return ctx


def _logging(settings: Settings | None = None) -> None:
    from broker.logs import configure

    configure((settings or _settings()).log_format)


def _shard(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """`--shard K/N`, checked as BROKER_SETTLE_SHARD is."""
    from broker.settlement.scope import parse_shard

    if value is None:
        return None
    try:
        parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


SHARD_HELP = ("settle only shard K of N of the manufacturers (their ids modulo N); "
              "N hosts with 1/N ... N/N settle everything once")


@click.group()
def main() -> None:
    """Broker: a reverse-marketplace order broker."""


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations."""
    from broker.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at {_safe_url(settings.database_url)} is at {revision}")


@db.command("check")
def db_check() -> None:
    """Fail if the models and the migrations disagree, or the migrations have several heads."""
    from broker.migrate import check, heads

    found = heads()
    if len(found) != 1:
        raise click.ClickException(f"the migrations have {len(found)} heads: {', '.join(found)}")
    check(_settings().database_url)
    click.echo("models and migrations agree; one head")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=lambda: int(os.environ.get("WEB_CONCURRENCY", "2")), type=int,
              help="gunicorn worker processes  [default: $WEB_CONCURRENCY or 2]")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web pages and the API with gunicorn (no scheduler: run `broker scheduler`)."""
    from gunicorn.app.base import BaseApplication

    settings = _settings()
    _context(settings).engine.dispose()  # refuse to start on an unmigrated database

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")

        def load(self):
            # Each worker builds its own app and connection pool after the fork.
            from web.app import create_app

            return create_app(settings)

    Server().run()


@main.command()
@click.option("--shard", callback=_shard, metavar="K/N", help=SHARD_HELP + "  [default: $BROKER_SETTLE_SHARD]")
def scheduler(shard: str | None) -> None:
    """Run the scheduled jobs (settlement, ...) in this process until stopped.

    Safe to run on more than one host: each job claims its work in the database.
    """
    from jobs.scheduler import build_scheduler, catch_up

    settings = _settings(**({"settle_shard": shard} if shard else {}))
    _logging(settings)
    ctx = _context(settings)
    catch_up(ctx)
    sched = build_scheduler(ctx, background=False)
    for job in sched.get_jobs():
        click.echo(f"job {job.id}: {job.trigger}")
    if settings.settle_shard:
        click.echo(f"settlement takes shard {settings.settle_shard.strip()} of the manufacturers")
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass


@main.command()
@click.option("--as-of", "as_of", help="settle as at this ISO 8601 time (default: now)")
@click.option("--dry-run", is_flag=True, help="print what would be decided; write nothing")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--shard", callback=_shard, metavar="K/N", help=SHARD_HELP)
@click.option("--manufacturer", "manufacturers", multiple=True, metavar="SLUG",
              help="settle only this manufacturer's listings (repeat it for several)")
def settle(as_of: str | None, dry_run: bool, as_json: bool, shard: str | None, manufacturers: tuple[str, ...]) -> None:
    """Settle every due listing now (or a shard's, or some manufacturers') and print the report."""
    from broker.errors import BrokerError
    from broker.settlement.services import settle as run_settle
    from broker.settlement.services import settlement_scope

    if shard and manufacturers:
        raise click.UsageError("give --shard or --manufacturer, not both")
    moment = _parse_time(as_of) if as_of else None
    ctx = _context()

    def progress(report) -> None:
        click.echo(f"  ... {report.settled} listings settled", err=True)

    try:
        scope = settlement_scope(ctx, shard=shard, manufacturers=manufacturers)
        report = run_settle(ctx, as_of=moment, trigger="manual", dry_run=dry_run, progress=progress, scope=scope)
    except BrokerError as exc:
        raise click.ClickException(exc.detail) from None
    summary = {
        "run_id": report.run_id, "dry_run": report.dry_run, "as_of": report.as_of.isoformat(),
        "scope": report.scope, "settled": report.settled, "to_retailers": report.to_retailers,
        "to_manufacturer": report.to_manufacturer, "by_rule": report.by_rule, "seconds": round(report.seconds, 3),
        "parked": sorted(report.parked),
    }
    if dry_run:
        summary["plan"] = report.decisions
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    title = "Settlement plan (dry run, nothing written)" if dry_run else f"Settlement run {report.run_id}"
    click.echo(f"{title} as of {summary['as_of']}" + (f", {report.scope}" if report.scope else ""))
    click.echo(f"  settled {report.settled}: {report.to_retailers} to retailers, "
               f"{report.to_manufacturer} to manufacturers, in {summary['seconds']}s")
    for rule, count in sorted(report.by_rule.items()):
        click.echo(f"  {rule}: {count}")
    if report.parked:
        click.echo(f"  parked {len(report.parked)} listings it could not settle: "
                   f"{', '.join(map(str, sorted(report.parked)))} (see `broker jobs parked`)")
    for d in report.decisions:
        who = f"retailer {d['retailer_id']} at {d['distance_km']} km" if d["retailer_id"] else "the manufacturer"
        click.echo(f"  listing {d['listing_id']} -> {who} ({d['rule']})")


def _parse_time(text: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time, e.g. 2026-01-31T02:00:00Z") from None


@main.group()
def ledger() -> None:
    """The double-entry ledger."""


@ledger.command("check")
def ledger_check() -> None:
    """Prove the ledger balances and agrees with the recorded payments and payouts."""
    from broker.ledger.services import check

    ctx = _context()
    with ctx.uow() as uow:
        result = check(uow.session)
    click.echo(f"{result.transactions} transactions, {result.entries} entries")
    for txn in result.unbalanced_transactions:
        click.echo(f"  transaction {txn} does not balance")
    for currency, total in result.unbalanced_currencies.items():
        click.echo(f"  {currency} entries sum to {total}, not 0")
    for what, in_ledger, recorded in result.mismatches:
        click.echo(f"  {what}: ledger says {in_ledger}, payments say {recorded}")
    if not result.ok:
        raise click.ClickException("the ledger does not reconcile")
    click.echo("the ledger balances and reconciles with the payments")


@main.group()
def payouts() -> None:
    """Paying fulfillers."""


@payouts.command("run")
def payouts_run() -> None:
    """Pay out every accrued earning whose fulfiller has a ready account."""
    from broker.payouts.services import run_payouts

    report = run_payouts(_context())
    amounts = ", ".join(f"{amount} {currency}" for currency, amount in sorted(report.amount.items())) or "nothing"
    click.echo(f"{report.payouts} payouts: {amounts}; {report.failed} failed (retried next run); "
               f"{report.parked} parked" + (" (see `broker jobs parked`)" if report.parked else ""))


@main.group()
def jobs() -> None:
    """Rows the scheduled jobs could not get through (broker.parking)."""


@jobs.command("parked")
def jobs_parked() -> None:
    """List the parked rows: each failed too often and waits for you; fix the cause, then `broker jobs retry`."""
    from broker.parking.services import list_parked

    found = list_parked(_context())
    for row in found:
        click.echo(f"{row.id}  job {row.job}  {row.row_kind} {row.row_id}  {row.attempts} attempts  "
                   f"first failed {row.first_failed_at:%Y-%m-%d %H:%M:%S}  "
                   f"last {row.last_failed_at:%Y-%m-%d %H:%M:%S} UTC"
                   f"\n    {row.last_error}")
    click.echo(f"{len(found)} parked" + ("; put them back with `broker jobs retry ID` or `--all`" if found else ""))


@jobs.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="put back every parked row")
def jobs_retry(ids: tuple[int, ...], every: bool) -> None:
    """Put parked rows back (by the IDs `broker jobs parked` shows, or --all): their jobs try them again at
    their next run, with a fresh count of attempts."""
    from broker.errors import BrokerError
    from broker.parking.services import put_back

    if bool(ids) == every:
        raise click.UsageError("give the IDs of parked rows, or --all")
    try:
        count = put_back(_context(), None if every else list(ids))
    except BrokerError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"{count} put back; their jobs try them at their next run")


@main.group()
def user() -> None:
    """People who sign in to the portal and the console."""


@user.command("add")
@click.option("--manufacturer", "manufacturer", help="the manufacturer's slug")
@click.option("--retailer", "retailer_id", type=int, help="the retailer's id")
@click.option("--name", default="", help="the person's name")
@click.argument("email")
def user_add(manufacturer: str | None, retailer_id: int | None, name: str, email: str) -> None:
    """Give a manufacturer (its first user, say) or a retailer an account: prints
    the link to set the password, which is also emailed."""
    from sqlalchemy import select

    from broker.accounts.models import Manufacturer, Role
    from broker.errors import BrokerError
    from broker.identity.services import add_user

    if (manufacturer is None) == (retailer_id is None):
        raise click.UsageError("give --manufacturer SLUG or --retailer ID")
    ctx = _context()
    if manufacturer is not None:
        with ctx.uow() as uow:
            company_id = uow.session.scalar(select(Manufacturer.id).where(Manufacturer.slug == manufacturer))
        if company_id is None:
            raise click.ClickException(f"no manufacturer {manufacturer!r}")
        role = Role.MANUFACTURER
    else:
        role, company_id = Role.RETAILER, retailer_id
    try:
        created, link = add_user(ctx, role=role, company_id=company_id, email=email, name=name)
    except BrokerError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"user {created.id} ({created.email}) added; set the password within 14 days at:\n{link}")


@main.group()
def emails() -> None:
    """Email notifications."""


@emails.command("send")
def emails_send() -> None:
    """Send every due email now (what the `emails` job does every minute)."""
    from broker.notifications.delivery import deliver_emails

    report = deliver_emails(_context())
    click.echo(f"{report.sent} emails sent; {report.failed} failed (retried later); {report.parked} parked"
               + (" (see `broker jobs parked`)" if report.parked else ""))


@main.group()
def customer() -> None:
    """Customers' data, for answering a customer (or the law)."""


@customer.command("find")
@click.option("--reason", required=True, help="why you look (the customer sees it in their disclosure log)")
@click.argument("email")
def customer_find(reason: str, email: str) -> None:
    """List the orders and requests of the customer with this EMAIL; each lookup is
    written to that customer's disclosure log with the reason."""
    from broker.errors import BrokerError
    from broker.privacy.services import find_customer

    try:
        found = find_customer(_context(), email, reason)
    except BrokerError as exc:
        raise click.UsageError(exc.detail) from None
    for r in found:
        extra = f"  store {r.store}" if r.store else (f"  order {r.order_id}" if r.order_id else "")
        click.echo(f"{r.kind} {r.id}  {r.status}  {r.created_at:%Y-%m-%d}  {r.name}  {r.area}{extra}")
    click.echo(f"{len(found)} found; each lookup is in the customer's disclosure log")


@main.command()
def demo() -> None:
    """Add the demo manufacturer, retailers and orders (once)."""
    from broker.demo import describe, seed

    keys = seed(_context())
    if keys is None:
        click.echo("the demo data is there already")
        return
    _save_demo_keys(describe(keys))
    click.echo(describe(keys))


def _save_demo_keys(text: str) -> None:
    with open("broker-demo.txt", "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Everything in one process for trying Broker on one machine: the database
    (SQLite unless DATABASE_URL says otherwise), demo data the first time, the web
    pages and API, and the daily settlement."""
    from werkzeug.serving import make_server

    from broker.demo import describe, seed
    from broker.migrate import upgrade
    from jobs.scheduler import build_scheduler, catch_up
    from web.app import create_app

    _logging()
    generated_token = not os.environ.get("BROKER_ADMIN_TOKEN")
    settings = _settings(**({"admin_token": secrets.token_urlsafe(24)} if generated_token else {}))
    click.echo(f"Database: {_safe_url(settings.database_url)}")
    with click.progressbar(length=2, label="Preparing the database") as bar:
        upgrade(settings.database_url)
        bar.update(1)
        ctx = _context(settings)
        keys = seed(ctx, say=lambda _msg: None)
        bar.update(1)
    if keys is not None:
        _save_demo_keys(describe(keys))
        click.echo(describe(keys))
    else:
        click.echo("Demo data: already there (keys in broker-demo.txt)")
    catch_up(ctx)
    sched = build_scheduler(ctx, background=True)
    sched.start()
    app = create_app(context=ctx)
    server = make_server(host, port, app, threaded=True)
    base = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"Broker is running at {base}/")
    click.echo(f"  demo storefront  {base}/s/northwind/")
    click.echo(f"  API reference    {base}/api/v1/docs")
    if generated_token:
        click.echo(f"  operator token   {settings.admin_token}  (set BROKER_ADMIN_TOKEN to choose your own)")
    click.echo(f"  settlement       daily at '{settings.settle_cron}' ({settings.timezone}); "
               "run `broker settle` to settle now")
    click.echo("Press Ctrl+C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sched.shutdown(wait=False)
        click.echo("stopped")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
