"""`llmlite tokenize`: token ids and pieces of a text."""
from __future__ import annotations

import sys

import typer

from llmlite.cli.app import app, command, resolve
from llmlite.cli.output import utf8_stdout


@app.command()
@command
def tokenize(
    model: str = typer.Argument(..., help="A GGUF file or a model alias."),
    text: str = typer.Argument(..., help="The text to tokenize (-: read stdin)."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Do not add the BOS (or EOS) token the model asks for."),
    parse_special: bool = typer.Option(False, "--parse-special", help="Read special-token texts (<|im_start|>) as tokens."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list of {id, piece, bytes_hex}."),
) -> None:
    """Show how a model's tokenizer splits a text: token ids and their pieces.

    \f
    Pieces are the bytes each token renders to with special tokens shown
    (llama.cpp's token_to_piece with special=true), as text with invalid UTF-8
    replaced; bytes_hex has the exact bytes.
    """
    if text == "-":
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
    path = resolve(model)
    from llmlite.gguf import open_gguf
    from llmlite.tokenizer import Tokenizer

    g = open_gguf(path)
    tok = Tokenizer.from_gguf(g)
    ids = tok.encode(text, add_special=not no_bos, parse_special=parse_special)
    rows = []
    for i in ids:
        b = tok.piece(i, special=True)
        rows.append({"id": int(i), "piece": b.decode("utf-8", "replace"), "bytes_hex": b.hex()})
    utf8_stdout()
    import json

    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    w = max((len(str(r["id"])) for r in rows), default=1)
    out = [f"{r['id']:>{w}}  {json.dumps(r['piece'], ensure_ascii=False)}" for r in rows]
    sys.stdout.write("".join(line + "\n" for line in out))
    sys.stdout.flush()
    print(f"{len(rows)} tokens", file=sys.stderr)
