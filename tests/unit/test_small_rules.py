import pytest

from api.problems import flatten
from broker.config import ConfigError, Settings
from broker.errors import Conflict
from broker.money import format_amount
from broker.orders.models import OrderStatus as S
from broker.orders.rules import can_move, move


class TestOrderStates:
    @pytest.mark.parametrize("a, b", [(S.AWAITING_PAYMENT, S.OPEN), (S.OPEN, S.AWARDED), (S.AWARDED, S.SHIPPED),
                                      (S.SHIPPED, S.DELIVERED), (S.OPEN, S.CANCELLED)])
    def test_forward_moves(self, a, b):
        assert can_move(a, b)

    @pytest.mark.parametrize("a, b", [(S.OPEN, S.AWAITING_PAYMENT), (S.SHIPPED, S.AWARDED), (S.SHIPPED, S.CANCELLED),
                                      (S.CANCELLED, S.OPEN), (S.DELIVERED, S.SHIPPED), (S.OPEN, S.OPEN)])
    def test_never_backwards(self, a, b):
        assert not can_move(a, b)

    def test_move_refuses_with_conflict(self):
        class Order:
            id, status, updated_at = 1, S.SHIPPED, None

        with pytest.raises(Conflict):
            move(Order(), S.OPEN, None)


class TestSettings:
    def test_defaults(self):
        s = Settings.from_env({})
        assert (s.min_board_hours, s.ship_within_hours, s.settle_cron, s.timezone) == (12, 48, "0 2 * * *", "UTC")
        assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("broker.db")
        assert s.admin_token == ""

    def test_environment_overrides(self):
        s = Settings.from_env({"DATABASE_URL": "postgresql+psycopg://x/y", "BROKER_MIN_BOARD_HOURS": "6",
                               "BROKER_TIMEZONE": "America/Los_Angeles", "BROKER_GEOCODER": "nominatim",
                               "BROKER_GEOCODER_USER_AGENT": "broker-test"})
        assert s.min_board_hours == 6 and s.timezone == "America/Los_Angeles" and not s.is_sqlite
        assert dict(s.geocoder_options) == {"user_agent": "broker-test"}

    @pytest.mark.parametrize("env", [{"BROKER_MIN_BOARD_HOURS": "soon"}, {"BROKER_TIMEZONE": "Mars/Olympus"},
                                     {"BROKER_SETTLE_CRON": "every day"}, {"BROKER_SHIP_WITHIN_HOURS": "0"}])
    def test_bad_values_are_refused_with_the_variable_named(self, env):
        with pytest.raises(ConfigError, match="BROKER_"):
            Settings.from_env(env)


def test_flatten_nested_validation_messages():
    messages = {"json": {"items": {"0": {"sku": ["Missing data for required field."]}},
                         "ship_to": {"lat": ["Not a valid number."]}, "_schema": ["Invalid input type."]}}
    assert flatten(messages) == {
        "items.0.sku": ["Missing data for required field."],
        "ship_to.lat": ["Not a valid number."],
        "body": ["Invalid input type."],
    }


@pytest.mark.parametrize("amount, currency, text", [(189900, "USD", "1899.00 USD"), (5, "EUR", "0.05 EUR"),
                                                    (1500, "JPY", "1500 JPY"), (1234, "KWD", "1.234 KWD"),
                                                    (-250, "USD", "-2.50 USD")])
def test_format_amount(amount, currency, text):
    assert format_amount(amount, currency) == text
