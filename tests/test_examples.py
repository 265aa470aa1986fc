"""The example knowledge base and eval set stay consistent (manifest <-> files, verbatim answers)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import EXAMPLES


def test_eval_set_and_manifest_are_consistent() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "eval" / "verify_eval.py")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
