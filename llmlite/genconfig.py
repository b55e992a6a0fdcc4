"""The options of one generation, in one checked object.

Model.generate and Chat.reply take them as keyword arguments and build a
GenerationConfig at once, so a misspelt option is a TypeError naming it (not a
silently ignored keyword) and a value out of range is the one-line ValueError the
command line prints. Light on purpose (no numpy): the command line imports it for
its defaults before anything heavy is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

# a reply's token budget when none is given: Model.generate's default, the room a chat
# keeps for the reply when it checks that a turn fits, the REPL's -n for a model used raw
# (base models rarely stop by themselves)
DEFAULT_MAX_TOKENS = 256

# the sampling options by the names people write them (models.toml's [sampling] table,
# the REPL's /set) -> (GenerationConfig and SamplingParams field, the type a value is read as)
SAMPLING_KEYS = {"temp": ("temperature", float), "top_k": ("top_k", int), "top_p": ("top_p", float),
                 "min_p": ("min_p", float), "repeat_penalty": ("repeat_penalty", float)}


@dataclass
class GenerationConfig:
    max_tokens: int = DEFAULT_MAX_TOKENS
    # sampling (llmlite/sampling.py, SamplingParams' fields): None is "not given", and
    # then the GGUF's general.sampling.* value applies, else llama.cpp's default
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None     # the repeat penalty's window (-1: all tokens, 0: none)
    seed: int | None = None
    presence_penalty: float | None = None    # the OpenAI API's additive penalties (sampling.py)
    frequency_penalty: float | None = None
    stop: tuple = ()                     # strings that end the text before them
    # prompt-lookup speculation (llmlite/speculate.py): the same tokens in fewer passes
    lookup: bool = False
    draft_max: int = 8                   # most tokens drafted for one verify pass
    lookup_ngram: int = 3                # longest suffix n-gram looked up
    # constrained output (llmlite/constrain.py), at most one: a JSON schema (a dict, JSON
    # text or a file's path), llama.cpp's GBNF grammar text, or a regex
    json_schema: object = None
    grammar: str | None = None
    regex: str | None = None
    # how a prompt given as text is tokenized
    add_special: bool = True
    parse_special: bool = True
    # the reply's text shows control tokens (Mistral's [TOOL_CALLS] opens a tool call)
    show_special: bool = False

    def __post_init__(self):
        from llmlite.sampling import check_sampling

        check_sampling(self.temperature, self.top_k, self.top_p, self.min_p, self.repeat_penalty,
                       self.presence_penalty, self.frequency_penalty)
        if self.draft_max < 1:
            raise ValueError(f"--draft-max must be >= 1 (got {self.draft_max})")
        self.stop = tuple(s for s in (self.stop or ()) if s)

    @classmethod
    def from_options(cls, **options) -> "GenerationConfig":
        """The config for keyword options; TypeError for one that is not an option."""
        for k in options:
            if k not in OPTION_NAMES:
                raise TypeError(f"unknown generation option {k!r} (the options: {', '.join(OPTION_NAMES)})")
        return cls(**options)


OPTION_NAMES = tuple(f.name for f in fields(GenerationConfig))
