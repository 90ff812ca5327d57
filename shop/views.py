"""Storefront pages. Views stay thin: parse input with shop.forms, call shop.services, render.

Every failure a shopper can cause (bad filter, bad quantity, declined card, someone
else's order number) ends in a message, a 400 or a 404, never a 500.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.functional import SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.ratelimit import ratelimit

from . import pagecache, services
from .forms import (
    ADDRESS_FIELDS,
    AccountDetailsForm,
    CheckoutForm,
    ProductFilterForm,
    QuantityForm,
    ReviewForm,
    ShopPasswordResetForm,
    SignupForm,
    add_service_errors,
)
from .middleware import visitor_id
from .models import CartItem, Category, Order, Product
from .validators import MAX_LINE_QUANTITY

PRODUCTS_PER_PAGE = 24
REVIEWS_PER_PAGE = 10
ORDERS_PER_PAGE = 10
HOME_GRID_SIZE = 10

# The happy path of an order, drawn as a progress bar on the order page.
ORDER_FLOW = [Order.Status.PLACED, Order.Status.PAID, Order.Status.SHIPPED, Order.Status.DELIVERED]


# --- Small helpers ----------------------------------------------------------------------


def _actor(request: HttpRequest) -> tuple[object | None, str]:
    """(user or None, visitor id) as the services' signals expect them."""
    user = request.user if request.user.is_authenticated else None
    return user, visitor_id(request)


def _actor_kwargs(request: HttpRequest) -> dict:
    user, visitor = _actor(request)
    return {"user": user, "visitor_id": visitor}


