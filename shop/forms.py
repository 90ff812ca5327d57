"""Storefront page forms. They only parse and shape input; the rules live in
shop.validators and shop.services so the pages and the API say the same thing."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm, UserCreationForm
from django.core.exceptions import ValidationError

from . import services
from .payments import CardDetails
from .validators import COUNTRIES, MAX_LINE_QUANTITY, validate_address, validate_card

SORT_LABELS = {
    "relevance": "Most popular",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "rating": "Top rated",
    "newest": "Newest",
    "title": "Name A–Z",
}

ADDRESS_FIELDS = ("full_name", "address_line1", "address_line2", "city", "postal_code", "country", "phone")


def add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: keys naming a form field go to that
    field, anything else (cart, product, quantity, a declined card) becomes a form-wide error.
    A field that already failed its own check keeps just that message (no duplicates)."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            target = field if field in form.fields else None
            if target is not None and target in form.errors:
                continue
            for message in errors:
                form.add_error(target, message)
    else:
        for message in exc.messages:
            form.add_error(None, message)


class StringListField(forms.Field):
    """Any number of repeated query parameters (?brand=a&brand=b), trimmed and capped.

    Brands are not a fixed choice list: a bookmarked link to a brand that has since
    left the category should still work, it just matches nothing."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[str]:
        if not value:
            return []
        if not isinstance(value, list | tuple):
            value = [value]
        cleaned = [str(item).strip()[:120] for item in value]
        return list(dict.fromkeys(item for item in cleaned if item))[:30]


