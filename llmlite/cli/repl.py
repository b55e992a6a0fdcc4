"""The chat REPL: reading turns, slash commands, streaming replies, Ctrl-C, context overflow."""
from __future__ import annotations

import sys

from llmlite import settings
from llmlite.cli.app import one_line
from llmlite.cli.loading import apply_model_defaults, load_model, make_chat
from llmlite.cli.options import GenOptions, whole_number
from llmlite.cli.output import note, print_calls, print_stats, stderr_style, stream, utf8_stdout
from llmlite.errors import UserError
from llmlite.genconfig import DEFAULT_MAX_TOKENS, SAMPLING_KEYS

_REPL_HELP = """\
/help               this help
/clear              forget the conversation and empty the KV cache
/system [TEXT]      set the system message (without TEXT: remove it)
/set KEY VALUE      temp, top_k, top_p, min_p, repeat_penalty, seed, ctx, system, lookup (on/off)
                    or reasoning (show/hide: a reasoning model's thinking, dim on stderr)
/show               the model, template, parameters, the rendered prompt and its token ids
/save FILE          write the conversation as JSON; /load FILE reads one back
/regen              drop the last reply and generate it again
/tool TEXT          with --tools: TEXT is the result of the last reply's (next) tool call; the model goes on
/stats              the last reply's statistics
/bye                quit (also /exit, /quit, Ctrl-D, or Ctrl-C at the prompt)
End a line with \\ to continue on the next line, or put the text between \"\"\" lines.
Ctrl-C stops a reply; it stays in the history."""


TOOL_REPLY = object()   # what /tool hands the loop: a reply with no user turn (Chat.reply(None))


def _in_use(chat, state: dict) -> int:
    """the tokens in use: the KV cache's, except after /load until the next turn, when
    nothing of the loaded conversation is evaluated yet (the cache holds what came
    before it, or nothing): then the loaded conversation's count"""
    if state.get("loaded") and (chat.messages or chat.transcript):
        from llmlite.chat import ChatTemplateError

        try:
            return len(chat.prompt_ids())
        except ChatTemplateError:     # the next turn reports it; the gauge must not fail
            pass
    return chat.model.n_past


def _gauge(chat, state: dict) -> str:
    """the context gauge shown before the prompt: tokens in use / context"""
    return f"[{_in_use(chat, state)}/{chat.model.n_ctx}] "


def _ask(question: str) -> bool:
    """a yes/no question on stderr, answered at the terminal (never asked of piped
    input, where the answer would be the user's next message)"""
    print(stderr_style(question), end="", file=sys.stderr, flush=True)
    try:
        ans = input()
    except EOFError:
        return False
    return ans.strip().lower() in ("y", "yes")


def _read_turn(interactive: bool, gauge: str = "") -> str:
    """One input: lines joined across those that end with a backslash, or the lines
    between two \"\"\" marks. EOFError at the end."""

    def one(prompt: str) -> str:
        if interactive:
            return input(prompt)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    line = one(gauge + "> ")
    if line.lstrip().startswith('"""'):       # """ ... """: the lines between, as they are
        first = line.lstrip()[3:]
        parts = [first] if first else []
        while True:
            if parts and parts[-1].rstrip().endswith('"""'):
                parts[-1] = parts[-1].rstrip()[:-3]
                break
            try:
                parts.append(one("... "))
            except EOFError:
                break
        return "\n".join(p for p in parts).strip("\n")
    parts = []
    while line.endswith("\\"):
        parts.append(line[:-1])
        try:
            line = one("... ")
        except EOFError:
            line = ""
            break
    parts.append(line)
    return "\n".join(parts)


_SET_KEYS = {**SAMPLING_KEYS, "seed": ("seed", int)}     # the REPL may set the seed too


