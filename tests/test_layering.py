"""The domain (bot/) never imports discord; cogs/ is the only Discord-facing package."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_domain_module_imports_discord():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "bot").rglob("*.py")
        if "discord" in _imports(path)
    ]
    assert offenders == []


def test_importing_the_whole_domain_loads_no_discord():
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "bot").glob("*.py")
        if path.stem != "__main__"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print('discord' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def _cogs_files() -> list[Path]:
    return sorted((ROOT / "cogs").rglob("*.py"))


def test_no_discord_module_opens_a_database_session():
    # Cogs parse, call one use case of the domain and render: transactions live in bot/.
    offenders = [
        str(path.relative_to(ROOT))
        for path in _cogs_files()
        if ".transaction(" in path.read_text() or ".session(" in path.read_text()
    ]
    assert offenders == []


def test_only_the_composition_root_knows_the_client_class():
    offenders = [
        str(path.relative_to(ROOT))
        for path in _cogs_files()
        if "cogs.core.client" in _imports_full(path)
        and path.relative_to(ROOT).as_posix() not in {"cogs/main.py"}
    ]
    assert offenders == []


def _imports_full(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_running_the_bot_never_loads_the_simulator():
    # The simulator is imported for a dry run or a test only, never on a production start.
    code = "import sys, cogs.main, bot.cli\nprint('bot.simulator' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
