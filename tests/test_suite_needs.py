"""The suite's own rule (conftest.py): a test that needs a missing module is skipped, saying
what to install; with ``EDGEDEV_TEST_COMPLETE=1`` (the full CI run) it fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HINT = "pip install edgedev-not-there"


def run_suite(tmp_path: Path, *, complete: bool) -> subprocess.CompletedProcess[str]:
    """pytest, in a process of its own, on two test files that need a module nobody has."""
    conftest = (ROOT / "conftest.py").read_text(encoding="utf-8")
    conftest += f'\nINSTALL["edgedev_not_there"] = "{HINT}"\n'
    (tmp_path / "conftest.py").write_text(conftest, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    needs: modules\n")
    (tmp_path / "test_imports.py").write_text(
        "import edgedev_not_there.sub\n\n\ndef test_x():\n    pass\n"
    )
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n\n@pytest.mark.needs('edgedev_not_there')\ndef test_y():\n"
        "    pass\n\n\ndef test_z():\n    pass\n"
    )
    env = {**os.environ, "EDGEDEV_TEST_COMPLETE": "1" if complete else ""}
    options = ["-p", "no:cacheprovider", "-q", "-rs", "--continue-on-collection-errors"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *options, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_a_missing_module_skips_saying_what_to_install(tmp_path: Path):
    done = run_suite(tmp_path, complete=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped" in done.stdout
    assert done.stdout.count(f"edgedev_not_there is not installed: {HINT}") == 1  # [2] x one line


@pytest.mark.slow
def test_the_complete_run_fails_what_would_skip(tmp_path: Path):
    done = run_suite(tmp_path, complete=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 2 errors" in done.stdout, done.stdout  # at collection and at setup
    assert done.stdout.count("EDGEDEV_TEST_COMPLETE=1 says every test must run") >= 2
