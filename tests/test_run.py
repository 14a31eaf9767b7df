"""`make run`'s process supervision: a worker or beat that dies starts again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP_RUNNING = ROOT / "scripts" / "keep-running.sh"


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_make_run_keeps_the_worker_and_beat_running() -> None:
    processes = dict(
        line.split(":", 1)
        for line in (ROOT / "Procfile.dev").read_text().splitlines()
        if line.strip()
    )
    assert processes["worker"].split()[:2] == [
        "scripts/keep-running.sh",
        ".venv/bin/celery",
    ]
    assert processes["beat"].split()[:2] == [
        "scripts/keep-running.sh",
        ".venv/bin/celery",
    ]
    assert "worker" in processes["worker"]
    assert "beat" in processes["beat"]


def test_a_command_that_dies_is_started_again_and_sigterm_stops_it(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    # Dies at once the first time; the second time it runs until stopped.
    command = (
        f'echo run >> {runs}; [ "$(wc -l < {runs})" -ge 2 ] && exec sleep 300; exit 3'
    )
    # As honcho starts it: its own process group, stopped with killpg(SIGTERM).
    process = subprocess.Popen(  # noqa: S603
        [str(KEEP_RUNNING), "sh", "-c", command],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert _wait_for(lambda: runs.exists() and len(runs.read_text().split()) == 2)
        assert process.poll() is None
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.stderr is not None
    assert "exited with status 3; starting it again" in process.stderr.read()
    assert len(runs.read_text().split()) == 2  # not started a third time
    # Nothing of the group is left behind (the `sleep` it was running).
    assert _wait_for(lambda: not _group_alive(process.pid), timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_make_run_starts_a_fake_carrier_where_the_demo_points_ups() -> None:
    processes = dict(
        line.split(":", 1)
        for line in (ROOT / "Procfile.dev").read_text().splitlines()
        if line.strip()
    )
    makefile = (ROOT / "Makefile").read_text()

    assert "manage.py fake_carrier --port ${CARRIER_PORT:-8790}" in processes["carrier"]
    assert "CARRIER_PORT ?= 8790" in makefile
    assert "ups=$(CARRIER_FAKE)/ups" in makefile
    assert "CARRIER_PORT=$(CARRIER_PORT) $(VENV)/honcho start" in makefile
    assert "manage.py seed_demo_carriers" in makefile
