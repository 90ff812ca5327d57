"""Payment gateways. The default test gateway can be swapped for a real provider
by pointing AISLE_PAYMENT_GATEWAY at a class with the same `charge` method.

`charge(card, amount, description, idempotency_key=...)`: a provider must return the first charge
again for a key it has seen (Stripe's Idempotency-Key, Adyen's idempotency header), so a checkout
retried after a crash between the charge and the commit never charges twice."""

import sqlite3
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string


class PaymentDeclined(ValidationError):
    pass


@dataclass(frozen=True)
class CardDetails:
    number: str
    expiry_month: int
    expiry_year: int
    cvc: str

    @property
    def last4(self) -> str:
        return self.number[-4:]


@dataclass(frozen=True)
class PaymentResult:
    reference: str
    amount: Decimal


class TestPaymentGateway:
    """Approves every valid card except the documented decline numbers (as Stripe's test mode does).

    Like a real provider it keeps its own ledger of charges, outside the shop's database (a SQLite file,
    AISLE_TEST_GATEWAY_LEDGER): a charge survives the rollback of the order transaction, as a real one
    would, and a key seen before returns the first charge. Tests and bench/faults.py count charges here."""

    DECLINED_NUMBERS = {"4000000000000002": "Your card was declined.", "4000000000009995": "Insufficient funds."}

    def charge(self, card: CardDetails, amount: Decimal, description: str, *,
               idempotency_key: str = "") -> PaymentResult:
        if card.number in self.DECLINED_NUMBERS:
            raise PaymentDeclined(self.DECLINED_NUMBERS[card.number], code="card_declined")
        reference = f"test_{uuid.uuid4().hex[:20]}"
        with _ledger() as db:
            if idempotency_key:
                # One writer at a time (BEGIN IMMEDIATE): two requests with one key get one charge.
                db.execute("BEGIN IMMEDIATE")
                row = db.execute("SELECT reference, amount FROM charges WHERE idempotency_key = ?",
                                 (idempotency_key,)).fetchone()
                if row is not None:
                    db.execute("COMMIT")
                    return PaymentResult(reference=row[0], amount=Decimal(row[1]))
            db.execute("INSERT INTO charges (reference, idempotency_key, amount, description) VALUES (?, ?, ?, ?)",
                       (reference, idempotency_key or None, str(amount), description[:200]))
            if idempotency_key:
                db.execute("COMMIT")
        return PaymentResult(reference=reference, amount=amount)


def ledger_path() -> Path:
    return Path(getattr(settings, "AISLE_TEST_GATEWAY_LEDGER", "") or Path(settings.AISLE_MODEL_DIR).parent
                / "test-gateway.sqlite3")


class _ledger:
    """A connection to the test gateway's ledger (autocommit; created on first use)."""

    def __enter__(self) -> sqlite3.Connection:
        path = ledger_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS charges (reference TEXT PRIMARY KEY, idempotency_key TEXT UNIQUE,"
                        " amount TEXT NOT NULL, description TEXT NOT NULL,"
                        " created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
        return self.db

    def __exit__(self, *exc) -> None:
        if exc[0] is not None and self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()


def ledger_charges(description_prefix: str = "") -> list[tuple[str, str, str]]:
    """(reference, amount, description) of every charge the test gateway made (for tests and benches)."""
    if not ledger_path().exists():
        return []
    with _ledger() as db:
        return db.execute("SELECT reference, amount, description FROM charges WHERE description LIKE ?"
                          " ORDER BY rowid", (description_prefix + "%",)).fetchall()


def get_gateway():
    return import_string(settings.AISLE_PAYMENT_GATEWAY)()
