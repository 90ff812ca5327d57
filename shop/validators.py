"""Validation shared by the page forms and the API serializers, so both say the same thing."""

import datetime as dt
import re

from django.core.exceptions import ValidationError

MAX_LINE_QUANTITY = 20

COUNTRIES = [
    ("US", "United States"),
    ("CA", "Canada"),
    ("GB", "United Kingdom"),
    ("IE", "Ireland"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("NL", "Netherlands"),
    ("ES", "Spain"),
    ("IT", "Italy"),
    ("AU", "Australia"),
]
COUNTRY_CODES = {code for code, _ in COUNTRIES}

POSTAL_PATTERNS = {
    "US": (r"^\d{5}(-\d{4})?$", "a 5-digit ZIP code such as 98101"),
    "CA": (r"^[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d$", "a postal code such as K1A 0B1"),
    "GB": (r"^[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}$", "a postcode such as SW1A 1AA"),
    "DE": (r"^\d{5}$", "a 5-digit postcode"),
    "FR": (r"^\d{5}$", "a 5-digit postcode"),
    "ES": (r"^\d{5}$", "a 5-digit postcode"),
    "IT": (r"^\d{5}$", "a 5-digit postcode"),
    "NL": (r"^\d{4} ?[A-Za-z]{2}$", "a postcode such as 1012 AB"),
    "AU": (r"^\d{4}$", "a 4-digit postcode"),
    "IE": (r"^[A-Za-z\d]{3} ?[A-Za-z\d]{4}$", "an Eircode such as D02 X285"),
}


def validate_quantity(quantity: int) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise ValidationError({"quantity": "Quantity must be a whole number."}, code="invalid_quantity")
    if quantity < 1:
        raise ValidationError({"quantity": "Quantity must be at least 1."}, code="invalid_quantity")
    if quantity > MAX_LINE_QUANTITY:
        raise ValidationError(
            {"quantity": f"You can buy at most {MAX_LINE_QUANTITY} of one product per order."},
            code="invalid_quantity",
        )
    return quantity


def validate_postal_code(country: str, postal_code: str) -> str:
    postal_code = postal_code.strip()
    pattern, example = POSTAL_PATTERNS.get(country, (r"^[A-Za-z\d][A-Za-z\d -]{1,9}$", "a valid postal code"))
    if not re.match(pattern, postal_code):
        raise ValidationError({"postal_code": f"Enter {example}."}, code="invalid_postal_code")
    return postal_code.upper()


def validate_address(data: dict) -> dict:
    """Clean a shipping address; raises ValidationError naming every bad field."""
    errors: dict[str, str] = {}
    cleaned = {key: str(data.get(key) or "").strip() for key in (
        "full_name", "address_line1", "address_line2", "city", "postal_code", "country", "phone"
    )}
    for field, label in (("full_name", "Full name"), ("address_line1", "Address"), ("city", "City")):
        if not cleaned[field]:
            errors[field] = f"{label} is required."
        elif len(cleaned[field]) > 200:
            errors[field] = f"{label} is too long."
    cleaned["country"] = cleaned["country"].upper()
    if cleaned["country"] not in COUNTRY_CODES:
        errors["country"] = "Choose a country we ship to."
    elif not errors.get("postal_code"):
        try:
            cleaned["postal_code"] = validate_postal_code(cleaned["country"], cleaned["postal_code"])
        except ValidationError as exc:
            errors.update({k: v[0] for k, v in exc.message_dict.items()})
    if cleaned["phone"] and not re.match(r"^\+?[\d ()-]{6,20}$", cleaned["phone"]):
        errors["phone"] = "Enter a phone number of digits, spaces and dashes."
    if errors:
        raise ValidationError(errors)
    return cleaned


def luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def validate_card(number: str, expiry: str, cvc: str, today: dt.date | None = None) -> tuple[str, int, int, str]:
    """Return (digits, month, four-digit year, cvc) or raise ValidationError per field."""
    today = today or dt.date.today()
    errors: dict[str, str] = {}
    digits = re.sub(r"[ -]", "", number or "")
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        errors["card_number"] = "Enter a valid card number."
    month = year = 0
    match = re.match(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$", expiry or "")
    if not match:
        errors["card_expiry"] = "Enter the expiry date as MM/YY."
    else:
        month, year = int(match.group(1)), int(match.group(2))
        year = year + 2000 if year < 100 else year
        if not 1 <= month <= 12:
            errors["card_expiry"] = "The expiry month must be between 01 and 12."
        elif (year, month) < (today.year, today.month):
            errors["card_expiry"] = "This card has expired."
    if not re.match(r"^\d{3,4}$", (cvc or "").strip()):
        errors["card_cvc"] = "Enter the 3 or 4 digit security code."
    if errors:
        raise ValidationError(errors)
    return digits, month, year, cvc.strip()