def _safe_next(request: HttpRequest, default: str) -> str:
    """A same-site `next` from the form or query, else the default (no open redirects)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _first_error(form) -> str:
    for errors in form.errors.values():
        if errors:
            return str(errors[0])
    return "Please check your input."


def _paginate(request: HttpRequest, items, per_page: int, param: str = "page") -> Page:
    # get_page() turns "abc", 0 and 999 into a valid page instead of raising.
    return Paginator(items, per_page).get_page(request.GET.get(param))


def _get_product_or_404(slug: str) -> Product:
    try:
        return services.get_product(slug)
    except Product.DoesNotExist:
        raise Http404("No such product.") from None


def _ancestors(category: Category) -> list[Category]:
    """Root-first breadcrumb trail above a category (the tree is shallow)."""
    trail, node, seen = [], category.parent, {category.pk}
    while node is not None and node.pk not in seen:  # `seen` guards against a bad cycle in the data
        trail.append(node)
        seen.add(node.pk)
        node = node.parent
    return trail[::-1]


# --- Catalogue ------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    def render_page(holes: dict) -> tuple[HttpResponse, dict]:
        return render(request, "shop/home.html", {
            "categories": services.top_categories(),
            "top_rated": services.top_rated_products(HOME_GRID_SIZE),
            "deals": services.deal_products(HOME_GRID_SIZE),
            **holes,
        }), {}

    return pagecache.serve(request, render_page)[0]


@require_GET
def category(request: HttpRequest, slug: str) -> HttpResponse:
    category = get_object_or_404(Category.objects.select_related("parent"), slug=slug)
    form = ProductFilterForm(request.GET)
    valid = form.is_valid()
    # Invalid fields are reported on the page and left out of the filters, so the
    # shopper still sees products and can fix the value.
    filters = form.to_filters(category)

    def render_page(holes: dict) -> tuple[HttpResponse, dict]:
        products = services.filter_products(filters)
        # Brand counts ignore the brand filter itself, so ticking one brand keeps the others visible.
        facets = services.brand_facets(services.filter_products(dataclasses.replace(filters, brands=())))
        listed = {brand for brand, _ in facets}
        facets += [(brand, 0) for brand in filters.brands if brand not in listed]
        page = _paginate(request, products, PRODUCTS_PER_PAGE)
        active_filter_count = (
            len(filters.brands) + (filters.min_price is not None) + (filters.max_price is not None) + filters.in_stock
        )
        response = render(request, "shop/category.html", {
            "category": category,
            "ancestors": _ancestors(category),
            "subcategories": category.children.all(),
            "form": form,
            "filters": filters,
            "brand_facets": facets,
            "selected_brands": set(filters.brands),
            "page_obj": page,
            "products": page.object_list,
            "active_filter_count": active_filter_count,
            **holes,
        }, status=200 if valid else 400)
        return response, {"page": page.number, "count": page.paginator.count}

    # On a cache hit the page number and count come from the stored page: the event is the same.
    response, listing = pagecache.serve(request, render_page)
    user, visitor = _actor(request)
    services.record_listing_view(
        category, page=listing["page"], result_count=listing["count"], user=user, visitor_id=visitor,
        filters={"brands": list(filters.brands), "min_price": str(filters.min_price or ""),
                 "max_price": str(filters.max_price or ""), "in_stock": filters.in_stock, "sort": filters.sort},
    )
    return response


def _render_product(request: HttpRequest, product: Product, review_form: ReviewForm | None,
                    status: int = 200, holes: dict | None = None) -> HttpResponse:
    """The product page, shared by the GET view and a rejected review POST."""
    has_reviewed = request.user.is_authenticated and product.reviews.filter(user=request.user).exists()
    # Lazy, as the reviews below: evaluated only when its cached fragment is missing.
    related = SimpleLazyObject(lambda: list(
        services.filter_products(services.ProductFilters(category=product.category)).exclude(pk=product.pk)[:5]))

    return render(request, "shop/product.html", {
        "product": product,
        "ancestors": _ancestors(product.category) + [product.category],
        # Lazy: the reviews fragment is cached by the page asked for, so a hit counts no reviews.
        "reviews_page": SimpleLazyObject(
            lambda: _paginate(request, services.approved_reviews(product), REVIEWS_PER_PAGE, "reviews_page")),
        "review_form": review_form,
        "has_reviewed": has_reviewed,
        "max_quantity": max(1, min(product.stock, MAX_LINE_QUANTITY)),
        "related": related,
        **(holes or {}),
    }, status=status)


@require_GET
def product(request: HttpRequest, slug: str) -> HttpResponse:
    product = _get_product_or_404(slug)
    user, visitor_id = _actor(request)
    services.record_product_view(product, user=user, visitor_id=visitor_id)
    return pagecache.serve(
        request, lambda holes: (_render_product(request, product, ReviewForm() if user else None, holes=holes), {})
    )[0]


@require_POST
@ratelimit("review")
def review(request: HttpRequest, slug: str) -> HttpResponse:
    product = _get_product_or_404(slug)
    if not request.user.is_authenticated:
        # Back to the product page after signing in, not to this POST-only URL.
        return redirect_to_login(product.get_absolute_url() + "#write-review")
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            # Atomic: a double submit racing the one-review-per-product constraint
            # must not leave the connection in a broken transaction.
            with transaction.atomic():
                services.post_review(
                    product=product, user=request.user, rating=form.cleaned_data["rating"],
                    title=form.cleaned_data["title"], text=form.cleaned_data["text"], visitor_id=visitor_id(request),
                )
        except ValidationError as exc:
            add_service_errors(form, exc)
        except IntegrityError:
            form.add_error(None, "You have already reviewed this product.")
        else:
            messages.success(request, "Thanks — your review will appear after moderation")
            return redirect(product.get_absolute_url() + "#reviews")
    return _render_product(request, product, form, status=400)


# --- Cart -----------------------------------------------------------------------------


@require_GET
def cart(request: HttpRequest) -> HttpResponse:
    lines = services.cart_lines(services.get_cart(request))
    totals = services.cart_totals(lines)
    free_shipping_gap = services.FREE_SHIPPING_FROM - totals.subtotal if totals.shipping else Decimal("0")
    return render(request, "shop/cart.html", {
        "lines": lines,
        "totals": totals,
        "free_shipping_from": services.FREE_SHIPPING_FROM,
        "free_shipping_gap": free_shipping_gap,
        "can_checkout": bool(lines) and all(
            line.product.is_purchasable and line.quantity <= line.product.stock for line in lines
        ),
    })


@require_POST
def cart_add(request: HttpRequest, product_id: int) -> HttpResponse:
    found = services.get_products([product_id])
    if not found:
        raise Http404("No such product.")
    product = found[0]
    back = product.get_absolute_url()

    form = QuantityForm({"quantity": request.POST.get("quantity", "1")})
    if not form.is_valid():
        messages.error(request, _first_error(form))
        return redirect(back)

    previous_cart_id = request.session.get(services.CART_SESSION_KEY)
    try:
        # One transaction: a refused add must not leave a fresh empty cart behind.
        with transaction.atomic():
            cart = services.get_cart(request, create=True)
            user, visitor = _actor(request)
            services.add_to_cart(cart, product, form.cleaned_data["quantity"], user=user, visitor_id=visitor)
    except ValidationError as exc:
        if previous_cart_id is None:
            request.session.pop(services.CART_SESSION_KEY, None)
        else:
            request.session[services.CART_SESSION_KEY] = previous_cart_id
        messages.error(request, " ".join(exc.messages))
        return redirect(back)
    messages.success(request, f"Added “{product.title}” to your cart.")
    return redirect(_safe_next(request, reverse("shop:cart")))


@require_POST
def cart_update(request: HttpRequest, item_id: int) -> HttpResponse:
    cart_url = reverse("shop:cart")
    cart = services.get_cart(request)
    if cart is None:
        messages.error(request, "That item is no longer in your cart.")
        return redirect(cart_url)
    try:
        if "remove" in request.POST:
            services.remove_line(cart, item_id, **_actor_kwargs(request))
            messages.success(request, "Item removed from your cart.")
        else:
            form = QuantityForm(request.POST)
            if not form.is_valid():
                messages.error(request, _first_error(form))
                return redirect(cart_url)
            item = services.set_line_quantity(cart, item_id, form.cleaned_data["quantity"], **_actor_kwargs(request))
            messages.success(request, "Quantity updated." if item else "Item removed from your cart.")
    except CartItem.DoesNotExist:
        messages.error(request, "That item is no longer in your cart.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(cart_url)


# --- Checkout and account ---------------------------------------------------------------


def _checkout_initial(user) -> dict:
    """Prefill from the account and the shopper's last shipping address."""
    initial = {"email": user.email, "full_name": user.get_full_name(), "country": "US"}
    last = services.orders_for_user(user).first()
    if last is not None:
        initial.update({field: getattr(last, field) for field in ADDRESS_FIELDS})
    return initial


