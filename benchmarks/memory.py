"""Shared by the benchmark scripts: the peak resident memory of this process while a block runs."""

from __future__ import annotations

import threading
import time

import psutil


class PeakSampler:
    """Polls RSS every 5 ms inside a ``with`` block; ``peak_mb`` overall, ``extra_mb`` above the start."""

    def __enter__(self) -> PeakSampler:
        self.proc, self.running = psutil.Process(), True
        self.base = self.peak = self.proc.memory_info().rss
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2**20
