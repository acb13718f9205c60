from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from giftdesk import health, twofactor
from orders import webhooks

admin.site.site_header = "GiftDesk"
admin.site.site_title = "GiftDesk"
admin.site.index_title = "Gift cards"
# Asks for the authenticator code of users who have a device (templates/admin/login.html).
admin.site.login_form = twofactor.AdminLoginForm

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/two-factor/", admin.site.admin_view(twofactor.two_factor_view), name="admin-two-factor"),
    path("admin/", admin.site.urls),
    path("webhooks/<int:account_id>/", webhooks.receive, name="provider-webhook"),
    # For load balancers and monitoring: anonymous, never redirected (giftdesk/health.py).
    path("health/", health.health, name="health"),
    path("health/web/", health.health_web, name="health-web"),
]
if apps.is_installed("emulators"):  # only with GIFTDESK_EMULATORS on (the demo, the tests)
    urlpatterns.append(path("emulators/", include("emulators.urls")))
