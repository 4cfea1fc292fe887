"""Command texts: the English written in the cogs is the English catalog's, word for word."""

import ast
from pathlib import Path

from bot.i18n import Messages

COGS = Path(__file__).resolve().parents[3] / "cogs"


def _command_texts() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(COGS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "text"
                and len(node.args) == 2
                and all(isinstance(arg, ast.Constant) for arg in node.args)
            ):
                english, key = (arg.value for arg in node.args)
                found.append((f"{path.name}:{node.lineno}", key, english))
    return found


def test_the_scan_finds_the_command_texts():
    keys = {key for _, key, _ in _command_texts()}
    assert {"cmd.imagine.name", "cmd.budget.set_name", "cmd.choice.period_daily"} <= keys


def test_english_in_code_matches_the_english_catalog():
    messages = Messages.load()
    differing = [
        f"{where} {key}: {english!r} != {messages.template('en', key)!r}"
        for where, key, english in _command_texts()
        if english != messages.template("en", key)
    ]
    assert differing == []
