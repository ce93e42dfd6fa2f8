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
    broker storefront verify-domain SLUG   check that a store's custom domain points here
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import sys
from datetime import datetime
from pathlib import Path

import click

from broker.clock import as_utc
from broker.config import ConfigError, Settings
from broker.context import Context


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'


def _require_secret_key() -> None:
    """`broker serve` and `broker scheduler` run in production, where every process
    must sign alike: a key made up per process would sign each one's sessions and
    links differently, and none would survive a restart."""
    if not os.environ.get("BROKER_SECRET_KEY"):
        raise click.ClickException(
            "BROKER_SECRET_KEY is not set. It signs sessions, form tokens and the links in emails (password "
            "resets, invitations, unsubscribes), and the callbacks' default secret; every web and scheduler "
            f"process needs the same one, kept secret. Make one with:\n  {MAKE_A_KEY}\n"
            "and set it in the environment of every Broker process.")


def _one_machine_key(settings: Settings) -> dict[str, str]:
    """Without BROKER_SECRET_KEY, the one-machine commands (`broker run`, `demo`,
    `settle`, `user add`) on SQLite share one key kept beside the database
    (`broker.db.secret`, made on first use, readable by its owner only): links in
    emails written by one run still work in the next. Elsewhere the key must be
    set, as for `broker serve`. :return: the override for Settings, if any."""
    if os.environ.get("BROKER_SECRET_KEY"):
        return {}
    if not settings.is_sqlite:
        _require_secret_key()
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).database
    path = Path(f"{database}.secret" if database and database != ":memory:" else "broker.secret")
    if not path.exists():
        # Written whole under another name, then linked into place: a command
        # started at the same moment never reads half a key, and never replaces
        # the one that won.
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if not key:
        raise click.ClickException(f"{path} is empty: delete it (a new key is made), or set BROKER_SECRET_KEY")
    return {"secret_key": key}


def _keyed_settings(**overrides) -> Settings:
    settings = _settings(**overrides)
    return _settings(**overrides, **_one_machine_key(settings))


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


def _served_address(host: str, port: int) -> dict:
    """Without BROKER_PUBLIC_URL, the address actually served is Broker's public
    URL (email links and the printed links follow --port), and on a loopback or
    every-interface address `localhost` is answered too. Any other name must be
    BROKER_PUBLIC_URL's or in BROKER_ALLOWED_HOSTS."""
    if os.environ.get("BROKER_PUBLIC_URL"):
        return {}
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None:
        local = host == "localhost"
    else:
        local = address.is_loopback or address.is_unspecified
    shown = "127.0.0.1" if address is not None and address.is_unspecified else host
    if address is not None and address.version == 6 and not address.is_unspecified:
        shown = f"[{host}]"
    values: dict = {"public_url": f"http://{shown}:{port}"}
    if local and not os.environ.get("BROKER_ALLOWED_HOSTS"):
        values["allowed_hosts"] = ("localhost", "127.0.0.1")
    return values


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=lambda: int(os.environ.get("WEB_CONCURRENCY", "2")), type=int,
              help="gunicorn worker processes  [default: $WEB_CONCURRENCY or 2]")
@click.option("--access-logformat", "access_log_format", default=None, metavar="FORMAT",
              help="gunicorn's access_log_format (its atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(f)s'); "
                   "capability tokens are redacted from every atom")
def serve(host: str, port: int, workers: int, access_log_format: str | None) -> None:
    """Serve the web pages and the API with gunicorn (no scheduler: run `broker scheduler`)."""
    from gunicorn.app.base import BaseApplication

    from web.serving import RedactingLogger

    settings = _settings(**_served_address(host, port))
    _require_secret_key()
    _logging(settings)  # our own log lines (and Flask's error lines), redacted like the access log
    if not os.environ.get("BROKER_PUBLIC_URL"):
        click.echo(f"BROKER_PUBLIC_URL is not set: links are built on {settings.public_url}, and requests are "
                   f"answered for {', '.join(settings.trusted_hosts)} only. Set it to the address people use.",
                   err=True)
    _context(settings).engine.dispose()  # refuse to start on an unmigrated database

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")
            self.cfg.set("logger_class", RedactingLogger)
            if access_log_format:
                self.cfg.set("access_log_format", access_log_format)

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
    _require_secret_key()
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
    ctx = _context(_keyed_settings())

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
def tax() -> None:
    """Tax collected at checkout."""


@tax.command("report")
@click.option("--manufacturer", "slug", required=True, help="The manufacturer's storefront slug.")
@click.option("--from", "start", required=True, help="The period's start, ISO 8601 (a date is its midnight UTC).")
@click.option("--to", "end", required=True, help="The period's end, not included (ISO 8601).")
def tax_report(slug: str, start: str, end: str) -> None:
    """What was collected, refunded and is owed, by jurisdiction, for the period, as CSV."""
    from broker.errors import BrokerError
    from broker.tax.report import tax_report_for

    try:
        report = tax_report_for(_context(), slug, _parse_time(start), _parse_time(end))
    except BrokerError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(report.csv(), nl=False)


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
    ctx = _context(_keyed_settings())
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
    from broker.privacy.lookup import find_customer

    try:
        found = find_customer(_context(), email, reason)
    except BrokerError as exc:
        raise click.UsageError(exc.detail) from None
    for r in found:
        extra = f"  store {r.store}" if r.store else (f"  order {r.order_id}" if r.order_id else "")
        click.echo(f"{r.kind} {r.id}  {r.status}  {r.created_at:%Y-%m-%d}  {r.name}  {r.area}{extra}")
    click.echo(f"{len(found)} found; each lookup is in the customer's disclosure log")


@main.group()
def storefront() -> None:
    """Manufacturers' storefronts."""


@storefront.command("verify-domain")
@click.argument("slug")
def storefront_verify_domain(slug: str) -> None:
    """Check that the custom domain of the store SLUG points at this Broker (it
    must answer http://<domain>/.well-known/broker-domain/<token> with the store's
    token); if it does, the domain serves the store from now on."""
    from broker.auth import OPERATOR
    from broker.errors import BrokerError
    from broker.storefront.domains import verify_domain

    try:
        maker = verify_domain(_context(), OPERATOR, slug=slug)
    except BrokerError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"{maker.custom_domain} is verified: it serves the store {maker.slug}")


@main.command()
def demo() -> None:
    """Add the demo manufacturer, retailers and orders (once)."""
    from broker.demo import describe, seed

    keys = seed(_context(_keyed_settings()))
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
    from broker.urls import absolute_url
    from jobs.scheduler import build_scheduler, catch_up
    from web.app import create_app

    _logging()
    generated_token = not os.environ.get("BROKER_ADMIN_TOKEN")
    settings = _keyed_settings(**({"admin_token": secrets.token_urlsafe(24)} if generated_token else {}),
                               **_served_address(host, port))
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
    click.echo("")
    click.echo(f"Broker is running at {absolute_url(settings, '/')}")
    click.echo(f"  demo storefront  {absolute_url(settings, '/s/northwind/')}")
    click.echo(f"  API reference    {absolute_url(settings, '/api/v1/docs')}")
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
