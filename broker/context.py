"""The composition root: settings, database, and the external systems' adapters.

Built once per process by whoever runs Broker (the app factory, the CLI, the
scheduler, a test) and handed to every service. Nothing here runs at import time.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

import broker.models  # noqa: F401  (every mapper is configured before any session flushes)
from broker.clock import Clock, utcnow
from broker.config import Settings
from broker.db import make_engine, make_session_factory
from broker.geo.geocoding import Geocoder, make_geocoder
from broker.notifications.mailer import Mailer, make_mailer
from broker.payments.factory import make_payment_provider
from broker.payments.provider import PaymentProvider
from broker.storefront.cache import PageCache
from broker.tax.factory import make_tax_provider
from broker.tax.provider import TaxProvider
from broker.storefront.hosts import DomainCheck, DomainDirectory, HttpDomainCheck
from broker.uow import UnitOfWork


@dataclasses.dataclass
class Context:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker
    geocoder: Geocoder
    payments: PaymentProvider
    clock: Clock = utcnow
    mailer: Mailer | None = None  # None: made from the settings when first needed
    # Sessions for `read`; None: the same as `uow`'s.
    read_session_factory: sessionmaker | None = None
    # The storefront's rendered pages in this process; None: made when first needed.
    page_cache: PageCache | None = None
    # The stores' verified domains, for the host check; None: made when first needed.
    domain_directory: DomainDirectory | None = None
    # Fetches a custom domain's challenge URL; None: HttpDomainCheck from the settings.
    domain_checker: DomainCheck | None = None
    # Computes tax at checkout; None: made from the settings when first needed.
    tax: TaxProvider | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: Engine | None = None, **overrides) -> "Context":
        engine = engine or make_engine(settings.database_url)
        sessions = overrides.pop("session_factory", None)
        values = dict(
            settings=settings,
            engine=engine,
            session_factory=sessions or make_session_factory(engine),
            # Given sessions (bound to a test's transaction, say), reads use them too.
            read_session_factory=overrides.pop("read_session_factory", None) or (
                None if sessions else _read_session_factory(engine)),
            geocoder=overrides.pop("geocoder", None) or make_geocoder(settings.geocoder, dict(settings.geocoder_options)),
            payments=overrides.pop("payments", None) or make_payment_provider(settings),
            mailer=overrides.pop("mailer", None) or make_mailer(settings),
        )
        values.update(overrides)
        return cls(**values)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def read(self) -> UnitOfWork:
        """A unit of work for a single read statement, such as checking an API
        key: on PostgreSQL without a transaction around it, which saves the
        BEGIN and ROLLBACK round trips every API call paid. Nothing written in
        it can be committed; several statements in it see different moments."""
        return UnitOfWork(self.read_session_factory or self.session_factory)

    def email(self) -> Mailer:
        if self.mailer is None:
            self.mailer = make_mailer(self.settings)
        return self.mailer

    def taxes(self) -> TaxProvider:
        if self.tax is None:
            self.tax = make_tax_provider(self.settings)
        return self.tax

    def now(self):
        return self.clock()

    def pages(self) -> PageCache:
        if self.page_cache is None:
            self.page_cache = PageCache(self.settings.storefront_cache_seconds,
                                        self.settings.storefront_cache_entries, clock=self.now)
        return self.page_cache

    def domains(self) -> DomainDirectory:
        if self.domain_directory is None:
            self.domain_directory = DomainDirectory(self.read, self.settings.storefront_cache_seconds)
        return self.domain_directory

    def domain_check(self) -> DomainCheck:
        if self.domain_checker is None:
            self.domain_checker = HttpDomainCheck(allow_private=self.settings.allow_private_callbacks)
        return self.domain_checker

    def domains_changed(self, manufacturer_id: int) -> None:
        """A store's domain was claimed, dropped or verified (call after the commit)."""
        if self.domain_directory is not None:
            self.domain_directory.invalidate()
        self.storefront_changed(manufacturer_id)

    def storefront_changed(self, manufacturer_id: int) -> None:
        """A store's catalog or look changed (call after the commit): this process
        stops serving its cached pages at once; other processes' copies expire
        within BROKER_STOREFRONT_CACHE_SECONDS."""
        if self.page_cache is not None:
            self.page_cache.invalidate(manufacturer_id)


def _read_session_factory(engine: Engine) -> sessionmaker | None:
    if engine.dialect.name != "postgresql":
        return None  # SQLite: a read takes no round trip, and `uow` is as cheap
    return make_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
