"""Every shell command in README.md and docs/ works from a clone, as written.

The commands are read from the ```sh / ```bash / ```console blocks (console: the lines
after a `$ ` prompt) and from inline code that starts with a known command. `pip install`
must name this package as the clone (`-e '.[extras]'`) with extras it really has, and
other packages the dev extra really installs; `asgi-observe` and `python -m ...` must be
real entry points and modules, each `--option` must be one their `--help` lists, and an
`examples.*` target must name an app the example defines.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```(sh|bash|console|shell)\n(.*?)```", re.DOTALL)
INLINE = re.compile(r"`((?:pip|asgi-observe|python3? -m|uvicorn|hypercorn|granian|daphne) [^`]+)`")
SERVERS = ("uvicorn", "hypercorn", "granian", "daphne")
# Commands the pages show that are not ours to check (system tools, HTTP clients).
OTHERS = ("curl", "promtool", "rm", "mkdir", "cd", "python3", ".", "source", "export")
PLACEHOLDER = re.compile(r"[A-Z]{2,}(?::[A-Z]+)?|myproject|myservice|app:app|\w+\.main:app")


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normal(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0])


@cache
def extras() -> dict[str, list[str]]:
    return _project()["optional-dependencies"]  # type: ignore[return-value]


@cache
def installable() -> set[str]:
    """What the dev extra (and the core) installs, by normalised name."""
    names = {_requirement_name(r) for r in _project()["dependencies"]}  # type: ignore[union-attr]
    for requirements in extras().values():
        names |= {_requirement_name(r) for r in requirements}
    return names - {"asgi-observe"}


def shell_lines(text: str) -> list[str]:
    lines: list[str] = []
    for match in BLOCK.finditer(text):
        body = match.group(2).replace("\\\n", " ")
        for line in body.splitlines():
            if match.group(1) == "console":
                if not line.startswith("$ "):
                    continue  # output, not a command
                line = line[2:]
            if line.strip():
                lines.append(line)
    lines.extend(INLINE.findall(text))
    return lines


def commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, environment assignments left out."""
    words = shlex.split(line, comments=True)
    found: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", "||", ";", "|"):
            found.append([])
        else:
            found[-1].append(word)
    result = []
    for argv in found:
        while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
            argv = argv[1:]
        if argv:
            argv[0] = argv[0].removeprefix(".venv/bin/")
            result.append(argv)
    return result


def all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in shell_lines(page.read_text(encoding="utf-8")):
            found.extend((page.relative_to(ROOT).as_posix(), argv) for argv in commands(line))
    return found


def problems(argv: list[str]) -> list[str]:
    """What is wrong with one command, as a user would run it from the clone's root."""
    program, args = argv[0], argv[1:]
    if program in ("pip", "pip3") or argv[:3] in (["python", "-m", "pip"],):
        return _pip_problems(args if program.startswith("pip") else argv[3:])
    if program == "asgi-observe":
        return _entry_point_problems(argv)
    if program in ("python", "python3") and args[:1] == ["-m"] and len(args) > 1:
        if program == "python3" and args[1] == "venv":
            return []
        return _module_problems(args[1], args[2:])
    if program in SERVERS:
        return _server_problems(program, args)
    if program in OTHERS:
        return []
    return [f"unknown command {program!r}: add it to OTHERS if it is not ours"]


def _pip_problems(args: list[str]) -> list[str]:
    if not args or args[0] != "install":
        return []
    found = []
    for arg in args[1:]:
        if arg.startswith("-"):
            continue
        if arg.startswith("."):
            match = re.fullmatch(r"\.(?:\[([a-z0-9,_-]+)\])?", arg)
            if match is None:
                found.append(f"{arg!r}: install the clone as '.' or '.[extras]'")
                continue
            unknown = set((match.group(1) or "").split(",")) - set(extras()) - {""}
            found.extend(f"{arg!r}: no extra {name!r} in pyproject.toml" for name in unknown)
        elif _requirement_name(arg) == "asgi-observe":
            found.append(f"{arg!r}: asgi-observe is on no package index; use -e '.[...]'")
        elif _requirement_name(arg) not in installable():
            found.append(f"{arg!r}: not a package pyproject.toml installs")
    return found


