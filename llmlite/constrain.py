"""Constrained decoding: output that follows a JSON schema, a grammar (llama.cpp's GBNF)
or a regex, on llguidance (the engine llama.cpp can use too; README's "Constrained
output" says why this one).

A Constraint is compiled from its source before any token is generated (a bad schema
or grammar is a ConstraintError naming the offending part; the engine's parser limits
bound the compile, so a schema too complex to compile quickly is refused with the
limit it hit, never a hang). Per step the sampler (llmlite/sampling.py) calls
``mask(logits)``: the allowed-token bitmask is computed into one preallocated buffer
and applied by csrc/mask.c to a preallocated copy of the row, so a step allocates
nothing per vocabulary entry; ``commit(tok)`` then advances the matcher. The
end-of-generation tokens are allowed only where the grammar is complete, so a
generation ends when its output does. Prompt-lookup drafts are cut to the prefix the
grammar accepts (``accepts``) before they are verified.
"""
from __future__ import annotations

import json
import weakref

import numpy as np

from llmlite._lib import lib
from llmlite.errors import ConstraintError
from llmlite.tokenizer import ATTR_CONTROL, ATTR_UNKNOWN, ATTR_UNUSED

# the engine's own bounds on a compile and on a step's work (llguidance's LLParserLimits;
# their defaults, spelt out so the refusal names them): a compile that would pass them
# stops with an error saying which, a fraction of a second in
_LIMITS = dict(initial_lexer_fuel=1_000_000, step_lexer_fuel=200_000, max_grammar_size=500_000)

# JSON as models write it (", " and ": "), and no free whitespace: with it a small model
# can pad an object with newlines until max_tokens
_JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

# an LLTokenizer per llmlite Tokenizer: building one walks the vocabulary (~0.1-1 s)
_bridges: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _special(tok, i: int) -> bool:
    """A token no text gives: control, unused or unknown, or one that ends generation.
    User-defined tokens are text here (llmlite's tokenizer makes them from plain text:
    Gemma's "<b>", its newline and tab runs), unlike llama.cpp's llguidance bridge, which
    takes a user-defined "<...>" for a special token."""
    return bool(tok.attr(i) & (ATTR_CONTROL | ATTR_UNUSED | ATTR_UNKNOWN)) or i in tok.eog_ids


class _Vocab:
    """llguidance's TokenizerWrapper protocol over llmlite's Tokenizer: each id's bytes
    (a special one, as _special says, prefixed with 0xff: llguidance's mark for a token
    no text can produce), the end-of-generation ids, and the tokenizer itself for the
    engine's canonical tokenizations."""

    def __init__(self, tok):
        self._tok = tok
        self.tokens = [b"\xff" + tok.piece(i, special=True) if _special(tok, i) else tok.piece(i)
                       for i in range(tok.n_vocab)]
        self.eos_token_id = tok.eos_id if tok.eos_id in tok.eog_ids else min(tok.eog_ids)
        self.bos_token_id = tok.bos_id
        self.special_token_ids = [i for i, t in enumerate(self.tokens) if t[:1] == b"\xff"]
        self.is_tokenizer_wrapper = True
        self._accepts_bytes = True

    def __call__(self, text) -> list[int]:
        return self._tok.encode(text, add_special=False)


def engine_tokenizer(tok):
    """The llguidance tokenizer for an llmlite Tokenizer (made once per tokenizer)."""
    import llguidance

    lt = _bridges.get(tok)
    if lt is None:
        if not tok.eog_ids:
            raise ConstraintError("this model's vocabulary has no end-of-generation token: a constrained "
                                  "reply could never end")
        lt = llguidance.LLTokenizer(_Vocab(tok), n_vocab=tok.n_vocab, eos_token=sorted(tok.eog_ids))
        _bridges[tok] = lt
    return lt


