"""Payment gateways. The default test gateway can be swapped for a real provider
by pointing AISLE_PAYMENT_GATEWAY at a class with the same `charge` method."""

import uuid
from dataclasses import dataclass
from decimal import Decimal

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
    """Approves every valid card except the documented decline numbers (as Stripe's test mode does)."""

    DECLINED_NUMBERS = {"4000000000000002": "Your card was declined.", "4000000000009995": "Insufficient funds."}

    def charge(self, card: CardDetails, amount: Decimal, description: str) -> PaymentResult:
        if card.number in self.DECLINED_NUMBERS:
            raise PaymentDeclined(self.DECLINED_NUMBERS[card.number], code="card_declined")
        return PaymentResult(reference=f"test_{uuid.uuid4().hex[:20]}", amount=amount)


def get_gateway():
    return import_string(settings.AISLE_PAYMENT_GATEWAY)()
