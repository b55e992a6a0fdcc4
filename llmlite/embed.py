"""Embeddings: one vector for a sequence of token ids, as llama.cpp makes it for a model
loaded with embeddings on. A generative model's per-token embedding there is the hidden
state after the output norm (its graph's result_norm, before the head); the sequence's
vector pools those (mean, the first token's or the last token's) and, as llama.cpp's
server does by default (embd_normalize 2), is scaled to unit Euclidean length.

The ids run from position 0, on their own: they overwrite the model's KV cache, which is
emptied (Model.hidden_states), so a conversation's next prefill evaluates its whole prompt
again rather than reuse a prefix the embedding replaced."""
from __future__ import annotations

import numpy as np

from llmlite.errors import ContextFullError, LlmliteError, UserError

# llama.cpp's enum llama_pooling_type, the value of a GGUF's {arch}.pooling_type
POOLING_IDS = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}
POOLINGS = ("mean", "cls", "last")


def file_pooling(model) -> str:
    """The pooling the model's file names ({arch}.pooling_type), else mean: a generative
    model's file names none, and a single vector per input is what an embeddings API
    returns (llama.cpp's server refuses pooling none there)."""
    value = model.metadata.get(f"{model.arch}.pooling_type")
    name = POOLING_IDS.get(int(value), "mean") if isinstance(value, (int, np.integer)) else "mean"
    if name == "rank":
        raise LlmliteError(f"{model.path.name}: a reranker (pooling rank, a classifier head): "
                           "llmlite does not compute its scores")
    return "mean" if name == "none" else name


def pool(hidden: np.ndarray, pooling: str) -> np.ndarray:
    """hidden (n, n_embd) -> (n_embd,) float32. mean: summed in float64 (llama.cpp's is a
    float32 matmul against 1/n; on SmolLM2 the two agree to a cosine of 1 - 1e-14)."""
    if pooling == "mean":
        return hidden.mean(axis=0, dtype=np.float64).astype(np.float32)
    return hidden[0 if pooling == "cls" else -1].copy()


def l2_normalize(v: np.ndarray) -> np.ndarray:
    """v at unit Euclidean length, as common_embd_normalize(.., 2) computes it: the float
    squares summed in order in a double, the float reciprocal of its root multiplied in
    (a zero vector stays zero)."""
    sq = (v * v).astype(np.float64)
    total = float(np.sqrt(np.cumsum(sq)[-1])) if v.size else 0.0
    scale = np.float32(1.0 / total) if total > 0.0 else np.float32(0.0)
    return (v * scale).astype(np.float32)


def text_ids(model, text: str) -> list[int]:
    """A text's ids as llama.cpp's server tokenizes an embeddings input: the tokens the
    model's file asks to add (BOS; EOS too where it says so, as embedding models'
    files do: their last-token pooling reads it), and special-token texts read as
    those tokens. (A chat prompt's ids, llmlite.chat.prompt_ids, never get an EOS.)"""
    return model.tokenize(text, add_special=True, parse_special=True)


def embed(model, ids, pooling: str | None = None, normalize: bool = True) -> np.ndarray:
    """The embedding of ids (token ids, as model.tokenize gives) -> float32 (n_embd,).
    pooling: "mean", "cls" or "last" (None: the file's, else mean); normalize: unit
    Euclidean length (llama.cpp's server default), else the pooled vector as it is.
    Longer than the model's context: one ContextFullError (a UserError; the forward pass
    itself runs any length in chunks of n_batch, each token's state the same in any
    chunk); no ids, or an id outside the vocabulary: a UserError."""
    pooling = pooling or file_pooling(model)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r}: one of {', '.join(POOLINGS)}")
    ids = [int(i) for i in ids]
    if not ids:
        raise UserError("nothing to embed: no tokens")
    bad = next((i for i in ids if not 0 <= i < model.n_vocab), None)
    if bad is not None:
        raise UserError(f"token id {bad} is outside the vocabulary (0 .. {model.n_vocab - 1})")
    if len(ids) > model.n_ctx:    # bad input, as a prompt that does not fit is (a server's 400)
        raise ContextFullError(f"input of {len(ids)} tokens is longer than the context of {model.n_ctx} "
                               "(shorten it, or load the model with a larger -c)",
                               n_tokens=len(ids), n_ctx=model.n_ctx, fit=len(ids))
    v = pool(model.hidden_states(ids), pooling)
    return l2_normalize(v) if normalize else v
