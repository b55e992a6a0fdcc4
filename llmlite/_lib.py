"""The one module that imports the compiled extension: buffers in, errors out."""
from __future__ import annotations

import numpy as np

from llmlite._llmlite import ffi, lib  # noqa: F401  (re-exported)
from llmlite.errors import LlmliteError


def _type_name(t: int) -> str:
    """A ggml type's name, for messages (imported on the error path only: the tokenizer
    uses this module without loading the GGUF tables)."""
    from llmlite.gguf.constants import type_name

    return type_name(t)


def _ptr(a: np.ndarray, ctype: str = "void *"):
    if not a.flags.c_contiguous:
        raise LlmliteError("internal: buffer is not contiguous")
    return ffi.cast(ctype, a.ctypes.data)


def row_bytes(t: int, n: int) -> int:
    b = lib.llm_row_bytes(t, n)
    if b < 0:
        raise LlmliteError(f"{_type_name(t)}: {n} elements is not a whole number of blocks")
    return int(b)


def dequantize(t: int, data, n: int | None = None) -> np.ndarray:
    """Dequantize a buffer of type t to float32 (n elements; default: all of it,
    which must then be a whole number of blocks)."""
    be, bb = lib.llm_type_block_elems(t), lib.llm_type_block_bytes(t)
    if bb == 0:
        raise LlmliteError(f"dequantize: unknown tensor type {t}")
    if isinstance(data, np.ndarray):
        buf = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
    if n is None:
        if buf.size % bb:
            raise LlmliteError(f"dequantize: {buf.size} bytes is not a whole number of "
                               f"{_type_name(t)} blocks ({bb} bytes each)")
        n = buf.size // bb * be
    if buf.size < row_bytes(t, n):
        raise LlmliteError(f"dequantize: buffer too small ({buf.size} bytes for {n} elements)")
    out = np.empty(n, dtype=np.float32)
    if lib.llm_dequantize(t, _ptr(buf), _ptr(out, "float *"), n) != 0:
        raise LlmliteError(f"dequantize: unsupported type {_type_name(t)}")
    return out


