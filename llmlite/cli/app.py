"""The Typer app: global options, the error wrapper every command wears, model resolution.

Heavy imports (numpy, the C extension, Rich) happen inside the commands, so that
`llmlite --help` and argument errors stay fast.
"""
from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Optional

import typer

from llmlite.errors import LlmliteError


class _App(typer.Typer):
    """The Typer app, with a fast path for plain `run` command lines (fastpath.py)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs.get("args") is None:
            from llmlite.cli.fastpath import fast_run

            fast_run(sys.argv[1:])  # exits when it handled the command line
        return super().__call__(*args, **kwargs)


app = _App(
    name="llmlite",
    help="A small, fast local runner for GGUF language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _State:
    verbose = False


state = _State()


def _version(value: bool) -> None:
    if value:
        from llmlite import __version__

        print(f"llmlite {__version__}")
        raise typer.Exit()


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail; tracebacks on errors."),
          version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    state.verbose = verbose


def one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg


def _classify(e: BaseException) -> tuple[int, str]:
    """Exit status and message for an exception escaping a command: llmlite's own errors
    carry theirs (llmlite/errors.py); the operating system's are said in its words."""
    if isinstance(e, LlmliteError):
        return e.exit_code, one_line(e)
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return 2, f"{where}{e.strerror or one_line(e)}"
    if isinstance(e, MemoryError):
        return 1, "out of memory"
    if isinstance(e, OSError):
        return 1, f"{where}{e.strerror or one_line(e)}"
    return 1, f"internal error: {type(e).__name__}: {one_line(e)}" + (
        "" if state.verbose else " (run with --verbose for the traceback)")


def command(fn: Callable) -> Callable:
    """Wrap a command so that errors print one line ("error: ...") to stderr
    and exit non-zero; the traceback only with --verbose."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # the reader went away (e.g. `| head`): not worth a message; keep the
            # interpreter from complaining when it flushes stdout at exit
            import os

            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            raise typer.Exit(1) from None
        except Exception as e:
            import click

            if isinstance(e, click.exceptions.ClickException):
                raise
            code, msg = _classify(e)
            if state.verbose:
                import traceback

                traceback.print_exc()
            print(f"error: {msg}", file=sys.stderr)
            raise typer.Exit(code) from None

    return wrapper


def resolve(model: Optional[str]):
    """A model argument (path or models.toml alias) -> an existing file path."""
    from llmlite.registry import resolve_model

    return resolve_model(model)
