"""Mounted by giftdesk/urls.py at "emulators/" when the app is installed."""

from django.urls import path

from emulators import views

app_name = "emulators"

urlpatterns = [
    path("<str:kind>/<path:rest>", views.emulator_endpoint, name="endpoint"),
]
