from django.contrib.admin.apps import AdminConfig


class GiftDeskAdminConfig(AdminConfig):
    """django.contrib.admin, with GiftDesk's site as `admin.site` (Django's documented way
    of overriding the default admin site)."""

    default_site = "giftdesk.admin_site.GiftDeskAdminSite"
