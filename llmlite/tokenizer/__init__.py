"""Tokenizers read from GGUF metadata, exact with llama.cpp's tokenize / detokenize.

Two algorithms, one per tokenizer.ggml.model:

* BPE (``gpt2``): the text is split into words by the pre-tokenizer's regex
  list (tokenizer.ggml.pre), each word is byte-encoded (GPT-2's
  bytes_to_unicode) and merged by rank, the lowest rank first and on a tie the
  leftmost pair.
* SPM (``llama``): spaces escaped as U+2581, then one merge per raw fragment
  by score, the highest-scoring pair that is a token first; a symbol that is no
  token falls back to its bytes' ``<0xXX>`` tokens.

Before either runs, the text is partitioned on special-token texts (CONTROL,
USER_DEFINED and UNKNOWN tokens, longest first). Everything works on bytes:
``encode`` takes str or bytes, ``decode`` and ``piece`` return bytes, and
``StreamDecoder`` turns ids into str chunks that never split a UTF-8 sequence.

Where each part lives:

* tokenizer.py: the Tokenizer (from_gguf, encode, decode, piece), which hands
  each step to the modules below
* vocab.py: token texts, attribute bits (ATTR_*), scores; special tokens:
  roles and ids, end-of-generation, llama.cpp's load-time attribute fix-ups,
  the partition on special-token texts
* pretokenizer.py: the regex list per pre-tokenizer name, their one-regex
  twins, how they run on Python's re, and the Unicode categories and
  whitespace they use
* bpe.py: BPE, the word cache, and the calls into the C merge loops
  (csrc/bpe.c)
* spm.py: SPM
* detokenize.py: pieces, decode, StreamDecoder
"""
from llmlite.errors import TokenizerError
from llmlite.tokenizer.detokenize import StreamDecoder
from llmlite.tokenizer.pretokenizer import PRE_TOKENIZERS, category
from llmlite.tokenizer.tokenizer import Tokenizer
from llmlite.tokenizer.vocab import (ATTR_BYTE, ATTR_CONTROL, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_UNUSED,
                                     ATTR_USER_DEFINED)

__all__ = ["Tokenizer", "StreamDecoder", "TokenizerError", "PRE_TOKENIZERS", "category", "ATTR_UNKNOWN", "ATTR_UNUSED",
           "ATTR_NORMAL", "ATTR_CONTROL", "ATTR_USER_DEFINED", "ATTR_BYTE"]
