"""The ``protoface`` command line explains itself: every option of every command has
help that gives its default, and the README's command table lists exactly the
commands the parser has (with only options they take)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from protoface.cli import Parser, _parser

README = Path(__file__).resolve().parents[2] / "README.md"

COMMANDS = {
    "up", "api", "worker", "supervisor", "webhooks", "keys create", "credits grant",
    "audit export", "audit verify", "audit report", "render", "avatar inspect",
}


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> Iterator[
    tuple[str, argparse.ArgumentParser]
]:
    """Every command that runs something (``audit verify``, not ``audit``), with its parser."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield " ".join(words), parser
        return
    for name, child in groups[0].choices.items():
        yield from commands(child, (*words, name))


def shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text ``--help`` prints beside ``action``, defaults filled in."""
    return parser._get_formatter()._expand_help(action)


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    """Options whose ``--help`` line lacks a text, or (for an optional, valued one) its default."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        name = "/".join(action.option_strings)
        if not (action.help or "").strip():
            missing.append(f"{name}: no help")
        elif not action.required and action.nargs != 0 and "default" not in shown_help(
            parser, action
        ):
            missing.append(f"{name}: no default shown")
    return missing


# ── --help ──────────────────────────────────────────────────────────────────────


def test_the_walk_reaches_every_command() -> None:
    assert {name for name, _ in commands(_parser())} == COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help_that_shows_its_default(command: str) -> None:
    parser = dict(commands(_parser()))[command]
    assert undocumented(parser) == []


def test_an_option_without_help_or_default_is_found() -> None:
    parser = Parser(prog="toy")
    parser.add_argument("--bare", default=3)
    parser.add_argument("--vague", default=None, help="something")
    parser.add_argument("--fine", default=3, help="a number")
    parser.add_argument("--flag", action="store_true", help="a switch")
    parser.add_argument("--must", required=True, help="required")
    assert undocumented(parser) == ["--bare: no help", "--vague: no default shown"]


def test_help_shows_a_default_next_to_the_option() -> None:
    parser = dict(commands(_parser()))["up"]
    assert "(default: 8000)" in " ".join(parser.format_help().split())


# ── the README's command table ──────────────────────────────────────────────────

HEADING = re.compile(r"^#{1,6}\s+Command line\s*$", re.MULTILINE)
ROW = re.compile(r"^\|\s*`protoface (?P<usage>[^`]+)`\s*\|", re.MULTILINE)
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def readme_table(text: str) -> dict[str, set[str]]:
    """Command → options named in the first column of the table under the "Command
    line" heading: rows whose first cell is `` `protoface <command> [options…]` ``."""
    heading = HEADING.search(text)
    assert heading, "README.md has no 'Command line' heading"
    rest = text[heading.end():]
    following = re.search(r"^#{1,6}\s", rest, re.MULTILINE)
    section = rest[: following.start()] if following else rest
    table: dict[str, set[str]] = {}
    for row in ROW.finditer(section):
        usage = row.group("usage").split()
        words = list(_leading(usage))
        table[" ".join(words)] = set(OPTION.findall(" ".join(usage[len(words):])))
    return table


def _leading(usage: list[str]) -> Iterator[str]:
    """``audit export --out x`` → ``audit``, ``export``: the words before any option."""
    for word in usage:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            return
        yield word


def test_the_table_parser_reads_commands_and_their_options() -> None:
    text = ("# Tool\n\n## Command line\n\n| command | what |\n|---|---|\n"
            "| `protoface audit export --out a.duckdb [--readers N]` | x |\n"
            "| `protoface render -o out.mp4` | y |\n\n## Next\n\n"
            "| `protoface up` | not in the section |\n")
    assert readme_table(text) == {"audit export": {"--out", "--readers"}, "render": {"-o"}}


def test_the_readme_command_table_lists_exactly_the_parsers_commands() -> None:
    table = readme_table(README.read_text(encoding="utf-8"))
    parsers = dict(commands(_parser()))
    assert set(table) == set(parsers)
    for command, options in table.items():
        known = {o for a in parsers[command]._actions for o in a.option_strings}
        assert options <= known, (command, options - known)
