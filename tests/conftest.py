from pathlib import Path

# Every module in tests/fixtures/ is a fixture plugin (emulators, data, worker processes).
pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (Path(__file__).parent / "fixtures").glob("*.py")
    if path.stem != "__init__"
)
