"""/health/ for load balancers and monitoring (django-health-check 4.x).

Answers anonymously: 200 when every check passes, 500 naming what failed; HTML, or JSON for
`Accept: application/json` (also `?format=json`, `?format=text`). Besides the package's
database and cache checks, GiftDesk's own:
- the upload directory takes, returns and deletes a file (a preview's file waits there);
- every migration is applied (a web machine running newer code than its database is not
  ready: the load balancer keeps it out until `migrate` has run);
- the task queue: a worker cluster reported within GIFTDESK_HEALTH_WORKER_SECONDS.
`/health/web/` leaves the task queue out: the admin keeps working while the workers are down
(orders wait, queued), so a load balancer that should not take every web machine out for
that probes it instead.
"""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Q
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

WEB_CHECKS = (
    "health_check.Database",
    "health_check.Cache",
    "giftdesk.health.Uploads",
    "giftdesk.health.Migrations",
)
ALL_CHECKS = (*WEB_CHECKS, "giftdesk.health.TaskQueue")


class _ClosesItsConnection:
    """Sync checks run in the view's worker threads: each closes the database connection it
    opened there, or every probe would leave one open (PostgreSQL counts them)."""

    alias = "default"

    def run(self) -> None:
        try:
            self.check()
        except DatabaseError as error:
            raise ServiceUnavailable(f"Database error: {type(error).__name__}") from error
        finally:
            connections[self.alias].close()

    def check(self) -> None:
        raise NotImplementedError


@dataclasses.dataclass
class Uploads(HealthCheck):
    """GIFTDESK_UPLOAD_DIR takes, returns and deletes a small file (shared by the web machines)."""

    def run(self) -> None:
        from orders.uploads import upload_dir

        content = uuid.uuid4().hex.encode()
        # Not token-shaped: `uploads_sweep` never mistakes it for an upload.
        try:
            path = upload_dir() / f"health-check-{content.decode()}.txt"
            try:
                path.write_bytes(content)
                if path.read_bytes() != content:
                    raise ServiceUnavailable("The upload directory returned other content than written")
            finally:
                path.unlink(missing_ok=True)
        except OSError as error:
            raise ServiceUnavailable(f"The upload directory: {error.strerror or error}") from error


@dataclasses.dataclass
class Migrations(_ClosesItsConnection, HealthCheck):
    """Every migration of this code is applied to the database."""

    # Once all are applied they stay applied for this process's code: later probes skip the
    # (tens of milliseconds of) reading the migration files.
    _all_applied = False

    def check(self) -> None:
        if Migrations._all_applied:
            return
        executor = MigrationExecutor(connections[self.alias])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in plan[:3])
            more = f" and {len(plan) - 3} more" if len(plan) > 3 else ""
            raise ServiceUnavailable(f"Migrations not applied: {names}{more} (run manage.py migrate)")
        Migrations._all_applied = True


@dataclasses.dataclass
class TaskQueue(_ClosesItsConnection, HealthCheck):
    """A django-q2 cluster (`manage.py run_worker`) reported within GIFTDESK_HEALTH_WORKER_SECONDS.

    With the Redis broker a running cluster's status is in Redis (refreshed twice a second,
    kept 3 s). With the ORM broker it is in each process's own cache, out of sight, so the
    database says it: a cluster runs the due schedules about every 30 s, and the engine's
    sweep is due every minute, so a schedule overdue by more than the limit means no cluster
    has been running for that long.
    """

    def check(self) -> None:
        from django_q.conf import Conf
        from django_q.models import Schedule
        from django_q.status import Stat

        try:
            if any(stat.status not in (Conf.STOPPING, Conf.STOPPED) for stat in Stat.get_all()):
                return
        except Exception:  # noqa: BLE001 - the broker unreachable: the schedules still tell
            pass
        limit = settings.GIFTDESK_HEALTH_WORKER_SECONDS
        now = timezone.now()
        ours = Q(cluster__isnull=True) | Q(cluster=Conf.CLUSTER_NAME)
        oldest = (Schedule.objects.filter(ours).exclude(repeats=0).exclude(next_run=None)
                  .filter(next_run__lt=now - timedelta(seconds=limit))
                  .order_by("next_run").values_list("next_run", flat=True).first())
        if oldest is not None:
            raise ServiceUnavailable(
                f"No task-queue worker seen for {(now - oldest).total_seconds():.0f} s: a schedule "
                f"is overdue by more than {limit:g} s (is `manage.py run_worker` running?)")


class HealthView(HealthCheckView):
    def get_executor(self):
        # Threads of its own, joined when the answer is ready, rather than the event loop's.
        return ThreadPoolExecutor(max_workers=len(ALL_CHECKS), thread_name_prefix="health")


health = HealthView.as_view(checks=ALL_CHECKS)
health_web = HealthView.as_view(checks=WEB_CHECKS)
