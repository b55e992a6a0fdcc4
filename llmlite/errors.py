"""llmlite's errors, all in one place. Each one's message is the single line a person reads
(the CLI prints "error: <message>"), and its class carries the exit status the CLI returns.

    LlmliteError          exit 1: the engine could not do it (an unsupported model, a full context)
      OffloadError          a span could not be made on its device
      DeviceLost            a device step failed; the model goes on on the CPU
      UserError           exit 2: bad input (a file, an option, a model name, a template)
        GGUFError, TokenizerError, ChatTemplateError, ContextFullError, ContextMemoryError,
        QuantizeError, RegistryError, ConstraintError

A model file cut while a model uses it is no exception: its pages vanish from the mapping
and the read faults (SIGBUS) inside C; csrc/sigbus.c prints the one line naming the file
and exits 1, as an LlmliteError would.

The built-in bases they had before (ValueError, RuntimeError) are kept, so callers that catch
those still do.
"""
from __future__ import annotations


class LlmliteError(RuntimeError):
    """Something llmlite cannot do, said for people (the C side's errors come as this)."""

    exit_code = 1


class UserError(LlmliteError):
    """Bad input from the user: a file, an option value, a model name."""

    exit_code = 2


class OffloadError(LlmliteError):
    """A span could not be made on its backend: out of its memory (out_of_memory True:
    fewer layers may fit), or something it cannot run (no layer count helps)."""

    def __init__(self, msg: str, out_of_memory: bool = False):
        super().__init__(msg)
        self.out_of_memory = out_of_memory


class DeviceLost(LlmliteError):
    """A step failed on the device of the offloaded span (for good when the CUDA error
    poisons the context, dead True): Model goes on with every layer on the CPU."""

    def __init__(self, msg: str, dead: bool):
        super().__init__(msg)
        self.dead = dead


class GGUFError(UserError, ValueError):
    """A file that is not a GGUF llmlite can read, or is truncated or corrupt."""


class TokenizerError(UserError, ValueError):
    """The tokenizer metadata is missing, malformed or unsupported."""


class ChatTemplateError(UserError, ValueError):
    """The model's chat template cannot be compiled or rendered for this conversation."""


class ContextFullError(UserError, ValueError):
    """The prompt (or the conversation with a new message) does not fit the context window.

    ``n_tokens``: its length; ``n_ctx``: the context; ``fit``: a context size that
    holds it and a reply (the prompt plus the reply's token budget, or the reply reserve
    when it has none); ``first``: True when there was no earlier turn (/clear would not help)."""

    def __init__(self, message: str, n_tokens: int = 0, n_ctx: int = 0, fit: int = 0, first: bool = True):
        super().__init__(message)
        self.n_tokens, self.n_ctx, self.fit, self.first = n_tokens, n_ctx, fit, first


class ContextMemoryError(UserError, ValueError):
    """A context (-c) whose KV cache and buffers alone are more than this machine's memory."""


class QuantizeError(UserError, ValueError):
    """A quantization that cannot be done as asked (a type, a tensor, the output path)."""


class RegistryError(UserError, RuntimeError):
    """models.toml, a model name, or a download that went wrong."""


class ConstraintError(UserError, ValueError):
    """A JSON schema, grammar or regex that constrained decoding cannot use (the message
    names the offending part), or one that would take too long to compile."""
