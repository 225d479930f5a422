"""The package's public names are pinned: changing them is a deliberate act."""

from __future__ import annotations

import subprocess
import sys

import customer_import


def test_public_names_are_pinned() -> None:
    assert customer_import.__all__ == [
        "ConfigError",
        "FatalApiError",
        "ImportJobError",
        "InputError",
        "JobConfig",
        "RunAborted",
        "RunOptions",
        "RunReport",
        "load_job",
        "run_job",
    ]
    for name in customer_import.__all__:
        assert getattr(customer_import, name) is not None


def test_the_sandbox_starts_without_loading_the_pipeline() -> None:
    code = "import sys, customer_import.sandbox.cli; print('polars' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"
