"""`manage.py run_worker`: django-q2's `qcluster`, stopping within seconds on SIGTERM or SIGINT.

Why `qcluster` alone hangs when SIGTERM reaches its whole process group (what systemd's
default KillMode, `kill -- -PGID` and a terminal's process group get): django-q2 1.11's
Sentinel process sets SIGTERM to SIG_DFL, so the group signal kills it (and the pusher,
monitor and workers it forked, which inherit that) at once, usually while it sleeps in
`stop_event.wait()` as a registered waiter of that multiprocessing Event's Condition. The
main process's handler (`Cluster.sig_handler` -> `stop()`) then calls `stop_event.set()`,
whose `notify_all()` waits for every registered waiter to acknowledge, and the dead one
never does: "stopping" for ever. And a second signal that lands while the handler waits in
`stop_event.set()` (`scripts/run` sends TERM right after Ctrl-C's INT) runs the handler again
inside it, on the event's non-reentrant lock: a rarer hang with every process alive.

So this command's cluster handles a stop signal without ever blocking in the handler: it
sets the event from a daemon thread (abandoned if the sentinel is already dead) and ignores
repeated signals; the main thread waits for the sentinel, which either stops gracefully
(SIGINT, or SIGTERM to the main process only: running tasks finish, then the workers, pusher
and monitor stop) or has already died with the group signal (its tasks are safe to run again:
the queue redelivers them and the engine reconciles requests left in flight).
"""

from __future__ import annotations

import os
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_q.cluster import Cluster
from django_q.conf import logger


class CleanStopCluster(Cluster):
    stop_requested = False

    def sig_handler(self, signum, frame):
        if self.stop_requested or self.stop_event is None:
            return  # Already stopping; re-entering Event.set() here would deadlock.
        self.stop_requested = True
        logger.info("Q Cluster %s stopping (signal %s).", self.name, signum)
        threading.Thread(target=self.stop_event.set, name="qcluster-stop", daemon=True).start()


class Command(BaseCommand):
    help = ("Start the task-queue worker (django-q2's cluster: GIFTDESK_WORKERS processes). "
            "SIGINT, or SIGTERM to this process, stops it after the tasks in progress; SIGTERM "
            "to its whole process group stops it at once.")

    def add_arguments(self, parser):
        parser.add_argument("-n", "--name", dest="cluster_name", default=None,
                            help="Cluster (queue) name instead of Q_CLUSTER's, as for qcluster.")

    def handle(self, *args, cluster_name=None, **options):
        settings.SECRET_KEY  # Like qcluster: refuse to start without the signing key.
        if cluster_name:
            os.environ["Q_CLUSTER_NAME"] = cluster_name
        cluster = CleanStopCluster()
        try:
            cluster.start()
        except RuntimeError:
            if not cluster.stop_requested:
                raise  # The sentinel died on its own while starting.
        # Wait here, not in multiprocessing's exit hook, so signals arrive in a running
        # interpreter and the stop thread can still be started.
        cluster.sentinel.join()
        code = cluster.sentinel.exitcode
        if not cluster.stop_requested:
            raise CommandError(f"The worker's sentinel process ended unexpectedly (exit code {code}).")
        if code:
            logger.info("Q Cluster %s stopped by the signal; tasks in progress will run again.",
                        cluster.name)
        else:
            logger.info("Q Cluster %s has stopped.", cluster.name)
