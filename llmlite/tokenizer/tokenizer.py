"""The Tokenizer: built from a GGUF's tokenizer.ggml.* keys, it encodes as
llama.cpp's llama_tokenize and decodes as its llama_detokenize, each step
handed to the module that owns it (vocab, pretokenizer, bpe, spm, detokenize)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from llmlite.errors import TokenizerError
from llmlite.tokenizer.bpe import CVocab, WordCache, _decode_lenient, encode_bpe, encode_bpe_raw
from llmlite.tokenizer.detokenize import StreamDecoder, detokenize, make_piece
from llmlite.tokenizer.pretokenizer import pre_tokenizer, split
from llmlite.tokenizer.spm import encode_spm, find_bridges
from llmlite.tokenizer.vocab import (_ROLE_KEYS, _utf8, candidates, fix_up, partition, role_ids, token_attrs,
                                     token_scores, token_table, tokens_containing)

_SUPPORTED_MODELS = {"llama": "spm", "gpt2": "bpe", "gemma4": "bpe"}
_OTHER_MODELS = ("bert", "t5", "rwkv", "plamo2", "hybriddna", "whitespace", "none")


class Tokenizer:
    """A llama.cpp-exact tokenizer. Build it with ``Tokenizer.from_gguf(g)`` or
    ``Tokenizer(model=..., tokens=[...], ...)``.

    Attributes: ``kind`` ("bpe" or "spm"), ``model`` and ``pre`` (the GGUF
    names), ``n_vocab``, ``bos_id``, ``eos_id``, ``eot_id``, ``eom_id``,
    ``unk_id``, ``pad_id`` (None when absent), ``eog_ids`` (frozenset),
    ``add_bos``, ``add_eos``, ``add_space_prefix``, ``clean_spaces``,
    ``ignore_merges``, ``chat_template`` (str or None).
    """

    def __init__(self, model: str, tokens: Any, *, token_types: Any = None, scores: Any = None,
                 merges: Any = None, pre: str | None = None, special_ids: Mapping[str, int] | None = None,
                 add_bos: bool | None = None, add_eos: bool | None = None,
                 add_space_prefix: bool | None = None, chat_template: str | None = None):
        """model: "gpt2" (BPE) or "llama" (SPM); tokens: token texts (str or bytes, or a
        llmlite.gguf.StringArray); token_types: GGUF token types (1 normal, 2 unknown,
        3 control, 4 user-defined, 5 unused, 6 byte; default all normal); scores: SPM
        merge scores; merges: BPE merges "left right" in rank order; pre: the
        pre-tokenizer name (BPE); special_ids: role -> id for roles bos, eos, eot,
        eom, unk, sep, pad, mask, fim_pre, fim_suf, fim_mid, fim_pad, fim_rep,
        fim_sep (ids outside the vocab are ignored); add_bos / add_eos /
        add_space_prefix: the GGUF flags, None when absent."""
        if model not in _SUPPORTED_MODELS:
            if model in _OTHER_MODELS:
                raise TokenizerError(f"tokenizer model '{model}' is not supported (llmlite reads 'gpt2' BPE, "
                                     "'gemma4' BPE and 'llama' SentencePiece vocabularies)")
            raise TokenizerError(f"unknown tokenizer model '{model}' in tokenizer.ggml.model")
        self.model = model
        self.kind = _SUPPORTED_MODELS[model]
        self.chat_template = chat_template
        spm = self.kind == "spm"
        # Gemma 4's BPE: SentencePiece-style text (spaces as U+2581, <0xXX> byte tokens),
        # merged by rank over raw UTF-8; llama.cpp's pre-tokenizer "gemma4" whatever the
        # file says, and always a BOS
        self.raw_bpe = model == "gemma4"

        # --- token texts, scores and attributes, and the C vocabulary
        buf, offs, lens = token_table(tokens)
        n = int(offs.size)
        self.n_vocab = n
        self._buf = buf
        self._offs = offs
        self._ends = offs + lens
        self._scores = token_scores(scores, n)
        attrs = token_attrs(token_types, n)
        self._c = CVocab(buf, offs, lens, self._scores)

        # --- pre-tokenizer and flags
        settings: dict[str, bool] = {}
        self.pre = None
        self._regexes: Iterable = ()    # (pattern, runs on the text itself) per regex; see pretokenizer.split
        self._fast = None               # the one-regex twin, where the list has one
        if self.raw_bpe:
            self.pre, settings = "gemma4", {"add_bos": True}
        if not spm and not self.raw_bpe:
            self.pre, settings, self._regexes, self._fast = pre_tokenizer(pre)
        if not spm:
            if merges is None:
                raise TokenizerError("a BPE vocabulary needs tokenizer.ggml.merges")
            self._c.set_merges(merges)
        self.ignore_merges = bool(settings.get("ignore_merges", False))
        self.clean_spaces = False if spm else bool(settings.get("clean_spaces", True))
        self.escape_whitespaces = spm or self.raw_bpe
        self.add_bos = (True if spm else bool(settings.get("add_bos", False))) if add_bos is None else bool(add_bos)
        self.add_bos = self.add_bos or self.raw_bpe
        self.add_eos = False if add_eos is None else bool(add_eos)
        self.add_space_prefix = spm if add_space_prefix is None else bool(add_space_prefix)

        # --- special tokens: ids, llama.cpp's load-time fix-ups, partition candidates
        ids = role_ids(spm, bool(settings.get("no_bos")), n, special_ids)
        eog = fix_up(ids, attrs, self._c.find, self.text, tokens_containing(buf, offs, self._ends, b"unused"))
        self._attrs = attrs
        self.special_ids = ids
        self.bos_id, self.eos_id, self.eot_id, self.eom_id = ids["bos"], ids["eos"], ids["eot"], ids["eom"]
        self.unk_id, self.pad_id = ids["unk"], ids["pad"]
        self.eog_ids = frozenset(eog)
        self._cands_all, self._cands_user = candidates(attrs, buf, offs, self._ends)

        self._word_cache = WordCache()
        self._spm_bridges = find_bridges(buf, offs, self._ends) if spm else None
        self._pieces: list[dict[int, bytes]] = [{}, {}]

    # ---- construction from a GGUF ----------------------------------------------

    @classmethod
    def from_gguf(cls, g: Any) -> "Tokenizer":
        """From a GGUF file (llmlite.gguf.GGUFFile) or anything with a ``.metadata`` mapping."""
        md = g.metadata if hasattr(g, "metadata") else g

        def get(key: str, default: Any = None) -> Any:
            v = md.get("tokenizer.ggml." + key, default) if hasattr(md, "get") else default
            return default if v is None else v

        model = get("model")
        if model is None:
            raise TokenizerError("the GGUF has no tokenizer (tokenizer.ggml.model is missing)")
        tokens = get("tokens")
        if tokens is None:
            raise TokenizerError("the GGUF has no vocabulary (tokenizer.ggml.tokens is missing)")
        special = {}
        for role, keys in _ROLE_KEYS.items():
            for k in keys:
                v = get(k + "_token_id")
                if v is not None:
                    try:
                        special[role] = int(v)
                    except (TypeError, ValueError):
                        raise TokenizerError(f"tokenizer.ggml.{k}_token_id is not an integer") from None

        def flag(key: str) -> bool | None:
            v = get(key)
            return None if v is None else bool(v)

        tmpl = md.get("tokenizer.chat_template") if hasattr(md, "get") else None
        return cls(str(model), tokens, token_types=get("token_type"), scores=get("scores"),
                   merges=get("merges"), pre=get("pre"), special_ids=special,
                   add_bos=flag("add_bos_token"), add_eos=flag("add_eos_token"),
                   add_space_prefix=flag("add_space_prefix"),
                   chat_template=tmpl if isinstance(tmpl, str) else None)

    @classmethod
    def from_file(cls, path: Any) -> "Tokenizer":
        from llmlite.gguf import open_gguf
        return cls.from_gguf(open_gguf(path))

    # ---- token table -----------------------------------------------------------

    def text(self, tid: int) -> bytes:
        """The raw text of token tid as stored in the vocabulary."""
        if not 0 <= tid < self.n_vocab:
            raise ValueError(f"token id {tid} is outside the vocabulary (0..{self.n_vocab - 1})")
        return self._buf[int(self._offs[tid]):int(self._ends[tid])]

    def attr(self, tid: int) -> int:
        """Token attributes (ATTR_* bits) after the load-time fix-ups."""
        return int(self._attrs[tid])

    def token_to_id(self, text: str | bytes) -> int | None:
        b = _utf8(text) if isinstance(text, str) else bytes(text)
        tid = self._c.find(b)
        return None if tid < 0 else int(tid)

    def is_eog(self, tid: int) -> bool:
        return tid in self.eog_ids

    # ---- encoding ----------------------------------------------------------------

    def encode(self, text: str | bytes, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Text -> token ids, as llama.cpp's llama_tokenize(text, add_special, parse_special)."""
        data = _utf8(text) if isinstance(text, str) else bytes(text)
        frags = partition(data, self._cands_all if parse_special else self._cands_user)
        out: list[int] = []
        if add_special and self.add_bos:
            if self.bos_id is None:
                raise TokenizerError("the model adds a BOS token but has none")
            out.append(self.bos_id)
        if self.kind == "spm":
            self._encode_spm(frags, out)
        else:
            for f in frags:
                if isinstance(f, int):
                    out.append(f)
                elif self.raw_bpe:
                    encode_bpe_raw(f, self._word_cache, self._c, out)
                else:
                    s = text if (isinstance(text, str) and len(frags) == 1) else _decode_lenient(f)
                    self._encode_bpe(s, out)
        if add_special and self.add_eos:
            if self.eos_id is None:
                raise TokenizerError("the model adds an EOS token but has none")
            out.append(self.eos_id)
        return out

    __call__ = encode

    def opens_with_special(self, text: str) -> bool:
        """Whether text (parsed for special tokens) begins with a special token: text
        before it and text from it on then tokenize apart as they do together (the
        partition on special tokens comes before any merge)."""
        frags = partition(_utf8(text), self._cands_all)
        return bool(frags) and isinstance(frags[0], int)

    def _run(self, fn: str, items: list[bytes], per_byte: int) -> tuple[list[int], list[int]]:
        """CVocab.run with this tokenizer's ignore_merges: one merge-loop batch, (all ids, count per item)."""
        return self._c.run(fn, items, per_byte, self.ignore_merges)

    def _pretokenize(self, s: str, generic: bool = False) -> list[str]:
        """Split s into words with the pre-tokenizer's regex list (llama.cpp's unicode_regex_split)."""
        return split(s, self._regexes, self._fast, generic)

    def _encode_bpe(self, s: str, out: list[int]) -> None:
        encode_bpe(self._pretokenize(s), self._word_cache, self._c, self.ignore_merges, out)

    def _encode_spm(self, frags: list[bytes | int], out: list[int]) -> None:
        encode_spm(frags, out, self._word_cache, self._c, self._spm_bridges, self.add_space_prefix)

    # ---- decoding ----------------------------------------------------------------

    def piece(self, tid: int, special: bool = False) -> bytes:
        """The bytes token tid renders to (llama.cpp's token_to_piece with lstrip 0)."""
        cache = self._pieces[1 if special else 0]
        p = cache.get(tid)
        if p is None:
            p = cache[tid] = make_piece(self.text(tid), int(self._attrs[tid]), special, self.escape_whitespaces)
        return p

    def decode(self, ids: Iterable[int], special: bool = False, remove_special: bool = False) -> bytes:
        """Token ids -> bytes, as llama.cpp's llama_detokenize(ids, remove_special,
        unparse_special=special); common_detokenize is remove_special=False."""
        return detokenize(self, ids, special, remove_special)

    def decode_str(self, ids: Iterable[int], special: bool = False) -> str:
        return self.decode(ids, special).decode("utf-8", "replace")

    def stream(self, special: bool = False, start: bool = True) -> "StreamDecoder":
        return StreamDecoder(self, special, start)

    def __repr__(self) -> str:
        return (f"Tokenizer({self.kind.upper()}, model={self.model!r}, pre={self.pre!r}, n_vocab={self.n_vocab}, "
                f"bos={self.bos_id}, eos={self.eos_id}, add_bos={self.add_bos})")

