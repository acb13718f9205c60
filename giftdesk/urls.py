from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from providers import webhooks

admin.site.site_header = "GiftDesk"
admin.site.site_title = "GiftDesk"
admin.site.index_title = "Gift cards"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("webhooks/<int:account_id>/", webhooks.receive, name="provider-webhook"),
    # Answers 404 unless GIFTDESK_EMULATORS is on (checked per request, see the view).
    path("emulators/", include("providers.emulators.urls")),
]
