"""Options shared by several commands, each declared once, and their checks."""
from __future__ import annotations

import sys

import typer

from llmlite import settings
from llmlite.errors import UserError
from llmlite.genconfig import DEFAULT_MAX_TOKENS, GenerationConfig

N_PREDICT_ONCE = 512       # -n default with -p/-f


def opt_n_predict():
    return typer.Option(None, "-n", "--n-predict", "--predict",
                        help=f"Tokens to generate; -1: until the end of the turn or a full context "
                             f"(default: {N_PREDICT_ONCE} with -p/-f; in the REPL -1, or "
                             f"{DEFAULT_MAX_TOKENS} without a chat template).")


def opt_ctx(default=None, help: str = f"Context size in tokens (default: min({settings.DEFAULT_CTX}, training "
                                        "context); 0: the training context)."):
    return typer.Option(default, "-c", "--ctx-size", help=help)


def opt_threads():
    return typer.Option(None, "-t", "--threads", help="CPU threads (default: the physical cores).")


def opt_ngl(help: str = "Layers to offload to the GPU (auto, all, or a number).", metavar: str = "auto|N"):
    return typer.Option("auto", "-ngl", "--gpu-layers", "--n-gpu-layers", metavar=metavar, help=help)


def opt_temp():
    return typer.Option(None, "--temp", help="Temperature; 0 is greedy (default 0.8, or the GGUF's general.sampling.temp).")


def opt_top_k():
    return typer.Option(None, "--top-k", help="Top-k sampling, 0 disables (default 40).")


def opt_top_p():
    return typer.Option(None, "--top-p", help="Top-p sampling, 1.0 disables (default 0.95).")


def opt_min_p():
    return typer.Option(None, "--min-p", help="Min-p sampling, 0.0 disables (default 0.05).")


def opt_repeat_penalty():
    return typer.Option(None, "--repeat-penalty", help="Penalty for repeated tokens, 1.0 disables (default 1.0).")


def opt_seed():
    return typer.Option(None, "-s", "--seed", help="Random seed; -1 or none: a random one.")


def opt_system():
    return typer.Option(None, "-sys", "--system-prompt", "--system", help="System message for the chat template.")


def opt_lookup():
    return typer.Option(True, "--lookup/--no-lookup",
                        help="Prompt-lookup speculative decoding (lossless: the output does not change).")


def opt_draft_max():
    return typer.Option(GenerationConfig.draft_max, "--draft-max", "--draft",
                        help="Most tokens drafted per step with --lookup.")


def opt_json_schema():
    return typer.Option(None, "--json-schema", "-j", metavar="FILE|JSON",
                        help="Constrain the output to JSON that matches this schema (a file, or the JSON itself).")


def opt_grammar():
    return typer.Option(None, "--grammar", "--grammar-file", metavar="FILE",
                        help="Constrain the output to this grammar (llama.cpp's GBNF, e.g. its grammars/ files).")


def opt_regex():
    return typer.Option(None, "--regex", metavar="REGEX", help="Constrain the output to match this regex.")


def opt_tools():
    return typer.Option(None, "--tools", metavar="FILE",
                        help="Tools the model may call: a JSON list in OpenAI's form (the calls print as JSON lines).")


def opt_tool_choice():
    return typer.Option(None, "--tool-choice", metavar="auto|required|none|NAME",
                        help="With --tools: whether the reply must call a tool (NAME: that one).")


def opt_plain():
    return typer.Option(False, "--plain", help="Replies as plain text (default: Markdown rendered on a terminal).")


def opt_hide_reasoning():
    return typer.Option(False, "--hide-reasoning",
                        help="Do not show a reasoning model's thinking (shown dim on stderr by default).")


def opt_raw():
    return typer.Option(False, "--raw", help="No chat template: the input is plain text for the model to continue.")


class GenOptions:
    """The generation options shared by run and chat: n_predict, and the keyword
    options of Chat.reply (None: not given), checked as GenerationConfig checks them;
    and show_reasoning, how the reply is shown, kept with them since /set changes it too."""

    show_reasoning = True

    def __init__(self, n_predict, temp, top_k, top_p, min_p, repeat_penalty, seed, lookup, draft_max,
                 json_schema=None, grammar=None, regex=None, tools=None, tool_choice=None):
        if n_predict is not None and n_predict < -1:
            raise UserError(f"-n must be -1 (no limit) or a count >= 0 (got {n_predict})")
        self.n_predict = n_predict
        self.kwargs: dict = {}
        # --grammar names a file; --json-schema's file-or-JSON is llmlite/constrain.py's to read
        grammar = read_user_text(grammar) if grammar is not None else None
        self.update(temperature=temp, top_k=top_k, top_p=top_p, min_p=min_p, repeat_penalty=repeat_penalty,
                    seed=seed, lookup=lookup, draft_max=draft_max)
        self.kwargs.update({k: v for k, v in (("json_schema", json_schema), ("grammar", grammar),
                                              ("regex", regex)) if v is not None})
        self.tools = None           # llmlite/tools.py's ToolSet for --tools
        if tools is not None:
            from llmlite.tools import ToolSet, load_tools_file

            if any(k in self.kwargs for k in ("json_schema", "grammar", "regex")):
                raise UserError("--tools and --json-schema/--grammar/--regex cannot be used together: "
                                "a call's arguments follow its tool's schema")
            known = ("auto", "required", "none", None)
            choice = tool_choice if tool_choice in known else {"function": {"name": tool_choice}}
            self.tools = ToolSet.from_openai(load_tools_file(tools), choice)
        elif tool_choice is not None:
            raise UserError("--tool-choice needs --tools")

    def check_constraint(self, tokenizer) -> None:
        """Compile the output constraint, if any, once the model is loaded: a bad schema or
        grammar is the one-line error now, not at the first reply."""
        from llmlite.constrain import compile_constraint

        compile_constraint(tokenizer, **{k: self.kwargs.get(k) for k in ("json_schema", "grammar", "regex")})

    def update(self, **changes) -> None:
        """Options changed (/set), checked first: on a UserError they stay as they were."""
        if changes.get("seed") is not None and changes["seed"] < 0:
            changes["seed"] = None                 # -s -1: a random seed
        kwargs = {**self.kwargs, **changes}
        try:
            GenerationConfig.from_options(**kwargs)
        except ValueError as e:
            raise UserError(str(e)) from None
        self.kwargs = kwargs

    @property
    def lookup(self) -> bool:
        return self.kwargs["lookup"]


def whole_number(v: str, what: str) -> int:
    """a whole number >= 0 given for `what`, or a UserError saying so"""
    try:
        n = int(str(v).strip())
    except ValueError:
        n = -1
    if n < 0:
        raise UserError(f"{what} must be a whole number >= 0 (got {v!r})")
    return n


def parse_ngl(v: str):
    s = str(v).strip().lower()
    return s if s in ("auto", "all") else whole_number(s, "-ngl (auto, all or a number of layers)")


def read_user_text(file: str) -> str:
    """The text in a file the user names (-: stdin), for run -f, tokenize - and
    perplexity -f alike: UTF-8, a leading BOM dropped (an editor's mark, not text).
    Anything else is a UserError naming the first byte that is not UTF-8, rather
    than U+FFFD stand-ins the model would be fed without anyone knowing."""
    name = "stdin" if file == "-" else file
    try:
        if file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(file, "rb") as f:
                data = f.read()
    except OSError as e:
        raise UserError(f"{name}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{name} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    return text.removeprefix("\ufeff")
