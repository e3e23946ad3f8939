"""Tests of safe output writes: atomic, never through a link, one-line failures, session exit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.output import (
    OutputError,
    append_text,
    check_directory,
    check_file,
    staged,
    write_text,
)

REPO = Path(__file__).resolve().parents[2]


def test_write_text_is_atomic_creates_parents_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "r.json"
    assert write_text(dest, "one") == dest
    write_text(dest, "two")
    assert dest.read_text() == "two"
    assert [p.name for p in dest.parent.iterdir()] == ["r.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_text_refuses_a_symlink_and_leaves_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "report.md"
    link.symlink_to(victim)
    refused = r"refusing to write the Markdown summary .*symbolic link"
    with pytest.raises(OutputError, match=refused):
        write_text(link, "x", "Markdown summary")
    assert victim.read_text() == "precious"
    assert link.is_symlink()
    dangling = tmp_path / "dangling.md"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="symbolic link"):
        write_text(dangling, "x")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("directory", "it is a directory; give a file path"),
        ("under_a_file", "is a file, not a directory"),
    ],
)
def test_unwritable_destinations_fail_in_one_line(
    tmp_path: Path, layout: str, message: str
) -> None:
    if layout == "directory":
        dest = tmp_path / "r.json"
        dest.mkdir()
    else:
        (tmp_path / "file").write_text("x")
        dest = tmp_path / "file" / "sub" / "r.json"
    for attempt in (check_file, lambda p: write_text(p, "x")):
        with pytest.raises(OutputError, match=message) as info:
            attempt(dest)
        assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_fails_in_one_line(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            write_text(ro / "r.json", "x")
    finally:
        ro.chmod(0o700)


def test_write_text_without_parents_names_the_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist; create it first"):
        write_text(tmp_path / "missing" / "x.yaml", "x", parents=False)


def test_staged_publishes_only_a_completed_write(tmp_path: Path) -> None:
    dest = tmp_path / "r.json"
    with staged(dest, "JSON report") as tmp:
        assert tmp.parent.parent == tmp_path
        tmp.write_text("done")
        assert not dest.exists()
    assert dest.read_text() == "done"

    def broken_writer() -> None:
        with staged(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer broke")

    with pytest.raises(RuntimeError):
        broken_writer()
    assert dest.read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_staged_refuses_a_link_planted_while_writing(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    dest = tmp_path / "r.json"

    def planted() -> None:
        with staged(dest) as tmp:
            tmp.write_text("report")
            dest.symlink_to(victim)

    with pytest.raises(OutputError, match="symbolic link"):
        planted()
    assert victim.read_text() == "precious"
    with pytest.raises(OutputError, match="nothing was staged"), staged(tmp_path / "x"):
        pass


def test_check_directory(tmp_path: Path) -> None:
    assert check_directory(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="it is a file"):
        check_directory(tmp_path / "file")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        check_directory(tmp_path / "file" / "sub")
    (tmp_path / "link").symlink_to(tmp_path / "new", target_is_directory=True)
    with pytest.raises(OutputError, match="symbolic link"):
        check_directory(tmp_path / "link")


def test_append_text_appends_but_never_through_a_link(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    append_text(summary, "a\n")
    append_text(summary, "b\n")
    assert summary.read_text() == "a\nb\n"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "link.md"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match=r"a symbolic link: refused"):
        append_text(link, "x")
    assert victim.read_text() == "precious"


# --------------------------------------------------------------------------- the pytest session

PASSING = "def test_ok():\n    pass\n"
PLANTS = """
import pathlib

def test_plants():
    # Something in the run puts a link (or a file) where the report goes.
    target = pathlib.Path({dest!r})
    {action}
"""
OPTIONS = {
    "--chaos-report": "JSON report",
    "--chaos-markdown": "Markdown summary",
    "--chaos-html": "HTML report",
}


@pytest.fixture
def session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makeini("[pytest]\nchaos_seed = 3\n")
    return pytester


def _one_line_error(result: pytest.RunResult, fragment: str) -> str:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if fragment in ln]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_a_link_at_an_output_is_refused_before_the_run(
    session: pytest.Pytester, option: str
) -> None:
    session.makepyfile(PASSING)
    victim = session.path / "victim.txt"
    victim.write_text("precious\n")
    link = session.path / "out.file"
    link.symlink_to(victim)
    result = session.runpytest_subprocess(f"{option}={link}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = _one_line_error(result, "symbolic link")
    assert f"refusing to write the {OPTIONS[option]} {link}" in line
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_a_link_planted_during_the_run_is_refused_at_the_end(
    session: pytest.Pytester, option: str
) -> None:
    victim = session.path / "victim.txt"
    victim.write_text("precious\n")
    dest = session.path / "reports" / "out.file"
    action = f"target.parent.mkdir(); target.symlink_to({str(victim)!r})"
    session.makepyfile(PLANTS.format(dest=str(dest), action=action))
    result = session.runpytest_subprocess(f"{option}={dest}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1)
    line = _one_line_error(result, "symbolic link")
    assert line.startswith(f"shakeout: refusing to write the {OPTIONS[option]} {dest}")
    assert victim.read_text() == "precious\n"
    assert not [p for p in dest.parent.iterdir() if p.name != "out.file"], "no temporary left"


def test_an_output_path_that_became_unwritable_fails_in_one_line_at_the_end(
    session: pytest.Pytester,
) -> None:
    dest = session.path / "reports" / "sub" / "report.json"
    session.makepyfile(
        PLANTS.format(
            dest=str(dest), action="target.parent.parent.mkdir(); target.parent.write_text('x')"
        )
    )
    result = session.runpytest_subprocess(
        f"--chaos-report={dest}",
        f"--chaos-markdown={dest.parent / 'r.md'}",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = _one_line_error(result, "cannot write the JSON report")
    assert "is a file, not a directory" in line
    _one_line_error(result, "cannot write the Markdown summary")


def test_an_unwritable_output_path_is_refused_before_the_run(session: pytest.Pytester) -> None:
    session.makepyfile(PASSING)
    (session.path / "file").write_text("x")
    result = session.runpytest_subprocess(
        f"--chaos-report={session.path / 'file' / 'r.json'}", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    _one_line_error(result, "is a file, not a directory")
