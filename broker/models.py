"""Every model, imported once so that `Base.metadata` knows all tables (Alembic, tests)."""

from broker.accounts.models import (
    ApiKey,
    ApplicationStatus,
    DealerApplication,
    DealerAuthorisation,
    DealerInvitation,
    InvitationStatus,
    Manufacturer,
    Retailer,
    Role,
    Store,
)
from broker.board.models import Bid, BidStatus, Listing, ListingKind, ListingStatus
from broker.catalog.models import Product
from broker.db import Base
from broker.formkeys.models import FormKey
from broker.identity.models import User, UserSession
from broker.notifications.models import EmailOptOut
from broker.fulfilment.models import Assignment, AssignmentStatus
from broker.orders.models import Delivery, Order, OrderLine, OrderStatus
from broker.outbox.models import OutboxMessage
from broker.parking.models import JobFailure
from broker.ledger.models import LedgerEntry, LedgerTransaction
from broker.payments.models import (
    OfflineAccount,
    OfflineCharge,
    OfflineRefund,
    OfflineTransfer,
    Payment,
    PaymentStatus,
    WebhookEvent,
)
from broker.payouts.models import ConnectedAccount, Earning, EarningStatus, Payout
from broker.personal.models import Message, PersonalRequest, Prefer, RequestStatus
from broker.reputation.models import Review
from broker.returns.models import Return, ReturnStatus
from broker.privacy.models import Disclosure
from broker.settlement.models import (
    Cause,
    FulfillerKind,
    Rule,
    RunStatus,
    SettlementDecision,
    SettlementRun,
)
from broker.shipping.models import ShippingMethod
from broker.tax.models import TaxRate, TaxSettings
from broker.stock.models import StandingBid, StockFeed, StockLevel, StockReservation

__all__ = [
    "ShippingMethod", "TaxRate", "TaxSettings",
    "ApplicationStatus", "DealerApplication", "FormKey", "DealerInvitation", "EmailOptOut", "InvitationStatus",
    "JobFailure",
    "User", "UserSession",
    "Return", "ReturnStatus", "Review", "Message", "PersonalRequest", "Prefer", "RequestStatus",
    "ConnectedAccount", "Earning", "EarningStatus", "LedgerEntry", "LedgerTransaction", "OfflineAccount",
    "OfflineRefund", "OfflineTransfer", "Payout", "WebhookEvent",
    "ApiKey", "Assignment", "AssignmentStatus", "Base", "Bid", "BidStatus", "Cause",
    "DealerAuthorisation", "Delivery", "Disclosure", "FulfillerKind", "Listing", "ListingKind",
    "ListingStatus", "Manufacturer", "OfflineCharge", "Order", "OrderLine", "OrderStatus", "OutboxMessage",
    "Payment", "PaymentStatus", "Product", "Retailer", "Role", "Rule", "RunStatus",
    "SettlementDecision", "SettlementRun", "StandingBid", "StockFeed", "StockLevel", "StockReservation", "Store",
]
