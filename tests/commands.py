"""Running management commands in tests, the way a shell would see them."""

from io import StringIO

from django.core.management import call_command


def run_command(name: str, *args) -> tuple[int, str]:
    """Run a command; return its exit status and everything it printed."""
    out = StringIO()
    try:
        call_command(name, *[str(arg) for arg in args], stdout=out, stderr=out)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue()
    return 0, out.getvalue()


def send_csv(*args) -> tuple[int, str]:
    return run_command("send_csv", *args)
