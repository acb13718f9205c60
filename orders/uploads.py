"""Uploaded spreadsheets between preview and confirm: stored by GiftDesk, claimed by ticket.

django-import-export keeps the uploaded file between the preview and the confirm step and
sends its name through the browser in a hidden field (`import_file_name`); its default
storage then reads, and deletes, whatever file under the system's temporary directory the
posted name points at. Here instead:
- a file is stored under a random token in GIFTDESK_UPLOAD_DIR (0700, files 0600), never
  under a name that came from the browser;
- the confirm form carries a ticket: the token signed together with the uploader's id
  (django.core.signing, timestamped), so only the user who uploaded a file can confirm it,
  and only while it is kept; anything else is refused before a file is touched;
- a file is removed on confirm or when its upload is refused, and `uploads_sweep` removes
  previews nobody confirmed after GIFTDESK_UPLOAD_MAX_AGE_HOURS (it holds recipients'
  personal data).
After a form error (no account chosen, "Send at" in the past, ...) the upload form keeps
the file the same way: the form carries a "kept" ticket (its own salt, so the two kinds of
ticket are never mistaken for each other) naming the token, the uploader and the file's
name; the next submit without a new file claims it (`kept_upload_claim`), and nobody else's
ticket, no forged value and no expired one reads a file.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import signing
from import_export.tmp_storages import BaseStorage

_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}\Z")  # secrets.token_urlsafe(24)
_TICKET_SALT = "giftdesk.orders.uploads.ticket"
_KEPT_SALT = "giftdesk.orders.uploads.kept"

NOT_YOURS = ("This confirmation does not match a file you uploaded, so nothing was imported. "
             "Upload the file again and confirm its preview.")
EXPIRED = ("This preview is older than {hours} and its file has been deleted, so nothing was "
           "imported. Upload the file again.")
KEPT_NOT_YOURS = ("The file kept from your last try could not be found for you, so it was not used. "
                  "Choose the file again.")
KEPT_EXPIRED = ("The file kept from your last try is older than {hours} and has been deleted. "
                "Choose the file again.")
KEPT_GONE = ("The file kept from your last try is no longer kept (it was used or has expired). "
             "Choose the file again.")
GONE = ("The file of this preview is no longer kept: it was already imported or has expired. "
        "Nothing more was imported; check the batch list, and upload the file again if you need it.")


class UploadRefused(Exception):
    """A confirm step that names no upload of this user's that is still kept; the message says what to do."""


def upload_dir() -> Path:
    directory = Path(settings.GIFTDESK_UPLOAD_DIR)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is reduced by the umask and an existing directory may be looser: only
    # GiftDesk's own user may list or read recipients' files.
    if stat.S_IMODE(directory.stat().st_mode) != 0o700:
        directory.chmod(0o700)
    return directory


def _path(token: str) -> Path:
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise UploadRefused(NOT_YOURS)
    return upload_dir() / token


def _max_age_seconds() -> float:
    return settings.GIFTDESK_UPLOAD_MAX_AGE_HOURS * 3600


def _max_age_text() -> str:
    hours = settings.GIFTDESK_UPLOAD_MAX_AGE_HOURS  # a float: "24 hours", "1 hour", "1.5 hours"
    return f"{hours:g} hour{'' if hours == 1 else 's'}"


class UploadStorage(BaseStorage):
    """import-export's storage between preview and confirm (IMPORT_EXPORT_TMP_STORAGE_CLASS).

    `name` is the token; import-export sets it from the confirm form, which only lets a
    token through from a valid ticket (see `upload_claim`), and `_path` refuses anything
    that is not a token shape, so no name can reach outside the directory.
    """

    def save(self, data) -> None:
        uploads_sweep()  # Cheap, and it also keeps a web server without a worker clean.
        if isinstance(data, str):
            data = data.encode(self.encoding or "utf-8")
        self.name = secrets.token_urlsafe(24)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(_path(self.name), flags, 0o600), "wb") as file:
            file.write(data)

    def read(self):
        data = _path(self.name).read_bytes()
        return data if "b" in self.read_mode else data.decode(self.encoding or "utf-8")

    def remove(self) -> None:
        upload_discard(self.name)


