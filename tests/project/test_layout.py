"""The shape DESIGN.md promises, checked on the source: which package may import which.

`orders` depends on `providers`, never the reverse; `audit` depends on neither (both write
to it); production code never imports the emulators (demo and test infrastructure); provider clients never see the ORM.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (also inside functions)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def offending_imports(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / package).rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in forbidden
    )


@pytest.mark.parametrize(("package", "forbidden"), [
    ("providers", ("orders", "emulators")),
    ("orders", ("emulators",)),
    ("giftdesk", ("emulators",)),  # the project may mount any app; the emulators only by name
    # Both apps record into the audit trail: it names what it records by kind and id.
    ("audit", ("orders", "providers", "emulators")),
])
def test_packages_import_only_in_the_allowed_direction(package, forbidden):
    assert offending_imports(package, forbidden) == []


def test_provider_clients_never_see_the_orm():
    clients = ROOT / "providers" / "clients"
    offending = sorted(
        f"{path.name} imports {module}"
        for path in clients.glob("*.py")
        for module in imported_modules(path)
        if module.startswith(("providers.models", "orders", "django.db.models")) and module != "django.db.models.enums"
    )
    assert offending == []


def test_the_check_finds_an_import_in_the_wrong_direction(tmp_path):
    """The checks above would see a violation: imports inside functions count too."""
    module = tmp_path / "module.py"
    module.write_text("def view():\n    from orders.dispatch import account_pump\n")
    assert imported_modules(module) == {"orders.dispatch"}
