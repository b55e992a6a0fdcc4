"""`llmlite embed`: a text's embedding as JSON (llmlite/embed.py)."""
from __future__ import annotations

import sys
from typing import Optional

import typer

from llmlite.cli.app import app, command
from llmlite.cli.loading import load_model
from llmlite.cli.options import opt_ctx, opt_threads, read_user_text
from llmlite.errors import UserError


@app.command()
@command
def embed(
    model: str = typer.Argument(..., help="A GGUF file or a model alias."),
    text: str = typer.Argument(..., help="The text to embed (-: read stdin)."),
    pooling: Optional[str] = typer.Option(None, "--pooling", metavar="mean|cls|last",
                                          help="How the tokens' vectors make one (default: the file's, else mean)."),
    no_normalize: bool = typer.Option(False, "--no-normalize", help="The pooled vector as it is, not at unit length."),
    ctx_size: Optional[int] = opt_ctx(),
    threads: Optional[int] = opt_threads(),
) -> None:
    """Print a text's embedding as JSON: {"model", "pooling", "n_tokens", "embedding"}.

    \f
    llama.cpp's: the hidden state after the output norm of each token, pooled, at unit
    Euclidean length (its server's default). On the CPU: every layer there, as the
    output norm must be.
    """
    from llmlite.embed import POOLINGS, file_pooling, text_ids
    from llmlite.embed import embed as run_embed

    if pooling is not None and pooling not in POOLINGS:
        raise UserError(f"--pooling {pooling}: one of {', '.join(POOLINGS)}")
    if text == "-":
        text = read_user_text("-")
    m = load_model(model, ctx_size, threads, "0")
    pooling = pooling or file_pooling(m)
    ids = text_ids(m, text)
    v = run_embed(m, ids, pooling, normalize=not no_normalize)
    import json

    sys.stdout.write(json.dumps({"model": m.path.name, "pooling": pooling, "n_tokens": len(ids),
                                 "embedding": [float(x) for x in v]}) + "\n")
