from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from orders import webhooks

admin.site.site_header = "GiftDesk"
admin.site.site_title = "GiftDesk"
admin.site.index_title = "Gift cards"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("webhooks/<int:account_id>/", webhooks.receive, name="provider-webhook"),
]
if apps.is_installed("emulators"):  # only with GIFTDESK_EMULATORS on (the demo, the tests)
    urlpatterns.append(path("emulators/", include("emulators.urls")))
