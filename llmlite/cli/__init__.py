"""The llmlite command line: one module per command, over the Typer app in app.py.

    app.py         the app, --verbose/--version, the error wrapper, model resolution
    options.py     options shared by several commands, declared once
    output.py      formatting and what goes to stderr
    loading.py     loading a model for a command
    run.py         run and chat          repl.py      the chat REPL
    info.py        info (--plan)          tokenize.py  tokenize
    embed.py       embed
    bench.py       bench                  perplexity.py perplexity
    models.py      pull, list, rm         quantize.py  quantize
    serve.py       serve (the HTTP API of llmlite/server/)
    fastpath.py    a parser for plain `run` command lines that skips Typer's (startup time)
"""
# registered in this order, the order `llmlite --help` lists them
from llmlite.cli import info, run, serve, tokenize, embed, bench, models, quantize, perplexity  # noqa: F401,I001
from llmlite.cli.app import app

__all__ = ["app"]
