"""Every pre-tokenizer name llmlite knows, on SmolLM2's vocabulary, against llama.cpp's ids
(tests/data/pretok_refs.npz, benchmarks/make_pretok_refs.py): the regex split, the BOS rule
and ignore_merges of each name as llama.cpp applies them. gpt-oss's "gpt-4o" is one of them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmlite.gguf import open_gguf
from llmlite.tokenizer import Tokenizer
from llmlite.tokenizer.pretokenizer import PRE_TOKENIZERS

REFS = Path(__file__).parent / "data" / "pretok_refs.npz"


@pytest.fixture(scope="module")
def refs():
    with np.load(REFS) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def metadata(smollm2_path):
    md = dict(open_gguf(smollm2_path).metadata)
    md.pop("tokenizer.ggml.add_bos_token", None)
    return md


def test_refs_cover_every_name(refs):
    names = json.loads(str(refs["names"]))
    assert json.loads(str(refs["failed"])) == {}
    assert sorted(names) == sorted(PRE_TOKENIZERS)


@pytest.mark.parametrize("name", sorted(PRE_TOKENIZERS))
def test_ids_match_llama_cpp(refs, metadata, name):
    texts = json.loads(str(refs["texts"]))
    g = json.loads(str(refs["names"]))[name]
    ids, lens = refs[f"ids/{g}"], refs[f"lens/{g}"]
    tok = Tokenizer.from_gguf({**metadata, "tokenizer.ggml.pre": name})
    starts = np.concatenate([[0], np.cumsum(lens)])
    bad = [t for i, t in enumerate(texts)
           if list(tok.encode(t, add_special=True, parse_special=False)) != ids[starts[i]:starts[i + 1]].tolist()]
    assert not bad, (name, len(bad), bad[:3])
