"""The tree passes ruff with the settings in pyproject.toml (line length 120; pycodestyle, pyflakes, isort,
bugbear, pyupgrade), so a lint slip fails CI rather than the next reader's patience."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_finds_nothing():
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
    assert found.returncode == 0, found.stdout + found.stderr
