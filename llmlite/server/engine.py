"""The one resident model and the one worker thread that runs everything on it.

A Model is not thread-safe, and one user's machine has the cores for one generation
at a time anyway: every request becomes a job on one queue, run by one worker thread
in arrival order. The asyncio side never touches the model; it reads what the worker
hands it through the event loop (call_soon_threadsafe), so the server keeps
answering (models, errors, 503s) while a generation runs.

- The queue is bounded: with one job running and `max_waiting` more waiting, a
  request is refused at once with 503 and Retry-After, rather than left to time out.
- A job whose client has gone is cancelled: its `cancel` event is set, and the
  generation checks it before each token it samples (server/generation.py's sampler),
  so the worker is free for the next job within one token. One still queued gives up
  its place at once and is never run.
- The model keeps its KV cache between jobs: Model.prefill reuses the longest common
  prefix, so a chat UI resending the whole history evaluates only the new turn.
- A request may name another model (a models.toml alias or a cache entry, never a
  path): the worker swaps it in, the old one closed first (one resident at a time).
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Optional

from llmlite.errors import LlmliteError, UserError
from llmlite.server.errors import ApiError, internal_error

log = logging.getLogger("llmlite.serve")

DEFAULT_MAX_WAITING = 8
RETRY_AFTER_S = 1            # what a refused client is told to wait: about one short reply


class Cancelled(Exception):
    """The job's client went away: raised between two tokens to end its generation."""


@dataclass
class Resident:
    """The model in memory and what every request on it needs, found once at load:
    its chat template (None: used raw), reasoning format, models.toml sampling defaults."""

    model: Any
    name: str
    template: Any = None
    reasoning: Optional[str] = None
    defaults: dict = field(default_factory=dict)
    load_s: float = 0.0             # the seconds its swap-in took (0: loaded with the server)

    @property
    def tool_format(self):
        """how this model's template writes tool calls (llmlite/tool_formats/)"""
        from llmlite.tool_formats import format_for

        return format_for(self.template.source if self.template is not None else None)

    @classmethod
    def of(cls, model, name: str) -> "Resident":
        from llmlite import reasoning as rsn
        from llmlite.chat import template_for
        from llmlite.registry import entry_for

        template = template_for(model)
        fmt = rsn.reasoning_format(model.tokenizer, template.source) if template is not None else None
        entry = entry_for(name)
        return cls(model, name, template, fmt, dict(entry.sampling) if entry else {})

    def answers_to(self, name: Optional[str]) -> bool:
        """whether a request's model name means this model (none given: it does)"""
        return not name or name in (self.name, self.model.path.name, self.model.path.stem)


def model_names() -> dict[str, Path | None]:
    """The names a request may use for a model that is not resident: models.toml
    aliases (None: fetched when first used, as `llmlite run` does) and the files in
    llmlite's and Hugging Face's caches. Only these: a name is never taken as a path."""
    from llmlite.errors import RegistryError
    from llmlite.registry import load_registry, local_models

    names: dict[str, Path | None] = {}
    try:
        _, entries = load_registry()
        names.update(dict.fromkeys(entries))
    except RegistryError:
        pass
    for m in local_models():
        names.setdefault(m["name"], m["path"])
    return names


def not_found(name: str) -> ApiError:
    return ApiError(404, f"model {name!r} not found (GET /v1/models or /api/tags lists them)", param="model",
                    code="model_not_found")


def resolve_name(name: str) -> Path:
    """a request's model name -> the file, or 404"""
    names = model_names()
    if name not in names:
        raise not_found(name)
    path = names[name]
    if path is None:
        from llmlite.registry import ensure_model

        path = ensure_model(name, quiet=True)
    return path


def _closing() -> ApiError:
    return ApiError(503, "the server is shutting down", code="server_shutting_down")


@dataclass
class _Job:
    model: Optional[str]
    work: Callable[[Resident, threading.Event], Iterator]
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue
    cancel: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"               # then "running", "done"; or "dropped" (its client left first)

    def send(self, kind: str, value: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, (kind, value))
        except RuntimeError:            # the loop is closed: the server is going down
            self.cancel.set()


