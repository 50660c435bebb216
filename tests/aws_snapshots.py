"""The third-party AWS snapshots beside the project (../shared/fixtures/aws-snapshots): tests read
them in place, never copy them into the project, and skip, saying why, where they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "aws-snapshots"


def snapshot(name: str) -> Path:
    """The folder of snapshot ``name``; the test skips when it is absent."""
    folder = SNAPSHOTS / name
    if not folder.is_dir():
        pytest.skip(f"third-party AWS snapshot {folder} is absent (it lives beside the project, in "
                    "../shared/fixtures/aws-snapshots; a fresh clone does not have it)")
    return folder
