"""The background loop the relay runs on: a pass at start, one per wake, on after a failure, and a clean stop."""

from __future__ import annotations

import threading

from bot.worker import Worker


def test_a_worker_passes_at_start_and_again_when_woken_until_stopped() -> None:
    passes: list[int] = []
    passed = threading.Condition()

    def step() -> None:
        with passed:
            passes.append(len(passes) + 1)
            passed.notify_all()

    worker = Worker("test-worker", step, idle_seconds=lambda: 3600.0)  # never looks again unwoken
    worker.start()
    try:
        with passed:
            assert passed.wait_for(lambda: len(passes) == 1, timeout=10)
        worker.wake()
        with passed:
            assert passed.wait_for(lambda: len(passes) == 2, timeout=10)
    finally:
        worker.stop()
    assert not worker.running
    assert passes == [1, 2]


def test_a_pass_that_fails_is_logged_and_the_worker_goes_on() -> None:
    calls: list[str] = []
    recovered = threading.Event()

    def step() -> None:
        calls.append("pass")
        if len(calls) == 1:
            raise RuntimeError("the database went away for a moment")
        recovered.set()

    worker = Worker("test-worker", step, idle_seconds=lambda: 0.01, error_pause=0.0)
    worker.start()
    try:
        assert recovered.wait(timeout=10)
    finally:
        worker.stop()
    assert calls[:2] == ["pass", "pass"]
