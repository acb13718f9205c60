"""Where the action being recorded comes from: the client address of the web request being
served, or the command line. Set per request by `audit.middleware`, read by `audit.record`,
so services record it without every signature carrying a request."""

from __future__ import annotations

import getpass
from contextvars import ContextVar

COMMAND_LINE = "command line"

_address: ContextVar[str] = ContextVar("giftdesk_audit_address", default=COMMAND_LINE)


def current_address() -> str:
    return _address.get()


def address_set(address: str):
    """Returns the token `address_reset` needs."""
    return _address.set(address or "unknown")


def address_reset(token) -> None:
    _address.reset(token)


def os_user() -> str:
    """Who ran a management command, as the operating system names them: what a command
    run without a GiftDesk user (--user) can say about who it was."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 — no login name in this environment (a bare container)
        return "unknown"
