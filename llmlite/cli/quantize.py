"""`llmlite quantize`: a GGUF or a Hugging Face checkpoint to a llama-quantize-exact GGUF."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import List, Optional

import typer

from llmlite.cli.app import app, command
from llmlite.cli.options import opt_threads
from llmlite.cli.output import fmt_bytes
from llmlite.errors import UserError


@app.command()
@command
def quantize(
    input: str = typer.Argument(..., help="A GGUF, or a Hugging Face checkpoint: its folder or its .safetensors file "
                                "(config.json and tokenizer.json beside it)."),
    output: Optional[str] = typer.Argument(None, help="Where to write (default: <name>-<TYPE>.gguf beside the input)."),
    type_: str = typer.Option("q4_k_m", "--type", help="q4_k_m, q4_k_s, q5_k_m, q5_k_s, q6_k, q8_0, q4_0, q4_1, "
                              "q5_0, q5_1, q3_k_m, q2_k, mxfp4_moe, tq1_0, tq2_0, iq4_xs, iq4_nl, iq3_s, iq3_m, "
                              "iq3_xs, iq3_xxs, iq2_m, iq2_s, iq2_xs, iq2_xxs, iq1_m, iq1_s, f16, bf16 or f32 "
                              "(as llama-quantize names them)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (each tensor's type, sizes) and write nothing."),
    allow_requantize: bool = typer.Option(False, "--allow-requantize",
                                          help="Quantize tensors that are already quantized (loses quality)."),
    imatrix: Optional[str] = typer.Option(None, "--imatrix", metavar="FILE",
                                          help="An importance matrix (llama-imatrix's output, GGUF or legacy .dat): "
                                          "the quantizers weigh each column by it, as llama-quantize does."),
    include_weights: Optional[List[str]] = typer.Option(None, "--include-weights", metavar="NAME",
                                                        help="Use the importance matrix only for tensors whose name "
                                                        "contains NAME (repeatable)."),
    exclude_weights: Optional[List[str]] = typer.Option(None, "--exclude-weights", metavar="NAME",
                                                        help="Do not use the importance matrix for tensors whose "
                                                        "name contains NAME (repeatable)."),
    threads: Optional[int] = opt_threads(),
) -> None:
    """Write a GGUF with llama-quantize's tensor types and bytes.

    \f
    The same mixture rules (use_more_bits, tied embeddings, fallbacks for rows
    that are not whole blocks) and reference quantizers as llama.cpp, so the file
    is byte for byte what llama-quantize writes from the same input.
    """
    from pathlib import Path

    from llmlite import _lib
    from llmlite.quantize import FTYPES

    ty = type_.lower()
    if ty not in FTYPES:
        raise UserError(f"--type {type_!r}: one of {', '.join(FTYPES)}")
    src = Path(input)
    if not src.exists():
        raise UserError(f"{input}: no such file or folder")
    hf = src.is_dir() or src.suffix.lower() == ".safetensors"
    if not hf and src.suffix.lower() != ".gguf":
        raise UserError(f"{input}: not a .gguf, a .safetensors or a Hugging Face model folder")
    name = (src if src.is_dir() else src.parent).name if hf else src.stem
    dst = Path(output) if output else (src if src.is_dir() else src.parent).parent / f"{name}-{ty.upper()}.gguf" \
        if hf else src.with_name(f"{name}-{ty.upper()}.gguf")
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"{dst}: the output would overwrite the input")
    im = None
    if imatrix is not None or include_weights or exclude_weights:
        from llmlite.imatrix import ImatrixError, load_imatrix

        if imatrix is None:
            raise ImatrixError("--include-weights / --exclude-weights need --imatrix FILE")
        im = load_imatrix(imatrix, include_weights or (), exclude_weights or ())
    _lib.set_threads(threads)
    from rich.console import Console

    con = Console(stderr=not dry_run)
    if hf:
        from llmlite.convert_hf import HFSource

        source = HFSource(src)
    else:
        from llmlite.quantize import GGUFSource

        source = GGUFSource(src)
    try:
        _quantize(source, src, dst, ty, dry_run, allow_requantize, con, im)
    finally:
        source.close()


def _quantize(source, src, dst, ty: str, dry_run: bool, allow_requantize: bool, con, im=None) -> None:
    import numpy as np
    from rich.table import Table

    from llmlite import _lib
    from llmlite.gguf.constants import TYPE_NAMES, type_name
    from llmlite.quantize import QuantizeError, plan, write_quantized

    has_im = im is not None and bool(im.weights)
    p = plan(source, ty, has_imatrix=has_im)
    if im is not None:
        con.print(f"importance matrix {im.path}: {len(im.weights)} entries"
                  + (f", dataset {im.datasets[0]}" if im.datasets else "")
                  + (f", {im.chunk_count} chunks" if im.chunk_count > 0 else ""))
    unreadable = [e for e in p if e.dst_type != e.src_type and not _lib.lib.llm_type_supported(e.src_type)]
    if unreadable:
        e = unreadable[0]
        raise QuantizeError(f"{e.name} is {type_name(e.src_type)}, which llmlite cannot read")
    n_params = sum(int(np.prod(e.shape)) for e in p)
    size_out = sum(e.dst_bytes for e in p)
    if dry_run:
        t = Table(title=f"{src.name} -> {ty.upper()}", show_edge=False)
        for col in ("tensor", "shape", "from", "to", "size"):
            t.add_column(col, justify="right" if col == "size" else "left")
        for e in p:
            t.add_row(e.name, " x ".join(map(str, e.shape)), TYPE_NAMES.get(e.src_type, "?"),
                      TYPE_NAMES.get(e.dst_type, "?"), fmt_bytes(e.dst_bytes))
        con.print(t)
        con.print(f"{len(p)} tensors, {fmt_bytes(sum(e.src_bytes for e in p))} -> {fmt_bytes(size_out)}, "
                  f"{8 * size_out / max(1, n_params):.2f} bits per weight")
        from llmlite.imatrix import requires_imatrix

        if not has_im and any(requires_imatrix(e.name, e.dst_type, ty) for e in p if e.dst_type != e.src_type):
            con.print("warning: the quantization itself will need an importance matrix (--imatrix FILE)")
        return
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=con, transient=True) as bar:
        task = bar.add_task("quantizing", total=len(p))

        def progress(done, total, e):
            bar.update(task, completed=done, description=f"{e.name[:32]:32s}")

        with _sigterm_interrupts():
            r = write_quantized(source, dst, ty, allow_requantize=allow_requantize, progress=progress, imatrix=im)
    t = Table(show_edge=False)
    t.add_column("type")
    t.add_column("tensors", justify="right")
    for name, n in sorted(r["types"].items(), key=lambda kv: -kv[1]):
        t.add_row(name, str(n))
    con.print(t)
    con.print(f"{dst}: {fmt_bytes(r['bytes_in'])} -> {fmt_bytes(r['bytes_out'])}, {r['bpw']:.2f} bits per weight, "
              f"{r['seconds']:.1f} s")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (kill, a service manager, a CI timeout) raised as Ctrl-C is: by default it
    ends the process on the spot and the partial output stays behind; as an exception it
    unwinds through the writer, which removes it, and the CLI says "interrupted"."""
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
