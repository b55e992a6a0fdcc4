"""`llmlite run` (one prompt, or the REPL without one) and `llmlite chat`."""
from __future__ import annotations

import inspect
from typing import Optional

import typer

from llmlite.cli.app import app, command
from llmlite.cli.loading import apply_model_defaults, load_model, make_chat
from llmlite.cli.options import (
    N_PREDICT_ONCE,
    GenOptions,
    opt_ctx,
    opt_draft_max,
    opt_grammar,
    opt_hide_reasoning,
    opt_json_schema,
    opt_lookup,
    opt_min_p,
    opt_n_predict,
    opt_ngl,
    opt_plain,
    opt_raw,
    opt_regex,
    opt_repeat_penalty,
    opt_seed,
    opt_system,
    opt_temp,
    opt_threads,
    opt_tool_choice,
    opt_tools,
    opt_top_k,
    opt_top_p,
    read_user_text,
)
from llmlite.cli.output import note, print_calls, print_stats, stream, utf8_stdout
from llmlite.cli.repl import repl
from llmlite.errors import UserError


def read_prompt_file(file: str) -> str:
    text = read_user_text(file)
    return text.removesuffix("\n")            # like llama.cpp: one trailing newline dropped


@app.command()
@command
def run(
    model: Optional[str] = typer.Argument(None, help="A GGUF file or a model alias (default: the default alias)."),
    prompt: Optional[str] = typer.Option(None, "-p", "--prompt", help="Generate once for this prompt, then exit."),
    file: Optional[str] = typer.Option(None, "-f", "--file", help="Read the prompt from a file (-: stdin)."),
    n_predict: Optional[int] = opt_n_predict(),
    ctx_size: Optional[int] = opt_ctx(),
    threads: Optional[int] = opt_threads(),
    gpu_layers: str = opt_ngl(),
    temp: Optional[float] = opt_temp(),
    top_k: Optional[int] = opt_top_k(),
    top_p: Optional[float] = opt_top_p(),
    min_p: Optional[float] = opt_min_p(),
    repeat_penalty: Optional[float] = opt_repeat_penalty(),
    seed: Optional[int] = opt_seed(),
    system: Optional[str] = opt_system(),
    lookup: bool = opt_lookup(),
    draft_max: int = opt_draft_max(),
    raw: bool = opt_raw(),
    plain: bool = opt_plain(),
    hide_reasoning: bool = opt_hide_reasoning(),
    json_schema: Optional[str] = opt_json_schema(),
    grammar: Optional[str] = opt_grammar(),
    regex: Optional[str] = opt_regex(),
    tools: Optional[str] = opt_tools(),
    tool_choice: Optional[str] = opt_tool_choice(),
) -> None:
    """Generate text. With -p or -f: once, to stdout (stats to stderr); without: the chat REPL.

    The chat template is applied (-sys is the system message) unless --raw or the
    model has none (a base model): then the prompt is continued as plain text.
    A reasoning model's thinking (Qwen3's <think>, gpt-oss's analysis channel) goes
    to stderr, dim, unless --hide-reasoning; stdout gets the answer.
    --json-schema, --grammar or --regex constrain every reply to follow it.
    --tools FILE declares tools: a reply's calls print as JSON lines after its text.
    """
    if prompt is not None and file is not None:
        raise UserError("give the prompt with -p or with -f, not both")
    gen = GenOptions(n_predict, temp, top_k, top_p, min_p, repeat_penalty, seed, lookup, draft_max,
                     json_schema, grammar, regex, tools, tool_choice)
    if prompt is None and file is None:
        repl(model, gen, ctx_size, threads, gpu_layers, system, raw, plain, not hide_reasoning)
        return
    text = prompt if prompt is not None else read_prompt_file(file)  # type: ignore[arg-type]
    utf8_stdout()
    m = load_model(model, ctx_size, threads, gpu_layers)
    gen.check_constraint(m.tokenizer)
    apply_model_defaults(gen, model)
    chat = make_chat(m, system, raw, gen.tools)
    if chat.raw and not text:
        raise UserError("the prompt is empty: nothing to continue")
    from llmlite.generate import GenStats

    stats = GenStats()
    n = N_PREDICT_ONCE if gen.n_predict is None else gen.n_predict
    stream(chat.reply_parts(text, max_tokens=n, stats=stats, **gen.kwargs), plain, not hide_reasoning)
    print_calls(chat.last_calls)
    print_stats(stats, gen.lookup)
    if stats.stop_reason == "context":
        note(f"(the context of {m.n_ctx} tokens is full: a larger -c gives the reply more room)")


def chat(**options) -> None:
    """Chat with a model in the terminal (reads lines from stdin when it is not a terminal).

    \b
    /help           the commands
    /clear          forget the conversation (and the KV cache)
    /system [TEXT]  set the system message (without TEXT: remove it)
    /bye            quit (also /exit, /quit, Ctrl-D; Ctrl-C at the prompt)
    A line ending in \\ continues on the next line. Ctrl-C stops a reply.
    """
    run(prompt=None, file=None, **options)


# chat takes run's options but -p/-f: the same declarations, not a copy of them
chat.__signature__ = inspect.Signature([p for name, p in inspect.signature(run, eval_str=True).parameters.items()
                                        if name not in ("prompt", "file")])
app.command(name="chat")(command(chat))
