"""The static files' storage: whitenoise's compressed, hash-named files once collectstatic has run.

`manage.py collectstatic` writes every file under a name carrying its content's hash (cached
for ever by browsers and proxies), a gzip copy beside it, and the manifest mapping the names.
Without a manifest (collectstatic never ran here: the demo, the tests, the benchmarks) Django's
manifest storage fails every page that names a static file ("Missing staticfiles manifest
entry"); this one names the plain files instead, which whitenoise then finds in the apps'
directories (settings: WHITENOISE_USE_FINDERS), and says once in the log that collectstatic
is missing. Production runs collectstatic (README "Production setup").
"""

from __future__ import annotations

import logging

from django.conf import settings
from whitenoise.storage import CompressedManifestStaticFilesStorage

logger = logging.getLogger(__name__)


class ManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    _said_uncollected = False

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest: collectstatic has not run
            if not settings.DEBUG and not ManifestStaticFilesStorage._said_uncollected:
                ManifestStaticFilesStorage._said_uncollected = True
                logger.info("No static files manifest in %s: serving the plain files; run "
                            "`manage.py collectstatic` for hashed, compressed ones.", self.location)
            return name
        return super().stored_name(name)
