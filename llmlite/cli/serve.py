"""`llmlite serve`: the local HTTP API (llmlite/server/) over one loaded model."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from llmlite.cli.app import app, command
from llmlite.cli.loading import load_model
from llmlite.cli.options import opt_ctx, opt_ngl, opt_threads
from llmlite.errors import UserError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def exposed_warning(host: str, api_key: Optional[str]) -> Optional[str]:
    """the line to print when the server listens beyond this machine with no key"""
    if host in LOCAL_HOSTS or api_key:
        return None
    return (f"warning: listening on {host} without --api-key: anyone who can reach this machine "
            "can use the model")


def model_name(model: Optional[str], path) -> str:
    """the name the API gives the model: the alias given (or the default one), else the file's name"""
    if model is None:
        from llmlite.registry import load_registry

        return load_registry()[0]
    return path.name if path.name == model or "/" in model or "\\" in model else model


@app.command()
@command
def serve(
    model: Optional[str] = typer.Argument(None, help="A GGUF file or a model alias (default: the default alias)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8080, "--port", help="Port to listen on (0: any free one)."),
    ctx_size: Optional[int] = opt_ctx(),
    threads: Optional[int] = opt_threads(),
    gpu_layers: str = opt_ngl(),
    api_key: Optional[str] = typer.Option(None, "--api-key",
                                          help="Require this key (Authorization: Bearer KEY) of every request."),
    cors: Optional[str] = typer.Option(None, "--cors", metavar="ORIGIN",
                                       help="Allow browser pages from ORIGIN (* for any) to call the API."),
    queue: int = typer.Option(8, "--queue", help="Requests that may wait for the model; more get 503."),
) -> None:
    """Serve the model over HTTP: OpenAI-compatible /v1/chat/completions, /v1/completions,
    /v1/models and /v1/embeddings. One model is resident; requests take turns on it.
    """
    import logging
    import socket

    if not 0 <= port <= 65535:
        raise UserError(f"--port must be in [0, 65535] (got {port})")
    if queue < 0:
        raise UserError(f"--queue must be >= 0 (got {queue})")
    if warning := exposed_warning(host, api_key):
        print(warning, file=sys.stderr, flush=True)
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    m = load_model(model, ctx_size, threads, gpu_layers)
    import uvicorn

    from llmlite.server.app import build_app
    from llmlite.server.engine import Engine

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
    engine = Engine(m, model_name(model, m.path), lambda path: load_model(str(path), ctx_size, threads, gpu_layers),
                    max_waiting=queue)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"llmlite serve: {engine.resident.name} on http://{shown}:{bound}/v1 (context {m.n_ctx})",
          file=sys.stderr, flush=True)
    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):     # Ctrl-C: open streams end now, with a 503 event
            engine.shutdown()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(build_app(engine, api_key, cors), log_level="warning", timeout_graceful_shutdown=3)
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:           # uvicorn raises the SIGINT again once it has stopped
        raise typer.Exit(130) from None  # the usual way to stop a server: no "error:" line
    finally:
        engine.close()
