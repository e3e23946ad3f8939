"""The commands read the ini file pytest would read: compared with pytest's own finder."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.config.findpaths import determine_setup

from harness.project import ProjectConfigError, find_project

LAYOUTS: dict[str, dict[str, str]] = {
    "pytest.ini wins over pyproject in the same directory": {
        "pytest.ini": "[pytest]\nchaos_agent = a:b\npythonpath = src lib\n",
        "pyproject.toml": '[tool.pytest.ini_options]\nchaos_agent = "c:d"\n',
        "scenarios/s.yaml": "",
    },
    "pyproject with ini_options": {
        "pyproject.toml": '[tool.pytest.ini_options]\nchaos_agent = "c:d"\npythonpath = ["src"]\n',
        "sub/scenarios/s.yaml": "",
    },
    "pyproject without a pytest table only marks the rootdir": {
        "pyproject.toml": "[project]\nname = 'x'\n",
        "sub/tox.ini": "[tox]\n",
        "sub/s.yaml": "",
    },
    "a nearer tox.ini with [pytest]": {
        "pyproject.toml": '[tool.pytest.ini_options]\nchaos_agent = "c:d"\n',
        "sub/tox.ini": "[pytest]\nchaos_agent = e:f\n",
        "sub/s.yaml": "",
    },
    "setup.cfg with tool:pytest": {
        "setup.cfg": "[tool:pytest]\nchaos_seed = 7\n",
        "a/s.yaml": "",
    },
    "native [tool.pytest]": {
        "pyproject.toml": '[tool.pytest]\nchaos_seed = "5"\n',
        "s.yaml": "",
    },
    "nothing at all": {"deep/s.yaml": ""},
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("arg", ["file", "none"])
def test_the_same_file_and_rootdir_as_pytest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, arg: str
) -> None:
    monkeypatch.chdir(tmp_path)  # pytest resolves its arguments against the process's cwd
    for name, text in LAYOUTS[layout].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    scenario = next(n for n in LAYOUTS[layout] if n.endswith(".yaml"))
    args = [scenario] if arg == "file" else []
    rootdir, inifile, cfg, _ = determine_setup(
        inifile=None, override_ini=None, args=args, rootdir_cmd_arg=None, invocation_dir=tmp_path
    )
    found = find_project(args, cwd=tmp_path)
    assert (found.rootdir, found.inifile) == (Path(rootdir), inifile)
    for key in ("chaos_agent", "chaos_seed", "pythonpath"):
        theirs = getattr(cfg.get(key), "value", cfg.get(key))
        assert found.ini.get(key) == theirs, key


def test_pythonpath_is_relative_to_the_ini_file_and_on_sys_path_only_inside(
    tmp_path: Path,
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\npythonpath = src\n  lib\n")
    project = find_project([], cwd=tmp_path / "nowhere")
    assert project.pythonpath == (tmp_path / "src", tmp_path / "lib")
    import sys

    with project.importable():
        assert sys.path[:2] == [str(tmp_path / "src"), str(tmp_path / "lib")]
    assert str(tmp_path / "src") not in sys.path


def test_a_seed_that_is_no_integer_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nchaos_seed = abc\n")
    with pytest.raises(ProjectConfigError, match=r"pytest.ini: the chaos_seed ini key must be"):
        _ = find_project([], cwd=tmp_path).seed


def test_a_broken_pyproject_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest\n")
    with pytest.raises(ProjectConfigError, match=r"pyproject.toml: cannot be read as TOML"):
        find_project([], cwd=tmp_path)
