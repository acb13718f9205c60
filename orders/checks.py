"""System checks of the money controls (DESIGN.md "Approvals and limits"); their ids
continue the project's numbering (giftdesk.E001-E004 are in providers/checks.py)."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from orders.approvals import ThresholdsInvalid, thresholds_parse


@register(Tags.security, deploy=True)
def approval_thresholds_set(app_configs, **kwargs) -> list[Warning]:
    """Four eyes is off unless thresholds are given (so the demo sends as before): a
    warning, not an error, since an organisation of one may mean it."""
    if settings.GIFTDESK_APPROVAL_THRESHOLDS is not None:
        return []
    return [Warning(
        "GIFTDESK_APPROVAL_THRESHOLDS is not set, so no batch needs approval: any Sender can send any "
        "amount alone.",
        hint="Set it per currency, e.g. GIFTDESK_APPROVAL_THRESHOLDS=DKK=10000,EUR=1500: a batch reaching "
             "a threshold then waits for an approver who is not its uploader (0 means every batch; a "
             "currency not listed always needs approval).",
        id="giftdesk.W005",
    )]


@register(Tags.security)
def approval_thresholds_valid(app_configs, **kwargs) -> list[Error]:
    """A malformed value would fail every Send at run time; say so at start-up instead,
    with or without --deploy."""
    try:
        thresholds_parse(settings.GIFTDESK_APPROVAL_THRESHOLDS)
    except ThresholdsInvalid as exc:
        return [Error(str(exc), hint="Correct the setting, or unset it to turn approvals off.",
                      id="giftdesk.E006")]
    return []