def _set(chat, gen: "GenOptions", key: str, value: str) -> None:
    """/set KEY VALUE, validated as the command-line options are"""
    key = key.lower().replace("-", "_")
    if key == "system":
        _slash_system(chat, value)
        return
    if key == "lookup":
        on = value.lower() in ("on", "true", "1", "yes")
        if not on and value.lower() not in ("off", "false", "0", "no"):
            raise UserError(f"/set lookup {value}: on or off")
        gen.update(lookup=on)
        note(f"(lookup {'on' if on else 'off'})")
        return
    if key == "ctx":
        _set_ctx(chat, value)
        return
    if key == "reasoning":
        _set_reasoning(chat, gen, value)
        return
    if key not in _SET_KEYS:
        raise UserError(f"/set {key}: one of {', '.join(list(_SET_KEYS) + ['ctx', 'system', 'lookup', 'reasoning'])}")
    name, read = _SET_KEYS[key]
    try:
        v = read(value)
    except ValueError:
        raise UserError(f"/set {key} {value}: not a number") from None
    gen.update(**{name: v})                # raises UserError, as on the command line
    note(f"({key} = {v})")


def _set_reasoning(chat, gen: "GenOptions", value: str) -> None:
    """/set reasoning show|hide: whether a reasoning model's thinking is shown"""
    v = value.lower()
    if v not in ("show", "hide"):
        raise UserError(f"/set reasoning {value}: show or hide")
    gen.show_reasoning = v == "show"
    what = f"{chat.reasoning} format" if chat.reasoning else "this model does not reason in a known format"
    note(f"(reasoning {'shown' if gen.show_reasoning else 'hidden'}; {what})")


def _set_ctx(chat, value: str) -> None:
    """/set ctx N: the KV cache made again at N tokens; the conversation, if it fits,
    is evaluated again on the next turn"""
    n = whole_number(value, "/set ctx")
    m = chat.model
    need = len(chat.prompt_ids()) if (chat.messages or chat.transcript) else 0
    train = m.metadata.get(f"{m.arch}.context_length")
    target = n or int(train or settings.DEFAULT_CTX)
    if target > settings.MAX_CTX:
        raise UserError(f"/set ctx {n}: at most {settings.MAX_CTX}")
    if need >= target:
        raise UserError(f"/set ctx {n}: the conversation is {need} tokens; /clear first, or a context above {need}")
    from llmlite.errors import LlmliteError

    try:
        m.set_context(target)
    except (LlmliteError, MemoryError) as e:
        raise UserError(f"/set ctx {n}: {one_line(e)}; the context stays {m.n_ctx}") from None
    beyond = f" (more than the model's training context {train}: quality may drop past it)" \
        if isinstance(train, int) and target > train else ""
    note(f"(ctx = {m.n_ctx}{beyond})")


def _slash_system(chat, arg: str) -> None:
    if chat.raw:
        note("(no chat template: /system has no effect)")
    else:
        chat.set_system(arg or None)
        note("(system message set)" if arg else "(system message removed)")


def _effective(chat, gen: "GenOptions") -> str:
    """the sampling values generation will use, each from the first that gives it: the
    command line or /set, models.toml, the GGUF's general.sampling.*, llama.cpp's defaults
    (gen.kwargs holds the first two, SamplingParams.from_metadata adds the others)"""
    from llmlite.genconfig import GenerationConfig
    from llmlite.sampling import SamplingParams

    config = GenerationConfig.from_options(**gen.kwargs)
    given = {k: v for k, v in gen.kwargs.items() if k in SamplingParams.__dataclass_fields__}
    p = SamplingParams.from_metadata(chat.model.metadata, **given)
    seed = "random" if p.seed is None else p.seed
    return (f"temp {p.temperature}, top_k {p.top_k}, top_p {p.top_p}, min_p {p.min_p}, "
            f"repeat_penalty {p.repeat_penalty}, seed {seed}, lookup {'on' if config.lookup else 'off'}, "
            f"draft_max {config.draft_max}")


