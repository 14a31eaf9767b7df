"""A helper process the benchmarks talk to over its stdin and stdout: it
prints "ready" once listening, answers "stats" with one JSON line, and exits
when its stdin closes (the SMTP sink, the webhook receiver)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class StatsProcess:
    def __init__(self, module: str, flag: str, *arguments: object, what: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", module, flag, *(str(a) for a in arguments)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"The {what} did not start: {line!r}")

    def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
