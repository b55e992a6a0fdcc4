"""The download progress bar: huggingface_hub's downloaders draw through it (pull)."""
from __future__ import annotations

import os
import sys

class RichBar:
    """What huggingface_hub's downloaders need of a tqdm class, drawn by Rich on stderr:
    the file's bytes, speed and time left. Built with desc, total, initial...; update(n),
    the total and n attributes, postfix setters, refresh(), close(), a context manager.
    It has update_transfer, so the Xet downloader draws one bar (bytes written), not a
    second one for network bytes. Bars alive at once share one Rich display."""

    console = None                       # tests give a Console of their own
    _progress = None
    _alive = 0

    def __init__(self, *args, desc: str = "", total: int | None = None, initial: int = 0, **_):
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        cls = type(self)
        if cls._progress is None:
            cls._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                     console=cls.console or Console(stderr=True), transient=False)
            cls._progress.start()
        cls._alive += 1
        self._closed = False
        # the hub says "(…)/org/repo/resolve/main/file.gguf" or "file.gguf: reconstructing file"
        name = str(desc).rsplit("/", 1)[-1].split(": ", 1)[0]
        self._task = cls._progress.add_task(name, total=total, completed=initial or 0)

    def _get(self, key: str):
        return getattr(self._progress.tasks[self._task], key)

    @property
    def n(self) -> int:
        return int(self._get("completed"))

    @property
    def total(self):
        return self._get("total")

    @total.setter
    def total(self, value) -> None:
        self._progress.update(self._task, total=value)

    def update(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def update_transfer(self, n: int = 1) -> None:
        pass                             # network bytes: the bar shows the bytes written

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass                             # the speed column says it already

    set_transfer_postfix_str = set_postfix_str

    def refresh(self) -> None:
        self._progress.refresh()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        cls = type(self)
        cls._alive -= 1
        if cls._alive == 0:
            cls._progress.stop()
            cls._progress = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_class():
    """a Rich bar on a terminal (unless HF_HUB_DISABLE_PROGRESS_BARS); else the hub's own choice"""
    if sys.stderr.isatty() and os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "") in ("", "0"):
        return RichBar
    return None