def _json_schema_text(schema) -> str:
    """A schema given as a dict, JSON text or a path to a JSON file -> its JSON text."""
    if isinstance(schema, (dict, bool)):
        return json.dumps(bounded_numbers(schema))
    text = str(schema)
    if not text.lstrip().startswith(("{", "true", "false")):
        try:
            with open(text, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConstraintError(f"JSON schema: {text!r} is neither JSON nor a readable file ({e.strerror})")
    try:
        return json.dumps(bounded_numbers(json.loads(text)))
    except ValueError as e:
        raise ConstraintError(f"JSON schema is not valid JSON: {e}") from None


# JSON numbers a program can read back: where a schema leaves them open, at most 15
# integer digits and 9 decimals (llama.cpp's JSON grammars bound them alike). Without a
# bound a small model can write zeros until max_tokens ("1.5000000...") and the reply
# never parses.
_INT_BOUND = 10 ** 15 - 1
_DECIMALS = 1e-9
_NOT_SCHEMAS = ("enum", "const", "default", "examples")     # values, not subschemas


def bounded_numbers(node):
    """A copy of a JSON schema with the bounds above added to every number and integer
    subschema that has none of its own (given bounds are kept, wider or not)."""
    if isinstance(node, list):
        return [bounded_numbers(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: (v if k in _NOT_SCHEMAS else bounded_numbers(v)) for k, v in node.items()}
    t = out.get("type")     # neither a string nor a list: a property named "type" (a properties map)
    types = {t} if isinstance(t, str) else {x for x in t if isinstance(x, str)} if isinstance(t, list) else set()
    if types & {"number", "integer"}:
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = -_INT_BOUND
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = _INT_BOUND
        if "number" in types and "multipleOf" not in out:
            out["multipleOf"] = _DECIMALS
    return out


def grammar_source(json_schema=None, grammar=None, regex=None) -> tuple[str, str] | None:
    """(what, engine grammar) for the one constraint given; None for none. grammar: GBNF
    text (llama.cpp's format), or Lark text (llguidance's own) when it looks like Lark."""
    import llguidance
    from llguidance.gbnf_to_lark import any_to_lark

    given = [(k, v) for k, v in (("JSON schema", json_schema), ("grammar", grammar), ("regex", regex))
             if v is not None]
    if not given:
        return None
    if len(given) > 1:
        raise ConstraintError(f"give one constraint, not {' and '.join(k for k, _ in given)}")
    what, src = given[0]
    M = llguidance.LLMatcher
    if json_schema is not None:
        return what, M.grammar_from_json_schema(_json_schema_text(json_schema),
                                                defaults=_JSON_LAYOUT)
    if regex is not None:
        return what, M.grammar_from_regex(regex)
    try:
        return what, M.grammar_from_lark(any_to_lark(src))
    except Exception as e:          # gbnf_to_lark raises plain Exceptions with the position
        raise ConstraintError(f"grammar: {e}") from None


def _one_line(msg: str) -> str:
    """The engine's message on one line: its first line, with the pointed-at source line
    when the message shows one (`   1 | start: /a(b/`)."""
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    src = next((ln.split("|", 1)[1].strip() for ln in lines[1:] if "|" in ln and ln.split("|", 1)[0].strip().isdigit()),
               None)
    head = lines[0] if lines else "invalid"
    why = next((ln for ln in lines[1:] if ln.startswith("error:")), None)    # the regex parser's reason
    if why:
        head = f"{head} {why[6:].strip()}"
    return f"{head} (in: {src})" if src and src not in head else head


class Constraint:
    """One generation's matcher over a compiled grammar (Compiled.start makes one)."""

    def __init__(self, matcher, n_vocab: int, what: str):
        from llguidance.numpy import allocate_token_bitmask

        self.matcher = matcher
        self.what = what
        self.n_vocab = n_vocab
        from llmlite._lib import ffi

        self._bits = allocate_token_bitmask(1, n_vocab)[0]     # the engine's mask buffer
        self._row = np.empty(n_vocab, dtype=np.float32)       # the masked copy of a logits row
        # the buffers' addresses, taken once: mask() runs per token
        self._bits_addr = self._bits.ctypes.data
        self._c_bits = ffi.cast("unsigned int *", self._bits_addr)
        self._c_row = ffi.cast("float *", self._row.ctypes.data)

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """logits with every token the grammar forbids next set to -inf (a copy in this
        constraint's buffer: the model's row is left as it is)."""
        self.matcher.unsafe_compute_mask_ptr(self._bits_addr, self._bits.nbytes)
        self._check()
        n = min(self.n_vocab, logits.size)
        np.copyto(self._row[:n], logits.ravel()[:n])
        lib.llm_mask_logits(self._c_row, n, self._c_bits, self._bits.size)
        return self._row[:n]

    def commit(self, tok: int) -> None:
        """The sampled token: the matcher moves past it."""
        self.matcher.consume_token(int(tok))
        self._check()

    def accepts(self, draft) -> int:
        """How many leading tokens of draft the grammar accepts from here (state unchanged)."""
        return self.matcher.validate_tokens([int(t) for t in draft]) if draft else 0

    @property
    def done(self) -> bool:
        """The grammar has ended: nothing but an end-of-generation token may follow."""
        return self.matcher.is_stopped()

    @property
    def complete(self) -> bool:
        """What was committed so far is a whole sentence of the grammar."""
        return self.matcher.is_accepting()

    def _check(self) -> None:
        if self.matcher.is_error():
            raise ConstraintError(f"{self.what}: {_one_line(self.matcher.get_error())}")


class Compiled:
    """A grammar compiled for one tokenizer; ``start()`` gives each generation its own
    Constraint (a fresh matcher over the same compiled grammar is cheap)."""

    def __init__(self, tok, what: str, grammar: str):
        import llguidance

        self.what, self.n_vocab = what, tok.n_vocab
        self._lt = engine_tokenizer(tok)
        self._grammar = grammar
        self._limits = llguidance.LLParserLimits(**_LIMITS)
        first = self._matcher()
        if not first.is_error():
            # the engine builds its lexer lazily: the first mask does the work a hard
            # schema costs, so a limit it hits is refused here, before any token
            first.compute_bitmask()
        if first.is_error():
            raise ConstraintError(f"{what}: {_one_line(first.get_error())}")
        self._first = first

    def _matcher(self):
        import llguidance

        return llguidance.LLMatcher(self._lt, self._grammar, log_level=0, limits=self._limits)

    def start(self) -> Constraint:
        m, self._first = (self._first, None) if self._first is not None else (self._matcher(), None)
        return Constraint(m, self.n_vocab, self.what)


def check_constraint(json_schema=None, grammar=None, regex=None) -> None:
    """ConstraintError for a bad schema, grammar or regex, without a tokenizer (the
    server checks a request with it before the request waits for the model)."""
    import llguidance

    src = grammar_source(json_schema=json_schema, grammar=grammar, regex=regex)
    if src is not None:
        err = llguidance.LLMatcher.validate_grammar(src[1], None, limits=llguidance.LLParserLimits(**_LIMITS))
        if err:
            raise ConstraintError(f"{src[0]}: {_one_line(err)}")


def compile_constraint(tok, json_schema=None, grammar=None, regex=None) -> Compiled | None:
    """The compiled constraint for the options given (None: unconstrained). ConstraintError
    for a bad one, before any token is generated."""
    src = grammar_source(json_schema=json_schema, grammar=grammar, regex=regex)
    if src is None:
        return None
    return Compiled(tok, *src)