@login_required
@require_http_methods(["GET", "POST"])
@ratelimit("checkout")
def checkout(request: HttpRequest) -> HttpResponse:
    cart = services.get_cart(request)
    lines = services.cart_lines(cart)
    status = 200
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        # Minted with the form (hidden field): a double-click or a resubmitted page repeats one key, and
        # the repeat finds the first order instead of placing a second.
        key = request.POST.get("idempotency_key", "")
        if form.is_valid():
            if cart is None:
                form.add_error(None, "Your cart is empty.")
            else:
                try:
                    outcome = services.checkout(
                        cart=cart, email=form.cleaned_data["email"], address=form.cleaned_data["address"],
                        card=form.cleaned_data["card"], user=request.user, visitor_id=visitor_id(request),
                        idempotency_key=key,
                    )
                except ValidationError as exc:  # includes OutOfStock, PaymentDeclined and a malformed key
                    add_service_errors(form, exc)
                else:
                    messages.success(request, f"Thank you! Order {outcome.order.number} is confirmed and paid.")
                    return redirect(outcome.order)
        status = 400
        lines = services.cart_lines(cart)  # stock or cart may have changed meanwhile
    else:
        if not lines:
            messages.info(request, "Your cart is empty — add something before checking out.")
            return redirect("shop:cart")
        form = CheckoutForm(initial=_checkout_initial(request.user))
        key = services.new_idempotency_key()
        services.record_checkout_start(cart, lines, **_actor_kwargs(request))
    return render(request, "shop/checkout.html", {
        "form": form,
        "lines": lines,
        "totals": services.cart_totals(lines),
        "idempotency_key": key if _valid_key(key) else services.new_idempotency_key(),
    }, status=status)


