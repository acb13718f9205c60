"""GiftDesk's admin site: Django's own, with a start page (issue 10, finding 3).

Installed as the default site (giftdesk.apps.GiftDeskAdminConfig), so every module still
registers on `admin.site`. Two differences: the index carries the start page's parts
(orders.admin_start_page), and GiftDesk's own apps come first in every app list.
"""

from __future__ import annotations

from django.contrib import admin

from orders.admin_start_page import start_page_context

# Everyone's work first; Django's and third parties' apps after, alphabetically as before.
OWN_APPS = ("orders", "providers", "audit")


class GiftDeskAdminSite(admin.AdminSite):
    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        own = {label: place for place, label in enumerate(OWN_APPS)}
        return sorted(apps, key=lambda app: own.get(app["app_label"], len(OWN_APPS)))  # stable: the rest keep their order

    def index(self, request, extra_context=None):
        return super().index(request, {**start_page_context(self, request), **(extra_context or {})})
