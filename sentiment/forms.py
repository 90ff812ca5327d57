"""The dashboard's filter form: every field optional, bad input is a form error (-> 400), never a 500."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from .analytics import GROUPS, DashboardFilters

MAX_SPAN = dt.timedelta(days=3 * 366)
DEFAULT_SPAN = dt.timedelta(days=89)
EARLIEST = dt.date(2000, 1, 1)  # also keeps the previous-window arithmetic far from datetime's limits


def _category_choices(tree: list) -> list[tuple[str, str]]:
    choices, stack = [("", "All categories")], [(category, 0) for category in reversed(tree)]
    while stack:
        category, depth = stack.pop()
        choices.append((str(category.pk), f"{'— ' * depth}{category.name}"))
        stack.extend((child, depth + 1) for child in reversed(getattr(category, "subcategories", [])))
    return choices


def _descendants(tree: list, category_id: int) -> list[int] | None:
    stack = list(tree)
    while stack:
        category = stack.pop()
        if category.pk == category_id:
            ids, frontier = [], [category]
            while frontier:
                node = frontier.pop()
                ids.append(node.pk)
                frontier.extend(getattr(node, "subcategories", []))
            return ids
        stack.extend(getattr(category, "subcategories", []))
    return None


class DashboardFilterForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    category = forms.ChoiceField(required=False)
    brand = forms.CharField(required=False, max_length=120)
    q = forms.CharField(required=False, max_length=100, label="Product")
    group = forms.ChoiceField(required=False, choices=[(g, g.title()) for g in GROUPS], label="Break down by")
    bucket = forms.ChoiceField(required=False, choices=[("", "Auto"), ("day", "Day"), ("week", "Week"),
                                                        ("month", "Month")])
    min_reviews = forms.IntegerField(required=False, min_value=1, max_value=1000,
                                     label="Min. reviews per window (movers)")

    def __init__(self, data=None, *, category_tree: list, brands: list[str]):
        super().__init__(data)
        self.category_tree = category_tree
        self.fields["category"].choices = _category_choices(category_tree)
        self.fields["brand"].widget.attrs["list"] = "sentiment-brands"
        self.brands = brands

    def clean(self) -> dict:
        data = super().clean()
        today = timezone.now().date()
        end = data.get("end") or today
        start = data.get("start") or (end - DEFAULT_SPAN)
        if "start" in self.errors or "end" in self.errors:
            return data
        if start < EARLIEST or end > today + dt.timedelta(days=366):
            raise forms.ValidationError(f"Choose dates between {EARLIEST:%Y-%m-%d} and next year.")
        if start > end:
            raise forms.ValidationError("The start date must be on or before the end date.")
        if end - start > MAX_SPAN:
            raise forms.ValidationError("Choose a range of at most three years.")
        data["start"], data["end"] = start, end
        return data

    def filters(self) -> DashboardFilters:
        """Only for a valid form."""
        data = self.cleaned_data
        span = (data["end"] - data["start"]).days
        bucket = data.get("bucket") or ("day" if span <= 45 else "week" if span <= 400 else "month")
        category = data.get("category")
        return DashboardFilters(
            start=data["start"], end=data["end"],
            category_ids=_descendants(self.category_tree, int(category)) if category else None,
            brand=(data.get("brand") or "").strip(), query=(data.get("q") or "").strip(),
            group=data.get("group") or "product", bucket=bucket, min_reviews=data.get("min_reviews") or 3)