def _show(chat, gen: "GenOptions", state: dict) -> None:
    m = chat.model
    how = "raw: no chat template" if chat.raw else chat.template.name
    if chat.reasoning:
        how += f"; reasoning: {chat.reasoning} format, {'shown' if gen.show_reasoning else 'hidden'}"
    ids = chat.prompt_ids() if (chat.messages or chat.transcript) else []
    print(f"model: {m.path}\ntemplate: {how}\ncontext: {_in_use(chat, state)} of {m.n_ctx} tokens in use\n"
          f"parameters: {_effective(chat, gen)}\nrendered prompt ({len(ids)} tokens):\n{chat.render(False) if ids else ''}\n"
          f"token ids: {ids}", file=sys.stderr, flush=True)


def _save(chat, path: str) -> None:
    import json

    data = {"format": "llmlite-chat-1", "system": chat.system, "raw": chat.raw, "messages": chat.messages,
            "transcript": chat.transcript}
    from llmlite.atomic import atomic_write

    try:  # atomically: a full disk must not cost the conversation saved there before
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
    except OSError as e:
        raise UserError(f"/save {path}: {e.strerror or e}") from None
    note(f"(conversation saved to {path}: {len(chat.messages)} messages)")


def _load(chat, path: str) -> None:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        msgs = data["messages"]
        if not all(isinstance(x, dict) and x.get("role") in ("user", "assistant") and isinstance(x.get("content"), str)
                   for x in msgs):
            raise ValueError("messages must be {role: user|assistant, content: text}")
    except OSError as e:
        raise UserError(f"/load {path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"/load {path}: not a saved conversation ({one_line(e)})") from None
    chat.messages = [dict(x) for x in msgs]
    chat.transcript = data.get("transcript", "") or ""
    if "system" in data:
        chat.set_system(data["system"])
    note(f"(conversation loaded from {path}: {len(chat.messages)} messages)")


def _slash(chat, line: str, gen: "GenOptions" = None, state: dict = None):
    """Run a slash command: False to quit, a text to send as a user turn (/regen),
    else None."""
    cmd, _, arg = line.partition(" ")
    cmd = cmd.lower()
    arg = arg.strip()
    state = state if state is not None else {}
    try:
        if cmd in ("/exit", "/quit", "/bye"):
            return False
        if cmd in ("/help", "/?"):
            print(_REPL_HELP, file=sys.stderr, flush=True)
        elif cmd == "/clear":
            chat.clear()
            note("(conversation cleared)")
        elif cmd == "/system":
            _slash_system(chat, arg)
        elif cmd == "/set" and gen is not None:
            key, _, value = arg.partition(" ")
            if not key or not value.strip():
                raise UserError("/set KEY VALUE (/help lists the keys)")
            _set(chat, gen, key, value.strip())
        elif cmd == "/show" and gen is not None:
            _show(chat, gen, state)
        elif cmd in ("/save", "/load"):
            if not arg:
                raise UserError(f"{cmd} FILE")
            (_save if cmd == "/save" else _load)(chat, arg)
            if cmd == "/load":    # evaluated on the next turn; counted until then (_in_use)
                state["loaded"] = True
        elif cmd == "/stats":
            st = state.get("stats")
            if st is None:
                note("(no reply yet)")
            else:
                print_stats(st, gen.lookup if gen is not None else False)
        elif cmd == "/regen":
            if chat.raw or len(chat.messages) < 2 or chat.messages[-1]["role"] != "assistant":
                raise UserError("/regen: there is no reply to generate again")
            chat.messages.pop()
            return chat.messages.pop()["content"]
        elif cmd == "/tool":
            try:
                chat.tool_result(arg)
            except ValueError as e:
                raise UserError(f"/tool: {e}") from None
            return TOOL_REPLY
        else:
            print(f"error: unknown command {cmd} (/help lists them)", file=sys.stderr, flush=True)
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
    return None


def _history() -> None:
    """line editing (readline) and the input history, kept across sessions in the
    cache folder (LLMLITE_CACHE, else ~/.cache/llmlite)"""
    try:
        import readline
    except ImportError:
        return
    import atexit

    path = settings.cache_root() / "chat_history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            readline.read_history_file(str(path))
    except OSError:
        pass
    readline.set_history_length(1000)

    def save():
        try:
            readline.write_history_file(str(path))
        except OSError:
            pass

    atexit.register(save)


def repl(model, gen: "GenOptions", ctx_size, threads, gpu_layers, system, raw, plain: bool = True,
         show_reasoning: bool = True) -> None:
    utf8_stdout()
    gen.show_reasoning = show_reasoning
    m = load_model(model, ctx_size, threads, gpu_layers)
    gen.check_constraint(m.tokenizer)
    apply_model_defaults(gen, model)
    chat = make_chat(m, system, raw, gen.tools)
    n = gen.n_predict if gen.n_predict is not None else (DEFAULT_MAX_TOKENS if chat.raw else -1)
    interactive = sys.stdin.isatty()
    if interactive:
        _history()
        how = "raw: no chat template" if chat.raw else chat.template.name
        note(f"llmlite chat: {m.path.name} ({how}), context {m.n_ctx} tokens. "
              "/help for commands, Ctrl-D to quit, Ctrl-C stops a reply.")
    try:
        _repl_loop(chat, gen, n, interactive, plain)
    except KeyboardInterrupt:  # Ctrl-C anywhere but in a reply: leave quietly
        print(file=sys.stderr)


def _repl_loop(chat, gen: "GenOptions", n: int, interactive: bool, plain: bool = True) -> None:
    from llmlite.chat import ChatTemplateError, ContextFullError
    from llmlite.generate import GenStats

    state: dict = {}
    pending = None                # a turn to send again (after dropping old exchanges)
    while True:
        try:
            text = pending if pending is not None else _read_turn(interactive, _gauge(chat, state) if interactive else "")
        except EOFError:
            if interactive:
                print(file=sys.stderr)
            return
        pending = None
        if not text.strip():
            continue
        if text.lstrip().startswith("/"):
            r = _slash(chat, text.strip(), gen, state)
            if r is False:
                return
            if r is None:
                continue
            text = None if r is TOOL_REPLY else r   # /regen: the last user turn again; /tool: no user turn
        if text is None:
            pass
        elif chat.raw:
            if chat.transcript and not chat.transcript.endswith(("\n", " ")):
                text = "\n" + text
        else:
            text = text.strip()
        state["loaded"] = False         # this turn evaluates the loaded conversation
        stats = GenStats()
        pieces = chat.reply_parts(text, max_tokens=n, stats=stats, **gen.kwargs)
        try:
            stream(pieces, plain, gen.show_reasoning)
        except KeyboardInterrupt:
            pieces.close()
            note("(reply interrupted)")
        except ContextFullError as e:
            # the turn is dropped; the conversation stays as it was, unless the user
            # agrees to forget its oldest exchanges (never silently). Piped input has
            # no one to ask: the next line is the next message, not an answer, so the
            # oldest exchanges go (the session goes on, as a full context lets it) and
            # stderr says so.
            k = -1 if e.first else chat.turns_to_drop(text or "", n if n > 0 else DEFAULT_MAX_TOKENS)
            over = f"the conversation with this message is {e.n_tokens} tokens and the context {e.n_ctx}"
            exchanges = f"the oldest {k} exchange{'s' if k > 1 else ''}"
            if k > 0 and (not interactive or _ask(f"({over}: drop {exchanges} to fit? [y/N]) ")):
                chat.drop_oldest(k)
                note(f"(dropped {exchanges})" if interactive else f"({over}: dropped {exchanges} to fit)")
                pending = text
                continue
            how = f"restart with -c {e.fit} or more"
            if not e.first:
                how = "/clear to start over, or " + how
            print(f"error: the conversation with this message is {e.n_tokens} tokens and does not fit the context "
                  f"of {e.n_ctx}: message dropped; {how}", file=sys.stderr, flush=True)
            continue
        except ChatTemplateError as e:
            print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
            continue
        finally:
            pieces.close()
        print_calls(chat.last_calls)
        print_stats(stats, gen.lookup)
        state["stats"] = stats
        if stats.stop_reason == "context":
            note("(the context is full: /clear to start over, or use a larger -c)")
