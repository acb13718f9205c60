"""The page a locked-out login gets (django-axes calls this instead of its plain text)."""

from django.conf import settings
from django.contrib import admin
from django.template.response import TemplateResponse


def lockout_response(request, original_response=None, credentials=None):
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    context = {
        **admin.site.each_context(request),
        "title": "Account locked",
        "minutes": minutes,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    return TemplateResponse(request, "admin/locked_out.html", context,
                            status=settings.AXES_HTTP_RESPONSE_CODE).render()
