"""The one module that imports the compiled extension: buffers in, errors out."""
from __future__ import annotations

import numpy as np

from llmlite._llmlite import ffi, lib  # noqa: F401  (re-exported)

# ggml type ids
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 = 0, 1, 2, 3, 6, 7, 8, 9
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, BF16 = 10, 11, 12, 13, 14, 15, 30

TYPE_NAMES = {
    F32: "F32", F16: "F16", Q4_0: "Q4_0", Q4_1: "Q4_1", Q5_0: "Q5_0", Q5_1: "Q5_1",
    Q8_0: "Q8_0", Q8_1: "Q8_1", Q2_K: "Q2_K", Q3_K: "Q3_K", Q4_K: "Q4_K",
    Q5_K: "Q5_K", Q6_K: "Q6_K", Q8_K: "Q8_K", BF16: "BF16",
}
WEIGHT_TYPES = [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K]


class LlmliteError(RuntimeError):
    """An error from the C side, with a message for people."""


def _ptr(a: np.ndarray, ctype: str = "void *"):
    if not a.flags.c_contiguous:
        raise LlmliteError("internal: buffer is not contiguous")
    return ffi.cast(ctype, a.ctypes.data)


def row_bytes(t: int, n: int) -> int:
    b = lib.llm_row_bytes(t, n)
    if b < 0:
        raise LlmliteError(f"{TYPE_NAMES.get(t, t)}: {n} elements is not a whole number of blocks")
    return int(b)


def dequantize(t: int, data, n: int | None = None) -> np.ndarray:
    """Dequantize a buffer of type t to float32 (n elements; default: all of it)."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).reshape(-1)
    if n is None:
        be, bb = lib.llm_type_block_elems(t), lib.llm_type_block_bytes(t)
        if bb == 0:
            raise LlmliteError(f"unknown tensor type {t}")
        n = buf.size // bb * be
    if buf.size < row_bytes(t, n):
        raise LlmliteError("dequantize: buffer too small")
    out = np.empty(n, dtype=np.float32)
    if lib.llm_dequantize(t, _ptr(np.ascontiguousarray(buf)), _ptr(out, "float *"), n) != 0:
        raise LlmliteError(f"dequantize: unsupported type {TYPE_NAMES.get(t, t)}")
    return out


def quantize_act(wtype: int, x: np.ndarray) -> np.ndarray:
    """Convert activation columns x (ncols, k) float32 to wtype's paired activation type."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    at = lib.llm_type_act_type(wtype)
    k = x.shape[1]
    rb = row_bytes(at, k)
    out = np.empty((x.shape[0], rb), dtype=np.uint8)
    for c in range(x.shape[0]):
        if lib.llm_quantize_act(at, _ptr(x[c], "float *"), ffi.cast("void *", out[c].ctypes.data), k) != 0:
            raise LlmliteError("quantize_act failed")
    return out


def matmul(wtype: int, W: np.ndarray, rows: int, k: int, X: np.ndarray) -> np.ndarray:
    """Y (ncols, rows) = X (ncols, k) times W^T, W a raw (rows, row_bytes) buffer of type wtype."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim == 1:
        X = X[None, :]
    if X.shape[1] != k:
        raise LlmliteError("matmul: activation width does not match the weight")
    Wb = np.ascontiguousarray(W).view(np.uint8)
    if Wb.size < rows * row_bytes(wtype, k):
        raise LlmliteError("matmul: weight buffer too small")
    Y = np.empty((X.shape[0], rows), dtype=np.float32)
    if lib.llm_matmul(wtype, _ptr(Wb), rows, k, _ptr(X, "float *"), X.shape[0], _ptr(Y, "float *")) != 0:
        raise LlmliteError(f"matmul: unsupported type or size ({TYPE_NAMES.get(wtype, wtype)}, k={k})")
    return Y


def matmul_q(wtype: int, W: np.ndarray, rows: int, k: int, Xq: np.ndarray) -> np.ndarray:
    """Like matmul, with activations already converted by quantize_act."""
    Xq = np.ascontiguousarray(Xq)
    ncols = Xq.shape[0]
    Y = np.empty((ncols, rows), dtype=np.float32)
    Wb = np.ascontiguousarray(W).view(np.uint8)
    if lib.llm_matmul_q(wtype, _ptr(Wb), rows, k, _ptr(Xq), ncols, _ptr(Y, "float *")) != 0:
        raise LlmliteError("matmul_q: unsupported type or size")
    return Y


def isa() -> str:
    return ffi.string(lib.llm_isa_name()).decode()


def set_isa(name: str) -> bool:
    return lib.llm_set_isa(name.encode()) == 0


def cpu_has(name: str) -> bool:
    return bool(lib.llm_cpu_has(name.encode()))


def set_threads(n: int | None) -> int:
    return int(lib.llm_set_threads(0 if n is None else n))
