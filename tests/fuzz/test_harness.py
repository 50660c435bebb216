"""The fuzz harness itself: a hang, a crash and an unclear error each fail their case, and the
campaign goes on with the next case."""

import os

from harness import run_cases


def _make(i: int) -> bytes:
    return bytes([i])


def _check(data: bytes) -> str:
    if data[0] == 1:
        while True:  # a loop that never ends
            pass
    if data[0] == 2:
        os._exit(11)  # the compiled core dying
    if data[0] == 3:
        raise KeyError("deep inside")
    return "accepted" if data[0] % 2 else "refused"


def test_harness_counts_hangs_crashes_and_unclear_errors_and_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("HYPERPLANE_FUZZ_FAILURES", str(tmp_path))
    campaign = run_cases("selftest", _make, _check, 6, timeout=0.5)
    assert campaign.outcomes == {"hang": 1, "crash": 1, "unclear": 1, "refused": 2, "accepted": 1}
    assert [(case, outcome) for case, outcome, _ in campaign.failures] == [(1, "hang"), (2, "crash"), (3, "unclear")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["selftest-1.bin", "selftest-2.bin", "selftest-3.bin"]