def _valid_key(key: str) -> bool:
    try:
        return bool(services.clean_idempotency_key(key))
    except ValidationError:
        return False


@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    page = _paginate(request, services.orders_for_user(request.user), ORDERS_PER_PAGE)
    return render(request, "shop/account.html", {"page_obj": page, "orders": page.object_list})


@login_required
@require_GET
def order_detail(request: HttpRequest, number: str) -> HttpResponse:
    try:
        order = services.get_order_for_user(request.user, number)
    except Order.DoesNotExist:
        # Same answer for "no such order" and "someone else's order": nothing leaks.
        raise Http404("No such order.") from None
    history = list(order.history.all())
    reached = {event.status for event in history}
    steps = [{"label": Order.Status(status).label, "done": status in reached} for status in ORDER_FLOW]
    return render(request, "shop/order_detail.html", {
        "order": order,
        "items": order.items.all(),
        "history": history,
        "steps": steps,
        "is_closed": order.status in (Order.Status.CANCELLED, Order.Status.REFUNDED),
    })


@ratelimit("signup")
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("shop:account")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            # Atomic so a user never exists without their profile.
            with transaction.atomic():
                user = services.create_shopper(
                    username=form.cleaned_data["username"], email=form.cleaned_data["email"],
                    password=form.cleaned_data["password1"],
                )
        except IntegrityError:  # the username was taken between validation and insert
            form.add_error("username", "That username was just taken — please pick another.")
        else:
            # Fires user_logged_in, which merges the anonymous cart. Two backends (axes watches
            # sign-ins, ModelBackend signs in): name the one that signs in.
            auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to Aisle, {user.username}!")
            return redirect(_safe_next(request, reverse("shop:account")))
    status = 400 if request.method == "POST" else 200
    return render(request, "shop/signup.html", {"form": form, "next": _safe_next(request, "")}, status=status)


class ShopLoginView(auth_views.LoginView):
    template_name = "shop/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, f"Welcome back, {form.get_user().get_username()}.")
        return response


# Wrapped rather than subclassed: the rate limit sees the request before CSRF and auth.
login_view = ratelimit("login")(ShopLoginView.as_view())
logout_view = auth_views.LogoutView.as_view()  # POST only since Django 5.0


# --- Account details and passwords --------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def account_details(request: HttpRequest) -> HttpResponse:
    form = AccountDetailsForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your details were saved.")
        return redirect("shop:account")
    status = 400 if request.method == "POST" else 200
    return render(request, "shop/account_details.html", {"form": form}, status=status)


class ShopPasswordChangeView(auth_views.PasswordChangeView):
    """Django's own view: checks the old password, validates the new one, keeps this session signed in."""

    template_name = "shop/account_password.html"
    success_url = reverse_lazy("shop:account")

    def form_valid(self, form) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, "Your password was changed.")
        return response

    def form_invalid(self, form) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ShopPasswordResetView(auth_views.PasswordResetView):
    """Django's reset request page. Known and unknown addresses get the same redirect to the same page; the
    e-mail is queued with only the typed address (the task looks the account up), so no account is revealed
    by the answer or by its timing."""

    form_class = ShopPasswordResetForm
    template_name = "registration/password_reset_form.html"
    success_url = reverse_lazy("shop:password_reset_done")

    def form_valid(self, form) -> HttpResponse:
        from .tasks import send_password_reset

        email, domain, https = form.cleaned_data["email"], self.request.get_host(), self.request.is_secure()
        transaction.on_commit(lambda: send_password_reset.delay(email, domain, https))
        return redirect(self.success_url)

    def form_invalid(self, form) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ShopPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("shop:password_reset_complete")

    def form_invalid(self, form) -> HttpResponse:
        return self.render_to_response(self.get_context_data(form=form), status=400)


account_password = ratelimit("password_change")(ShopPasswordChangeView.as_view())
password_reset = ratelimit("password_reset")(ShopPasswordResetView.as_view())
password_reset_done = auth_views.PasswordResetDoneView.as_view(template_name="registration/password_reset_done.html")
password_reset_confirm = ratelimit("password_reset")(ShopPasswordResetConfirmView.as_view())
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="registration/password_reset_complete.html")
