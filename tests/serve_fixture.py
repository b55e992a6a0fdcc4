"""`llmlite serve`'s app run in this process, as the command runs it (uvicorn on a real
socket, llmlite/server/app.py's app over an Engine), on a free port, in a thread; the
test files of the server share it (test_serve_*.py)."""
from __future__ import annotations

import contextlib
import socket
import threading
import time

import uvicorn


class _Server(uvicorn.Server):
    """uvicorn's server, saying when it listens (an event to wait on, not a sleep)"""

    def __init__(self, config):
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets=None):
        await super().startup(sockets)
        self.ready.set()


@contextlib.contextmanager
def serving(model, name: str = "test-model", *, api_key=None, cors=None, max_waiting=8, loader=None):
    """(base URL, engine) of a server over a loaded model, stopped at the end (the model stays open)"""
    from llmlite.server.app import build_app
    from llmlite.server.engine import Engine

    engine = Engine(model, name, loader, max_waiting=max_waiting)
    sock = socket.create_server(("127.0.0.1", 0))
    server = _Server(uvicorn.Config(build_app(engine, api_key, cors), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(60), "the server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", engine
    finally:
        server.should_exit = True
        thread.join(30)
        engine.close()
        sock.close()


def chat_body(text: str, **fields) -> dict:
    return {"messages": [{"role": "user", "content": text}], **fields}


@contextlib.contextmanager
def serving_file(path, name: str, n_ctx: int, **kw):
    """serving() over the model at path, loaded for it and closed after: (base URL, engine);
    the model is engine.resident.model"""
    import llmlite

    model = llmlite.load(path, n_ctx=n_ctx)
    try:
        with serving(model, name, **kw) as served:
            yield served
    finally:
        model.close()


def assert_freed_within_a_token(engine, stamps: list) -> float:
    """the client has just left a stream whose pieces arrived at `stamps` (perf_counter):
    its generation stops and the engine is idle within about a token (slack for a shared
    CPU). Returns the seconds a token took."""
    closed = time.perf_counter()
    assert engine.idle.wait(10)
    freed = time.perf_counter() - closed
    token = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    print(f"freed {1000 * freed:.1f} ms after the disconnect; a token takes {1000 * token:.1f} ms")
    assert freed <= 3 * token + 0.1, (freed, token)
    return token


def json_values():
    """a hypothesis strategy: any JSON value (NaN and huge numbers too), nested a little"""
    from hypothesis import strategies as st

    return st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
                        | st.text(max_size=20),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=4),
                        max_leaves=12)