def upload_discard(token: str) -> None:
    try:
        _path(token).unlink(missing_ok=True)
    except UploadRefused:
        pass  # Not a token: there is no file of ours to remove.


def upload_ticket(token: str, *, user_id: int) -> str:
    """What the confirm form carries instead of a file name."""
    return signing.dumps({"token": token, "user": user_id}, salt=_TICKET_SALT)


@dataclass(frozen=True)
class _Refusals:
    """What a kind of ticket says when it is refused (its messages are worded for its form)."""

    not_yours: str
    expired: str  # with {hours}
    gone: str


_CONFIRM_REFUSALS = _Refusals(not_yours=NOT_YOURS, expired=EXPIRED, gone=GONE)
_KEPT_REFUSALS = _Refusals(not_yours=KEPT_NOT_YOURS, expired=KEPT_EXPIRED, gone=KEPT_GONE)


def _claim(ticket: str, *, user_id: int | None, salt: str, refusals: _Refusals) -> tuple[dict, Path, int]:
    """The signed data of this user's own ticket of this kind, its file's path and size.

    Raises UploadRefused (with the kind's message) for anything else: a path, a made-up or
    altered value, a ticket of the other kind, another user's ticket, an expired one, or a
    file already used or swept.
    """
    try:
        data = signing.loads(ticket, salt=salt, max_age=_max_age_seconds())
    except signing.SignatureExpired:
        raise UploadRefused(refusals.expired.format(hours=_max_age_text())) from None
    except signing.BadSignature:
        raise UploadRefused(refusals.not_yours) from None
    if user_id is None or not isinstance(data, dict) or data.get("user") != user_id:
        raise UploadRefused(refusals.not_yours)
    try:
        path = _path(data.get("token"))
    except UploadRefused:
        raise UploadRefused(refusals.not_yours) from None
    try:
        info = path.stat()
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        raise UploadRefused(refusals.gone)  # used, swept, or never a file of ours
    return data, path, info.st_size


def upload_claim(ticket: str, *, user_id: int | None) -> str:
    """The token of this user's own upload named by `ticket` (a confirm form's), if it is
    still kept; UploadRefused otherwise (see `_claim`)."""
    _, path, _ = _claim(ticket, user_id=user_id, salt=_TICKET_SALT, refusals=_CONFIRM_REFUSALS)
    return path.name


def uploads_sweep() -> int:
    """Remove uploads older than GIFTDESK_UPLOAD_MAX_AGE_HOURS; return how many.

    Only token-named files are touched, so a directory shared with anything else is safe.
    """
    directory = Path(settings.GIFTDESK_UPLOAD_DIR)
    if not directory.is_dir():
        return 0  # Nothing was ever uploaded on this machine (e.g. a worker-only host).
    cutoff = time.time() - _max_age_seconds()
    removed = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if (_TOKEN.match(entry.name) and entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


@dataclass(frozen=True)
class KeptUpload:
    """A file kept after a form error, for the uploader's next try."""

    token: str
    name: str  # the file's name as the browser sent it, for the page and the batch
    size: int

    def read(self) -> bytes:
        return _path(self.token).read_bytes()


def upload_store(data: bytes) -> str:
    """Store bytes under a new token (as a preview does) and return the token."""
    storage = UploadStorage(read_mode="rb")
    storage.save(data)
    return storage.name


def kept_upload_ticket(token: str, *, user_id: int, name: str) -> str:
    """What the upload form carries after an error: the kept file, its uploader, its name."""
    return signing.dumps({"token": token, "user": user_id, "name": name}, salt=_KEPT_SALT)


def kept_upload_claim(ticket: str, *, user_id: int | None) -> KeptUpload:
    """This user's file kept by `ticket` (an upload form's), if it is still there;
    UploadRefused otherwise (see `_claim`)."""
    data, path, size = _claim(ticket, user_id=user_id, salt=_KEPT_SALT, refusals=_KEPT_REFUSALS)
    return KeptUpload(token=path.name, name=str(data.get("name") or "upload"), size=size)
