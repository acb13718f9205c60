"""Mounted by giftdesk/urls.py at "emulators/" when settings.GIFTDESK_EMULATORS is on."""

from django.urls import path

from providers.emulators import views

app_name = "emulators"

urlpatterns = [
    path("<str:kind>/<path:rest>", views.emulator_endpoint, name="endpoint"),
]
