from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<slug:slug>/", views.category, name="category"),
    path("p/<slug:slug>/", views.product, name="product"),
    path("p/<slug:slug>/review/", views.review, name="review"),
    path("cart/", views.cart, name="cart"),
    path("cart/add/<int:product_id>/", views.cart_add, name="cart_add"),
    path("cart/line/<int:item_id>/", views.cart_update, name="cart_update"),
    path("checkout/", views.checkout, name="checkout"),
    path("account/", views.account, name="account"),
    path("account/orders/<str:number>/", views.order_detail, name="order_detail"),
    path("account/signup/", views.signup, name="signup"),
    path("account/login/", views.login_view, name="login"),
    path("account/logout/", views.logout_view, name="logout"),
    path("account/details/", views.account_details, name="account_details"),
    path("account/password/", views.account_password, name="password_change"),
    path("account/password/reset/", views.password_reset, name="password_reset"),
    path("account/password/reset/done/", views.password_reset_done, name="password_reset_done"),
    path("account/password/reset/<uidb64>/<token>/", views.password_reset_confirm, name="password_reset_confirm"),
    path("account/password/reset/complete/", views.password_reset_complete, name="password_reset_complete"),
]
