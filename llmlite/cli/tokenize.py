"""`llmlite tokenize`: token ids and pieces of a text."""
from __future__ import annotations

import sys

import typer

from llmlite.cli.app import app, command, resolve
from llmlite.cli.options import read_user_text
from llmlite.cli.output import utf8_stdout


def _shown(piece: bytes) -> str:
    """a piece as the text output shows it: a byte token (an SPM <0xNN> fallback, or a
    byte-level BPE piece that cuts a character) is not UTF-8 on its own, and would
    print as U+FFFD, hiding which bytes it holds: llama-tokenize's <0xNN> per byte"""
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"<0x{x:02X}>" for x in piece)


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
    replaced (the text output shows a piece that is not UTF-8 as <0xNN> per byte);
    bytes_hex has the exact bytes.
    """
    if text == "-":
        text = read_user_text("-")
    path = resolve(model)
    from llmlite.gguf import open_gguf
    from llmlite.tokenizer import Tokenizer

    g = open_gguf(path)
    tok = Tokenizer.from_gguf(g)
    ids = tok.encode(text, add_special=not no_bos, parse_special=parse_special)
    pieces = [tok.piece(i, special=True) for i in ids]
    rows = [{"id": int(i), "piece": b.decode("utf-8", "replace"), "bytes_hex": b.hex()} for i, b in zip(ids, pieces)]
    utf8_stdout()
    import json

    if json_out:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    w = max((len(str(r["id"])) for r in rows), default=1)
    out = [f"{r['id']:>{w}}  {json.dumps(_shown(b), ensure_ascii=False)}" for r, b in zip(rows, pieces)]
    sys.stdout.write("".join(line + "\n" for line in out))
    sys.stdout.flush()
    print(f"{len(rows)} tokens", file=sys.stderr)