class ProductFilterForm(forms.Form):
    """The category sidebar and sort box, bound to request.GET."""

    min_price = forms.DecimalField(
        required=False, min_value=0, max_digits=10, decimal_places=2, label="Min",
        error_messages={"invalid": "Minimum price must be a number, like 25 or 19.99."},
        widget=forms.NumberInput(attrs={"placeholder": "0", "step": "0.01", "min": "0", "inputmode": "decimal"}),
    )
    max_price = forms.DecimalField(
        required=False, min_value=0, max_digits=10, decimal_places=2, label="Max",
        error_messages={"invalid": "Maximum price must be a number, like 100 or 249.99."},
        widget=forms.NumberInput(attrs={"placeholder": "Any", "step": "0.01", "min": "0", "inputmode": "decimal"}),
    )
    brand = StringListField(required=False)
    in_stock = forms.BooleanField(required=False, label="In stock only")
    sort = forms.ChoiceField(
        required=False,
        choices=[(key, SORT_LABELS.get(key, key.replace("_", " ").title())) for key in services.SORTS],
        error_messages={"invalid_choice": "“%(value)s” is not a way we can sort products."},
        # The sort box sits above the grid, outside the sidebar <form id="filters">, but submits with it.
        widget=forms.Select(attrs={"form": "filters", "class": "js-autosubmit"}),
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        low, high = cleaned.get("min_price"), cleaned.get("max_price")
        if low is not None and high is not None and low > high:
            self.add_error("max_price", "The maximum price must not be below the minimum price.")
        return cleaned

    def to_filters(self, category=None) -> services.ProductFilters:
        """Filters from the valid fields only: a bad field is reported and ignored,
        so the page still lists something useful."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return services.ProductFilters(
            category=category,
            brands=tuple(data.get("brand") or ()),
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
            in_stock=bool(data.get("in_stock")),
            sort=data.get("sort") or "relevance",
        )


class QuantityForm(forms.Form):
    """Parses the quantity only; the limits (1..20, stock) are checked by the services."""

    quantity = forms.IntegerField(
        error_messages={"invalid": "Quantity must be a whole number.", "required": "Enter a quantity."},
        widget=forms.NumberInput(attrs={"min": "1", "max": str(MAX_LINE_QUANTITY), "inputmode": "numeric"}),
    )


class ReviewForm(forms.Form):
    rating = forms.TypedChoiceField(
        choices=[(n, f"{n} star{'s' if n > 1 else ''}") for n in range(5, 0, -1)],
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose a rating from 1 to 5 stars.",
            "invalid_choice": "Rating must be a whole number of stars from 1 to 5.",
        },
    )
    title = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"placeholder": "Sum it up in a line"}))
    text = forms.CharField(
        label="Your review", max_length=5000,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "What did you like or dislike?"}),
    )


class _NoEchoTextInput(forms.TextInput):
    """Card data is never written back into the page when the form is re-shown."""

    def format_value(self, value) -> None:
        return None


class CheckoutForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    full_name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"autocomplete": "name"}))
    address_line1 = forms.CharField(
        label="Address", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "address-line1"})
    )
    address_line2 = forms.CharField(
        label="Apartment, suite, etc.", max_length=200, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "address-line2"}),
    )
    city = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "address-level2"}))
    postal_code = forms.CharField(
        label="Postal code", max_length=20, widget=forms.TextInput(attrs={"autocomplete": "postal-code"})
    )
    country = forms.ChoiceField(choices=COUNTRIES, widget=forms.Select(attrs={"autocomplete": "country"}))
    phone = forms.CharField(
        max_length=30, required=False, help_text="Optional, for the courier.",
        widget=forms.TextInput(attrs={"autocomplete": "tel", "type": "tel"}),
    )
    card_number = forms.CharField(
        label="Card number", max_length=30,
        widget=_NoEchoTextInput(attrs={"autocomplete": "cc-number", "inputmode": "numeric",
                                       "placeholder": "4242 4242 4242 4242"}),
    )
    card_expiry = forms.CharField(
        label="Expiry (MM/YY)", max_length=7,
        widget=forms.TextInput(attrs={"autocomplete": "cc-exp", "placeholder": "MM/YY", "inputmode": "numeric"}),
    )
    card_cvc = forms.CharField(
        label="CVC", max_length=4,
        widget=_NoEchoTextInput(attrs={"autocomplete": "cc-csc", "inputmode": "numeric", "placeholder": "123"}),
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        # The shared validators name their bad fields with these same field names.
        try:
            cleaned["address"] = validate_address({key: cleaned.get(key, "") for key in ADDRESS_FIELDS})
        except ValidationError as exc:
            add_service_errors(self, exc)
        if all(cleaned.get(key) for key in ("card_number", "card_expiry", "card_cvc")):
            try:
                number, month, year, cvc = validate_card(
                    cleaned["card_number"], cleaned["card_expiry"], cleaned["card_cvc"]
                )
            except ValidationError as exc:
                add_service_errors(self, exc)
            else:
                cleaned["card"] = CardDetails(number=number, expiry_month=month, expiry_year=year, cvc=cvc)
        return cleaned


class SignupForm(UserCreationForm):
    """Django's user creation form plus a required e-mail; the view saves through
    services.create_shopper so every shopper gets a profile."""

    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


# --- account: details, password reset ----------------------------------------------------------

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_characters(value: str) -> None:
    if _CONTROL_CHARS.search(value or ""):
        raise ValidationError("Please use letters, spaces and punctuation only.", code="control_characters")


class AccountDetailsForm(forms.ModelForm):
    """A signed-in shopper's name and e-mail. The e-mail must be one no other account uses (compared
    case-insensitively), since password-reset links are sent to it."""

    email = forms.EmailField(label="E-mail", max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "email"}))

    class Meta:
        model = get_user_model()
        fields = ("first_name", "last_name", "email")
        widgets = {
            "first_name": forms.TextInput(attrs={"autocomplete": "given-name"}),
            "last_name": forms.TextInput(attrs={"autocomplete": "family-name"}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("first_name", "last_name"):
            self.fields[name].validators.append(_no_control_characters)

    def clean_email(self) -> str:
        email = get_user_model().objects.normalize_email(self.cleaned_data["email"].strip())
        taken = get_user_model().objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists()
        if taken:
            raise ValidationError("Another account already uses this e-mail address.", code="email_taken")
        return email


class ShopPasswordResetForm(PasswordResetForm):
    """Django's reset form; the e-mail itself is sent by a Celery task (shop.tasks.send_password_reset)
    given only the typed address, so the page does the same work, and answers in the same time, whether
    or not an account has that address."""

    email = forms.EmailField(label="E-mail", max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))

    SUBJECT_TEMPLATE = "registration/password_reset_subject.txt"
    EMAIL_TEMPLATE = "registration/password_reset_email.txt"

    @classmethod
    def send_reset_mail(cls, email: str, *, domain: str, use_https: bool) -> None:
        """Mail a reset link to each active account with this address (none: nothing is sent)."""
        form = cls(data={"email": email})
        if form.is_valid():
            form.save(domain_override=domain, use_https=use_https, subject_template_name=cls.SUBJECT_TEMPLATE,
                      email_template_name=cls.EMAIL_TEMPLATE, extra_email_context={"site_name": "Aisle"})
