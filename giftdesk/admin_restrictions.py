"""Administrators' pages (DESIGN.md "Roles"): the task queue, submissions and webhook
events show the engine's inner workings and let it be disturbed (resubmitting a task sends
cards), so they are hidden from and refused to everyone but administrators (superusers),
whatever permissions a group was given."""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdminMixin:
    """Put before a ModelAdmin class: history written by the application (the engine, the
    audit trail), never edited by hand. No add, change or delete, administrators included:
    the change page is a read-only view, a forged POST is refused (403), and "delete
    selected" is not offered."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def is_administrator(request) -> bool:
    user = request.user
    return user.is_active and user.is_superuser


class AdministratorsOnlyMixin:
    """Put before a ModelAdmin class: every page and action of it for superusers only. An
    administrator still gets only what the admin class itself allows (e.g. no add)."""

    def has_module_permission(self, request):
        return is_administrator(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_administrator(request) and super().has_view_permission(request, obj)

    # "change" also grants viewing in Django's admin: each permission is closed on its own.
    def has_change_permission(self, request, obj=None):
        return is_administrator(request) and super().has_change_permission(request, obj)

    def has_add_permission(self, request, *args, **kwargs):
        return is_administrator(request) and super().has_add_permission(request, *args, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return is_administrator(request) and super().has_delete_permission(request, obj)


def restrict_to_administrators(site: admin.AdminSite, models) -> None:
    """Re-register each model's existing admin class (a third party's, kept as it is) with
    `AdministratorsOnlyMixin` in front of it."""
    for model in models:
        if not site.is_registered(model):
            continue
        current = type(site.get_model_admin(model))
        if issubclass(current, AdministratorsOnlyMixin):
            continue
        site.unregister(model)
        site.register(model, type(f"AdministratorsOnly{current.__name__}", (AdministratorsOnlyMixin, current), {}))


def restrict_task_queue(site: admin.AdminSite) -> None:
    """django-q2's own pages (successful and failed tasks, schedules, the ORM broker's queue)."""
    import django_q.admin  # noqa: F401 — registers its pages, so they exist to be wrapped
    from django_q.models import Failure, OrmQ, Schedule, Success

    restrict_to_administrators(site, [Success, Failure, Schedule, OrmQ])
