"""Gemma 4's tokenizer (tokenizer.ggml.model gemma4) against llama.cpp on a small vocabulary
of its kinds of token (tests/gemma4_models.py, rebuilt here byte for byte; the references
from benchmarks/make_gemma4_tok_refs.py): U+2581 for spaces, newline runs, BPE merges over
raw UTF-8, <0xXX> byte fallback, special tokens, BOS always, pieces and detokenized text."""
import json

import gemma4_models
import pytest
from helpers import ROOT

from llmlite.gguf import open_gguf
from llmlite.tokenizer import Tokenizer

REFS = json.loads((ROOT / "tests" / "data" / "gemma4_tok_refs.json").read_text())


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("gemma4tok") / "vocab.gguf"
    assert gemma4_models.build_vocab(path) == REFS["sha256"], "the rebuilt vocabulary differs from llama.cpp's"
    with open_gguf(path) as g:
        return Tokenizer.from_gguf(g)


def test_refs_cover_the_texts():
    assert [r["text"] for r in REFS["rows"]] == gemma4_models.TOK_TEXTS


@pytest.mark.parametrize("k", range(len(gemma4_models.TOK_TEXTS)))
def test_ids_pieces_and_text_match_llamacpp(tok, k):
    r = REFS["rows"][k]
    assert tok.encode(r["text"], add_special=True, parse_special=False) == r["ids"]
    assert tok.encode(r["text"], add_special=False, parse_special=True) == r["ids_special"]
    assert [tok.piece(i).hex() for i in r["ids_special"]] == r["pieces"]
    assert tok.decode(r["ids_special"]).hex() == r["detokenized"]


def test_bos_always():
    """llama.cpp adds Gemma 4's BOS whatever the file's add_bos_token says"""
    toks, types, merges = gemma4_models.tokenizer_vocab()
    tok = Tokenizer("gemma4", toks, token_types=types, merges=merges, special_ids={"bos": 2, "eos": 1},
                    add_bos=False)
    assert tok.add_bos and tok.encode("hello")[0] == 2
