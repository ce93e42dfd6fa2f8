"""Importing a catalog from a CSV file.

The file has a header row naming its columns, in any order: `sku`, `name` and
`price` are required; `description`, `image_url` and `in_stock` are optional.
`price` is in major units of the store's currency, written as the store's
locale writes amounts (`129.00`, `129`, `1,299.50` in en_US; `129,00` and
`1.299,50` in de_DE), read by the same parser as the console's product form
(`broker.money.parse_amount`: an ambiguous `12,50` in en_US is refused with the
format to use, never guessed at); `in_stock` is yes/no, true/false or 1/0 (blank:
in stock). Each row adds the SKU or, if the store has it already, replaces its
name, price, description, image URL and stock flag (a blank description or
image URL clears it; whether the product is on sale, `active`, is left as it is).

What a bad row does: nothing. Every valid row is applied and every bad row is
reported (its row number as a spreadsheet shows it, the header being row 1, its
SKU, and what is wrong with it), all in one transaction: a manufacturer fixing
three typos in a 500-row file re-imports the file, and the rows that were
applied already are applied again to the same effect. A SKU given twice in one
file is an error on its second row (which of the two was meant is not ours to
guess). A file that is not a CSV file at all, or has no usable header, changes
nothing and is refused as a whole.

Each row is checked by the catalog's own rules (`catalog.services.validate`),
the ones the API and the console forms use.
"""

from __future__ import annotations

import csv
import dataclasses
import io

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from broker.accounts.models import Manufacturer
from broker.auth import Actor, ActorKind, require
from broker.catalog.models import Product
from broker.catalog.services import apply_changes, new_product, validate
from broker.context import Context
from broker.errors import Conflict, Invalid
from broker.money import parse_amount

REQUIRED = ("sku", "name", "price")
OPTIONAL = ("description", "image_url", "in_stock")
MAX_ROWS = 5000
YES = {"", "1", "true", "yes", "y"}
NO = {"0", "false", "no", "n"}


@dataclasses.dataclass(frozen=True)
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    sku: str
    errors: dict[str, list[str]]

    @property
    def message(self) -> str:
        return "; ".join(f"{field}: {', '.join(messages)}" for field, messages in self.errors.items())


@dataclasses.dataclass(frozen=True)
class ImportReport:
    added: list[str]
    updated: list[str]
    errors: list[RowError]

    @property
    def applied(self) -> int:
        return len(self.added) + len(self.updated)


