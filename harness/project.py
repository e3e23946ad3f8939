"""The project's pytest configuration as the ``shakeout`` commands read it: the same ini file,
rootdir, ``pythonpath`` and ``chaos_*`` keys pytest itself would use.

The file is found by pytest's rules (its "Finding the rootdir" documentation): from the common
ancestor of the arguments upwards, the first directory holding ``pytest.toml``, ``.pytest.toml``,
``pytest.ini``, ``.pytest.ini``, ``pyproject.toml`` with a ``[tool.pytest]`` table, ``tox.ini``
with ``[pytest]`` or ``setup.cfg`` with ``[tool:pytest]``; without one, the first
``pyproject.toml`` marks the rootdir. So a command and a pytest run over the same paths agree
about the agent, the seed and the import path (a test compares the two on several layouts).
"""

from __future__ import annotations

import configparser
import os
import shlex
import sys
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.redact import Redactor, redactor_for


class ProjectConfigError(ValueError):
    """An ini key holds a value the commands cannot use (e.g. a seed that is not an integer)."""


@dataclass(frozen=True)
class ProjectConfig:
    """What pytest would read for these arguments.

    Attributes:
        rootdir: pytest's rootdir.
        inifile: the configuration file pytest would read, or None.
        ini: its raw ini values (strings, or lists from a TOML file).
    """

    rootdir: Path
    inifile: Path | None
    ini: dict[str, Any] = field(default_factory=dict)

    def value(self, key: str) -> str | None:
        """One ini key as text (None when not set or empty)."""
        raw = self.ini.get(key)
        if raw is None or raw == "":
            return None
        return " ".join(map(str, raw)) if isinstance(raw, list) else str(raw)

    def lines(self, key: str, *, words: bool = False) -> list[str]:
        """A list-valued ini key: a TOML list, or in an ini file one entry per line (pytest's
        ``linelist``), or with ``words`` per shell word (pytest's ``paths``, e.g. pythonpath)."""
        raw = self.ini.get(key)
        if raw is None:
            return []
        if isinstance(raw, list):
            return [str(x) for x in raw]
        if words:
            return shlex.split(str(raw))
        return [line.strip() for line in str(raw).splitlines() if line.strip()]

    @property
    def agent(self) -> str | None:
        """The ``chaos_agent`` key: the adapter factory ``module:callable``."""
        return self.value("chaos_agent")

    @property
    def seed(self) -> int | None:
        """The ``chaos_seed`` key.

        Raises:
            ProjectConfigError: the key is set but is not an integer.
        """
        text = self.value("chaos_seed")
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            raise ProjectConfigError(
                f"{self.where()}: the chaos_seed ini key must be an integer, got {text!r}"
            ) from None

    @property
    def wall_s(self) -> float | None:
        """The ``chaos_wall_s`` key (seconds)."""
        text = self.value("chaos_wall_s")
        if text is None:
            return None
        try:
            return float(text)
        except ValueError:
            raise ProjectConfigError(
                f"{self.where()}: the chaos_wall_s ini key must be a number of seconds, got "
                f"{text!r}"
            ) from None

    @property
    def pythonpath(self) -> tuple[Path, ...]:
        """The ``pythonpath`` key's directories, relative to the ini file (as pytest does)."""
        base = self.inifile.parent if self.inifile is not None else self.rootdir
        return tuple((base / p).resolve() for p in self.lines("pythonpath", words=True))

    @property
    def pyproject(self) -> Path | None:
        """The rootdir's ``pyproject.toml`` (``[tool.shakeout]`` settings), if there is one."""
        path = self.rootdir / "pyproject.toml"
        return path if path.is_file() else None

    def where(self) -> str:
        """The configuration file, for messages."""
        return str(self.inifile) if self.inifile is not None else f"{self.rootdir} (no ini file)"

    def redactor(self) -> Redactor:
        """The redactor a pytest session here would use (``[tool.shakeout]`` + ini keys)."""
        return redactor_for(
            self.pyproject,
            query=self.lines("chaos_redact_query"),
            fields=self.lines("chaos_redact_fields"),
        )

    @contextmanager
    def importable(self) -> Iterator[None]:
        """``pythonpath`` on ``sys.path`` for the block, first, as pytest puts it."""
        added = [str(p) for p in self.pythonpath if str(p) not in sys.path]
        sys.path[:0] = added
        try:
            yield
        finally:
            for p in added:
                if p in sys.path:
                    sys.path.remove(p)


def find_project(args: Sequence[str] = (), cwd: Path | None = None) -> ProjectConfig:
    """The configuration pytest would read when run from ``cwd`` with ``args``.

    Args:
        args: the paths the command works on (scenario files or directories); none: ``cwd``.
        cwd: the invocation directory (default: the current one).

    Raises:
        ProjectConfigError: the configuration file pytest would read cannot be parsed.
    """
    here = (Path.cwd() if cwd is None else cwd).resolve()
    dirs = [
        p if p.is_dir() else p.parent
        for p in ((here / a.split("::", 1)[0]).resolve() for a in args if not a.startswith("-"))
        if p.exists()
    ]
    ancestor = Path(os.path.commonpath([str(d) for d in dirs])) if dirs else here
    pyproject: Path | None = None
    for base in (ancestor, *ancestor.parents):
        for name, loader in _LOADERS:
            path = base / name
            if not path.is_file():
                continue
            if name == "pyproject.toml" and pyproject is None:
                pyproject = path
            ini = loader(path)
            if ini is not None:
                return ProjectConfig(rootdir=base, inifile=path, ini=ini)
    if pyproject is not None:
        return ProjectConfig(rootdir=pyproject.parent, inifile=pyproject)
    for base in (ancestor, *ancestor.parents):
        if (base / "setup.py").is_file():
            return ProjectConfig(rootdir=base, inifile=None)
    shared = Path(os.path.commonpath([str(here), str(ancestor)]))
    return ProjectConfig(
        rootdir=ancestor if shared == Path(shared.anchor) else shared, inifile=None
    )


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProjectConfigError(f"{path}: cannot be read as TOML: {exc}") from None


def _ini(path: Path, section: str) -> dict[str, Any] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ProjectConfigError(f"{path}: cannot be read as an ini file: {exc}") from None
    return dict(parser[section]) if parser.has_section(section) else None


def _pytest_toml(path: Path) -> dict[str, Any] | None:
    table = _toml(path).get("pytest", {})
    return dict(table) if isinstance(table, dict) else {}


def _pytest_ini(path: Path) -> dict[str, Any] | None:
    return _ini(path, "pytest") or {}


def _pyproject(path: Path) -> dict[str, Any] | None:
    tool = _toml(path).get("tool", {}).get("pytest")
    if not isinstance(tool, dict):
        return None
    native = {k: v for k, v in tool.items() if k != "ini_options"}
    if native:
        return native
    options = tool.get("ini_options")
    return dict(options) if isinstance(options, dict) else None


_LOADERS = (
    ("pytest.toml", _pytest_toml),
    (".pytest.toml", _pytest_toml),
    ("pytest.ini", _pytest_ini),
    (".pytest.ini", _pytest_ini),
    ("pyproject.toml", _pyproject),
    ("tox.ini", lambda p: _ini(p, "pytest")),
    ("setup.cfg", lambda p: _ini(p, "tool:pytest")),
)
