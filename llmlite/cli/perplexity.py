"""`llmlite perplexity`: llama-perplexity's protocol."""
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
def perplexity(
    model: str = typer.Argument(..., help="A GGUF file or a model alias."),
    file: str = typer.Option(..., "-f", "--file", help="The text file to score."),
    ctx_size: int = opt_ctx(512, help="Tokens per chunk."),
    chunks: int = typer.Option(0, "--chunks", help="Score at most this many chunks (0: all)."),
    threads: Optional[int] = opt_threads(),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Perplexity of a text as llama.cpp's llama-perplexity computes it.

    \f
    Chunks of -c tokens (BOS first when the model adds one), each from an empty
    cache, scoring the second half of each chunk.
    """
    if ctx_size < 8:
        raise UserError(f"-c/--ctx-size must be at least 8 (got {ctx_size})")
    if chunks < 0:
        raise UserError(f"--chunks must be >= 0 (got {chunks})")
    text = read_user_text(file)
    import json

    from llmlite.perplexity import perplexity as run_ppl

    m = load_model(model, ctx_size, threads, "0")

    def progress(done, total, ppl):
        print(f"[{done}/{total}] chunk ppl so far {ppl:.4f}", file=sys.stderr, flush=True)

    try:
        r = run_ppl(m, text, n_ctx=ctx_size, n_chunks=chunks or None, progress=progress)
    except ValueError as e:
        raise UserError(str(e)) from None
    if json_out:
        print(json.dumps(r.to_dict()))
    else:
        print(f"perplexity: {r.ppl:.4f} over {r.n_chunks} chunks of {r.n_ctx} "
              f"({r.n_chunks * r.scored_per_chunk} tokens scored, {r.seconds:.1f} s)")