def read_rows(data: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The file's header and its data rows as (row number, {column: text}).

    :raise 422: not a CSV file, no header, a column we do not know, or no rows at all.
    """
    if not data.strip():
        raise Invalid.field("file", "the file is empty")
    if b"\x00" in data:
        raise Invalid.field("file", "this is not a CSV file (it looks binary)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid.field("file", "this is not a UTF-8 CSV file; save it as CSV (UTF-8)") from None
    # Excel in many locales writes ";" between fields: the header line says which.
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [column.strip().lower() for column in next(reader, [])]
        missing = [column for column in REQUIRED if column not in header]
        if missing:
            raise Invalid.field("file", "the first row must be the header sku,name,price,description,image_url,"
                                        f"in_stock (missing: {', '.join(missing)})")
        unknown = [column for column in header if column not in REQUIRED + OPTIONAL]
        if unknown:
            raise Invalid.field("file", f"unknown column {unknown[0]!r}; the columns are "
                                        f"{', '.join(REQUIRED + OPTIONAL)}")
        repeated = sorted({column for column in header if header.count(column) > 1})
        if repeated:
            raise Invalid.field("file", f"the column {repeated[0]!r} appears twice in the header")
        rows = []
        for number, record in enumerate(reader, start=2):
            if not any(field.strip() for field in record):
                continue  # blank lines, as spreadsheets leave at the end
            if len(rows) >= MAX_ROWS:
                raise Invalid.field("file", f"at most {MAX_ROWS} rows per file; split it")
            values = dict(zip(header, record))
            if len(record) != len(header):
                values["__width__"] = str(len(record))
            rows.append((number, values))
    except csv.Error as exc:
        raise Invalid.field("file", f"this is not a readable CSV file ({exc})") from None
    if not rows:
        raise Invalid.field("file", "the file has a header but no rows")
    return header, rows


def _parse(values: dict[str, str], width: int, currency: str, locale: str, https_only: bool) -> dict:
    """One row's fields, cleaned by the catalog's rules. :raise 422: every problem in the row."""
    errors: dict[str, list[str]] = {}
    if "__width__" in values:
        errors["row"] = [f"has {values['__width__']} fields; the header has {width}"]
    fields = {"sku": values.get("sku", ""), "name": values.get("name", ""),
              "description": values.get("description", ""), "image_url": values.get("image_url", "")}
    price_text = (values.get("price") or "").strip()
    if not price_text:
        errors["price"] = ["must not be blank"]
    else:
        try:
            fields["price"] = parse_amount(price_text, currency, locale)
        except ValueError as exc:
            message = str(exc)
            errors["price"] = [message if repr(price_text) in message else f"{price_text!r}: {message}"]
    stock = (values.get("in_stock") or "").strip().lower()
    if stock in YES | NO:
        fields["in_stock"] = stock in YES
    else:
        errors["in_stock"] = [f"{stock!r}: use yes or no"]
    try:
        clean = validate(fields, https_only=https_only)
    except Invalid as exc:
        for field, messages in exc.errors.items():
            errors.setdefault(field, []).extend(messages)
    if errors:
        raise Invalid("bad row", errors=errors)
    return clean


def import_products(ctx: Context, actor: Actor, data: bytes) -> ImportReport:
    """Add or update the caller's products from a CSV file (see the module's doc).

    :raise 422: the file as a whole is unreadable (not CSV, no header, no rows).
    :raise 409: another change to the catalog raced this import; nothing was written.
    """
    require(actor, ActorKind.MANUFACTURER)
    header, rows = read_rows(data)
    added: list[str] = []
    updated: list[str] = []
    errors: list[RowError] = []
    with ctx.uow() as uow:
        session = uow.session
        currency, locale = session.execute(select(Manufacturer.currency, Manufacturer.locale)
                                           .where(Manufacturer.id == actor.id)).one()
        parsed: list[tuple[int, dict]] = []
        first_row: dict[str, int] = {}
        for number, values in rows:
            try:
                clean = _parse(values, len(header), currency, locale, ctx.settings.https)
            except Invalid as exc:
                errors.append(RowError(number, (values.get("sku") or "").strip(), exc.errors))
                continue
            if clean["sku"] in first_row:
                errors.append(RowError(number, clean["sku"], {
                    "sku": [f"already given on row {first_row[clean['sku']]}; give each SKU once"]}))
                continue
            first_row[clean["sku"]] = number
            parsed.append((number, clean))
        # One query for every product the file names, not one per row.
        existing: dict[str, Product] = {}
        skus = [clean["sku"] for _, clean in parsed]
        for start in range(0, len(skus), 500):
            existing.update((p.sku, p) for p in session.scalars(select(Product).where(
                Product.manufacturer_id == actor.id, Product.sku.in_(skus[start:start + 500]))))
        now = ctx.now()
        for _, clean in parsed:
            product = existing.get(clean["sku"])
            if product is None:
                session.add(new_product(actor.id, clean, now))
                added.append(clean["sku"])
            else:
                apply_changes(product, {k: v for k, v in clean.items() if k != "sku"}, now)
                updated.append(clean["sku"])
        uow.after_commit(lambda: ctx.storefront_changed(actor.id))
        try:
            uow.commit()
        except IntegrityError:
            # Someone added one of these SKUs between our read and our commit.
            raise Conflict("the catalog changed while the file was imported; nothing was written, try again") \
                from None
    return ImportReport(added, updated, errors)