class Engine:
    """One resident model, one worker. `loader(path) -> Model` loads a model for a swap
    (the command line's options: context, threads, GPU layers)."""

    def __init__(self, model, name: str, loader: Callable[[Path], Any] | None = None,
                 max_waiting: int = DEFAULT_MAX_WAITING):
        self.resident = Resident.of(model, name)
        self.loader = loader
        self.max_waiting = max_waiting
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending = 0               # jobs queued or running, whose clients are still there
        self.idle = threading.Event()   # set while there are none
        self.idle.set()
        self._running: Optional[_Job] = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="llmlite-engine", daemon=True)
        self._thread.start()

    # ---- the asyncio side ----
    async def stream(self, model: Optional[str], work: Callable[[Resident, threading.Event], Iterator]
                     ) -> AsyncIterator:
        """Queue work(resident, cancel) and yield what its iterator yields, as the worker
        produces it; its exception (an ApiError, or a 500) is raised here. Closing this
        generator (the client went away) cancels the job."""
        if not self.resident.answers_to(model):
            # the 404 before the job waits in the queue (the caches are scanned off the loop)
            if model not in await asyncio.get_running_loop().run_in_executor(None, model_names):
                raise not_found(model)
        job = _Job(model, work, asyncio.get_running_loop(), asyncio.Queue())
        with self._lock:
            if self._pending > self.max_waiting:
                raise ApiError(503, f"the server is busy ({self._pending - 1} requests waiting): retry shortly",
                               code="server_busy", headers={"Retry-After": str(RETRY_AFTER_S)})
            self._pending += 1
            self.idle.clear()
        self._jobs.put(job)
        try:
            while True:
                kind, value = await job.out.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            job.cancel.set()
            with self._lock:
                if job.state == "queued":   # its place in the queue is free at once
                    job.state = "dropped"
                    self._release()

    @property
    def pending(self) -> int:
        """requests queued or running (a client that left while queued no longer counts)"""
        return self._pending

    def wait_pending(self, n: int, timeout: float) -> bool:
        """wait until at most n requests are pending; False on the timeout"""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending <= n, timeout)

    def _release(self) -> None:         # with the lock held
        self._pending -= 1
        if not self._pending:
            self.idle.set()
        self._changed.notify_all()

    def shutdown(self) -> None:
        """The server is stopping: the running generation ends at its next token and it and
        every queued one are answered 503, so their streams close now rather than at the
        end of the server's grace period. Only sets flags (safe in a signal handler)."""
        self._closing = True
        job = self._running
        if job is not None:
            job.cancel.set()

    def close(self) -> None:
        self.shutdown()
        self._jobs.put(None)
        self._thread.join(timeout=30)

    # ---- the worker ----
    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                if job.state == "dropped":
                    continue
                job.state = "running"
            self._running = job
            try:
                if self._closing:
                    job.send("error", _closing())
                else:
                    self._do(job)
            finally:
                self._running = None
                job.send("end")
                with self._lock:
                    job.state = "done"
                    self._release()

    def _do(self, job: _Job) -> None:
        try:
            it = job.work(self._resident_for(job.model), job.cancel)
            try:
                for item in it:
                    if job.cancel.is_set():
                        raise Cancelled
                    job.send("item", item)
            finally:
                it.close()
        except Cancelled:
            if self._closing:
                job.send("error", _closing())
        except ApiError as e:
            job.send("error", e)
        except UserError as e:          # a template refusing the messages, a prompt too long
            job.send("error", ApiError(400, " ".join(str(e).split())))
        except LlmliteError as e:
            log.error("generation failed: %s", e)
            job.send("error", ApiError(500, " ".join(str(e).split()), code="engine_error"))
        except Exception:
            log.exception("unexpected error in a generation")
            job.send("error", internal_error())

    def _resident_for(self, name: Optional[str]) -> Resident:
        """the model a job names, swapped in if it is not the resident one"""
        old = self.resident
        if old.answers_to(name):
            return old
        path = resolve_name(name)
        if self.loader is None:
            raise not_found(name)
        log.warning("swapping models: %s -> %s", old.name, name)
        old_path = old.model.path
        old.model.close()               # one resident: its memory goes before the next loads
        try:
            t0 = time.perf_counter()
            self.resident = Resident.of(self.loader(path), name)
            self.resident.load_s = time.perf_counter() - t0
        except BaseException:
            log.error("loading %s failed: %s is loaded again", name, old.name)
            self.resident = Resident.of(self.loader(old_path), old.name)
            raise
        return self.resident
