"""Wait for a line of a running subprocess's output, with a deadline instead of a sleep."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
import time
from collections.abc import Callable


class LineReader:
    """A subprocess's stdout, read by a thread so a test can wait for a line with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        self.stdout = proc.stdout
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.stdout:
            self.lines.put(line)

    def close(self) -> None:
        """After the process ended: read to the end into ``seen``, then close the pipe."""
        self.thread.join(timeout=30)
        self.stdout.close()
        while not self.lines.empty():
            self.seen.append(self.lines.get().rstrip("\n"))

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout_s: float = 90) -> None:
        """Read lines until ``predicate(all lines so far)`` holds; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not predicate(self.seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; output so far: {self.seen}"
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=min(remaining, 1.0)).rstrip("\n"))