@cache
def _help(*argv: str) -> str:
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    return result.stdout if result.returncode == 0 else ""


def _options_problems(argv: list[str], help_argv: tuple[str, ...]) -> list[str]:
    text = _help(*help_argv)
    if not text:
        return [f"{' '.join(help_argv)} --help failed"]
    # `[--port P]` in a synopsis names an option too.
    options = {m for arg in argv for m in re.findall(r"(?:^|\[)(--[a-z][a-z0-9-]*)", arg)}
    missing = [o for o in sorted(options - {"--help"}) if not re.search(rf"{o}\b", text)]
    return [f"{option}: not an option of {' '.join(help_argv)}" for option in missing]


def _entry_point_problems(argv: list[str]) -> list[str]:
    scripts = _project()["scripts"]
    if "asgi-observe" not in scripts:  # type: ignore[operator]
        return ["asgi-observe is not in [project.scripts]"]
    script = str(BIN / "asgi-observe")
    args = argv[1:]
    if not args or args[0] in ("--version", "--help", "..."):
        return []
    if args[0] not in ("run", "demo"):
        return [f"asgi-observe has no command {args[0]!r}"]
    found = _options_problems(args, (script, args[0]))
    if args[0] == "run" and len(args) > 1:
        found += _target_problems(args[1])
    return found


def _module_problems(module: str, args: list[str]) -> list[str]:
    if importlib.util.find_spec(module) is None:
        return [f"python -m {module}: no such module"]
    if module.startswith("asgi_observe") and any("--" in arg for arg in args):
        return _options_problems(args, (sys.executable, "-m", module))
    return []


def _server_problems(server: str, args: list[str]) -> list[str]:
    if _normal(server) not in installable():
        return [f"{server} is not in the dev extra"]
    targets = [arg for arg in args if ":" in arg and not arg.startswith("-")]
    found = [problem for target in targets for problem in _target_problems(target)]
    if any(arg.startswith("--") for arg in args):
        found += _options_problems(args, (str(BIN / server),))
    return found


def _target_problems(target: str) -> list[str]:
    if PLACEHOLDER.fullmatch(target) or not target.startswith("examples."):
        return []  # the user's own app
    module, _, attribute = target.partition(":")
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.is_file():
        return [f"{target}: no {path.relative_to(ROOT)}"]
    if not re.search(rf"^{re.escape(attribute)}\b[^=\n]*=", path.read_text(), re.MULTILINE):
        return [f"{target}: {path.relative_to(ROOT)} defines no {attribute!r}"]
    return []


COMMANDS = all_commands()


def test_the_pages_show_commands_to_check() -> None:
    programs = {argv[0] for _page, argv in COMMANDS}
    assert {"pip", "asgi-observe", "uvicorn", "python"} <= programs, programs
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize(
    ("page", "argv"), COMMANDS, ids=[f"{page}:{' '.join(argv)[:60]}" for page, argv in COMMANDS]
)
def test_every_command_works_from_a_clone(page: str, argv: list[str]) -> None:
    assert [] == problems(argv), page


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("pip install 'asgi-observe[cli]'", "asgi-observe is on no package index"),
        ("pip install -e '.[cli,nosuch]'", "no extra 'nosuch'"),
        ("pip install -e '.[otlp]' flask", "'flask': not a package"),
        ("asgi-observe serve app:app", "no command 'serve'"),
        ("asgi-observe run app:app --threads 4", "--threads: not an option"),
        ("python -m asgi_observe.dashboards --title x", "--title: not an option"),
        ("uvicorn examples.nosuch_app:app", "no examples/nosuch_app.py"),
        ("uvicorn examples.starlette_app:application", "defines no 'application'"),
        ("gunicorn app:app", "unknown command 'gunicorn'"),
        ("asgi-observe demo [--hots H]", "--hots: not an option"),
        ("uvicorn examples.starlette_app:app --wokers 2", "--wokers: not an option"),
    ],
)
def test_the_check_finds_commands_that_cannot_work(line: str, expected: str) -> None:
    found = [problem for argv in commands(line) for problem in problems(argv)]
    assert any(expected in problem for problem in found), found