def quantize_act(wtype: int, x: np.ndarray) -> np.ndarray:
    """Convert activation columns x (ncols, k) float32 to wtype's paired activation
    type (csrc/types.c: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the
    K-quants; F32/F16/BF16 their own): (ncols, row_bytes(act_type, k)) bytes."""
    at = lib.llm_type_act_type(wtype)
    if at < 0:
        raise LlmliteError(f"quantize_act: no activation type for {_type_name(wtype)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise LlmliteError(f"quantize_act: activations of shape {x.shape}, expected (ncols, k)")
    k = x.shape[1]
    rb = row_bytes(at, k)
    out = np.empty((x.shape[0], rb), dtype=np.uint8)
    for c in range(x.shape[0]):
        if lib.llm_quantize_act(at, _ptr(x[c], "float *"), _ptr(out[c]), k) != 0:
            raise LlmliteError("quantize_act failed")
    return out


def quantize_rows(wtype: int, x: np.ndarray, imatrix: np.ndarray | None = None) -> np.ndarray:
    """Weight rows x (nrows, n) float32 to wtype's blocks, as llama.cpp's quantizers
    write them: (nrows, row_bytes(wtype, n)) bytes. imatrix: n importance weights
    (one per column) for the types whose quantizer takes them, or None."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    known = lib.llm_quantize_type_supported(wtype) or lib.llm_quantize_type_weighted(wtype)
    if x.ndim != 2 or not known:
        raise LlmliteError(f"quantize_rows: cannot write {_type_name(wtype)} from shape {x.shape}")
    qw = ffi.NULL
    if imatrix is not None:
        imatrix = np.ascontiguousarray(imatrix, dtype=np.float32)
        if imatrix.shape != (x.shape[1],):
            raise LlmliteError(f"quantize_rows: importance matrix of shape {imatrix.shape}, "
                               f"expected ({x.shape[1]},)")
        qw = _ptr(imatrix, "float *")
    rb = row_bytes(wtype, x.shape[1])
    out = np.empty((x.shape[0], rb), dtype=np.uint8)
    if lib.llm_quantize_rows_w(wtype, _ptr(x, "float *"), _ptr(out), x.shape[0], x.shape[1], qw) != 0:
        need = " without an importance matrix" if imatrix is None else ""
        raise LlmliteError(f"quantize_rows: cannot write {_type_name(wtype)} rows of {x.shape[1]}{need}")
    return out


def _weight_bytes(fn: str, wtype: int, W, rows: int, k: int) -> np.ndarray:
    """Check a weight type and a raw weight buffer of rows x k; return it as bytes."""
    if not lib.llm_type_supported(wtype):
        raise LlmliteError(f"{fn}: unsupported weight type {_type_name(wtype)}")
    if rows < 0 or k < 0:
        raise LlmliteError(f"{fn}: negative size (rows={rows}, k={k})")
    rb = row_bytes(wtype, k)
    Wb = np.ascontiguousarray(W).view(np.uint8)
    if Wb.size < rows * rb:
        raise LlmliteError(f"{fn}: weight buffer too small ({Wb.size} bytes for {rows} rows of {rb})")
    return Wb


def matmul(wtype: int, W: np.ndarray, rows: int, k: int, X: np.ndarray) -> np.ndarray:
    """Y (ncols, rows) = X (ncols, k) times W^T, W a raw (rows, row_bytes) buffer of type wtype."""
    Wb = _weight_bytes("matmul", wtype, W, rows, k)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != k:
        raise LlmliteError(f"matmul: activations of shape {X.shape} do not match the weight width k={k}")
    Y = np.empty((X.shape[0], rows), dtype=np.float32)
    if lib.llm_matmul(wtype, _ptr(Wb), rows, k, _ptr(X, "float *"), X.shape[0], _ptr(Y, "float *")) != 0:
        raise LlmliteError(f"matmul: unsupported type or size ({_type_name(wtype)}, k={k})")
    return Y


def matmul_q(wtype: int, W: np.ndarray, rows: int, k: int, Xq: np.ndarray) -> np.ndarray:
    """Like matmul, with activations already converted by quantize_act: Xq is
    (ncols, row_bytes(act_type, k)) bytes."""
    Wb = _weight_bytes("matmul_q", wtype, W, rows, k)
    xb = row_bytes(lib.llm_type_act_type(wtype), k)
    Xq = np.ascontiguousarray(Xq).view(np.uint8)
    if Xq.ndim == 1:
        Xq = Xq[None, :]
    if Xq.ndim != 2 or Xq.shape[1] != xb:
        raise LlmliteError(f"matmul_q: activation blocks of shape {Xq.shape}, expected (ncols, {xb})")
    ncols = Xq.shape[0]
    Y = np.empty((ncols, rows), dtype=np.float32)
    if lib.llm_matmul_q(wtype, _ptr(Wb), rows, k, _ptr(Xq), ncols, _ptr(Y, "float *")) != 0:
        raise LlmliteError(f"matmul_q: unsupported type or size ({_type_name(wtype)}, k={k})")
    return Y


def repack_x4(wtype: int, W: np.ndarray, rows: int, k: int) -> np.ndarray:
    """The interleaved copy of a weight that the model reads where this machine's kernels
    take one (csrc/repack.c): rows a multiple of 4, a super-block type."""
    Wb = _weight_bytes("repack_x4", wtype, W, rows, k)
    out = np.empty(rows * row_bytes(wtype, k), dtype=np.uint8)
    if lib.llm_repack_x4(wtype, _ptr(Wb), _ptr(out), rows, k) != 0:
        raise LlmliteError(f"repack_x4: cannot interleave {rows} rows of {_type_name(wtype)} x {k}")
    return out


def matmul_x4(wtype: int, W4: np.ndarray, rows: int, k: int, X: np.ndarray, gemv: bool = False) -> np.ndarray | None:
    """matmul over repack_x4's copy (gemv: a Q4_K weight in llama.cpp's repacked-gemv order);
    None where this machine's kernels take no copy of that type."""
    Wb = _weight_bytes("matmul_x4", wtype, W4, rows, k)
    X = np.ascontiguousarray(X, dtype=np.float32).reshape(-1, k)
    Y = np.empty((X.shape[0], rows), dtype=np.float32)
    if lib.llm_matmul_x4(wtype, int(gemv), _ptr(Wb), rows, k, _ptr(X, "float *"), X.shape[0], _ptr(Y, "float *")):
        return None
    return Y


def isa() -> str:
    return ffi.string(lib.llm_isa_name()).decode()


def set_threads(n: int | None) -> int:
    return int(lib.llm_set_threads(0 if n is None else n))
