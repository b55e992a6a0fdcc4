"""`llmlite serve`'s app run in this process, as the command runs it (uvicorn on a real
socket, llmlite/server/app.py's app over an Engine), on a free port, in a thread; the
test files of the server share it (test_serve_*.py)."""
from __future__ import annotations

import contextlib
import socket
import threading

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
