"""Model management: `llmlite pull`, `list`, `rm`."""
from __future__ import annotations

import sys

import typer

from llmlite.cli.app import app, command
from llmlite.cli.output import fmt_bytes


@app.command()
@command
def pull(name: str = typer.Argument(..., help="A models.toml alias, hf://org/repo/file.gguf, or org/repo[:QUANT] "
                                             "(the repo's file of that quantization, Q4_K_M by default).")) -> None:
    """Download a model into the cache (Hugging Face files into the Hugging Face cache,
    shared with other tools), resumed after an interruption, sha256 verified."""
    from llmlite.registry import is_verified
    from llmlite.registry import pull as do_pull

    p = do_pull(name, recheck=True)          # a cached file is hashed again: pull is the check
    checked = "sha256 verified" if is_verified(p) else "not verified: no sha256 known (offline, none in models.toml)"
    print(f"{name}: {p} ({fmt_bytes(p.stat().st_size)}, {checked})", file=sys.stderr)


@app.command(name="list")
@command
def list_models(json_out: bool = typer.Option(False, "--json", help="Print a JSON list."),
                verify: bool = typer.Option(False, "--verify", help="Hash every cached file again; one that does "
                                            "not match is deleted.")) -> None:
    """The models: those in the caches (llmlite's, for the PyPI-provided ones, and the
    Hugging Face cache) with size, quantization, architecture, context and when last
    run, and the models.toml aliases not fetched yet. --verify hashes each cached file
    again (the usual check trusts a file whose identity, size and times are those it
    had when it was verified) and deletes one that does not match."""
    import datetime
    import json

    from llmlite.gguf import open_gguf
    from llmlite.gguf.constants import FILE_TYPE_NAMES
    from llmlite.registry import HF_PREFIX, RegistryError, load_registry, local_models, verify_cached
    from llmlite.usage import last_used

    try:
        default, entries = load_registry()
    except RegistryError as e:                    # a broken models.toml must not hide the cache
        print(f"warning: {e}", file=sys.stderr)
        default, entries = None, {}
    alias_of = {}
    for e in entries.values():
        alias_of[e.file] = alias_of[f"{HF_PREFIX}{e.hf_repo}/{e.hf_file}"] = e.alias
    rows, seen, bad = [], set(), []
    for m in local_models():
        p = m["path"]
        alias = alias_of.get(m["name"])
        if verify:
            row_sha = verify_cached(m, entries)
            if row_sha == "deleted":
                bad.append(alias or m["name"])
                continue
        seen.add(alias)
        when = last_used(p)
        row = {"name": alias or m["name"], "file": m["name"], "source": m["source"], "path": str(p),
               "size": p.stat().st_size, "default": alias == default and alias is not None,
               **({"sha256": row_sha} if verify else {}),
               "last_used": datetime.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M") if when else "never"}
        try:
            with open_gguf(p) as g:
                arch = g.get("general.architecture", "?")
                row.update(arch=arch, quant=FILE_TYPE_NAMES.get(g.get("general.file_type"), "?"),
                           context=g.get(f"{arch}.context_length"))
        except Exception:
            row.update(arch="?", quant="?", context=None)
        rows.append(row)
    for e in entries.values():
        if e.alias not in seen:
            rows.append({"name": e.alias, "file": e.file, "source": "not pulled", "path": None, "size": e.size,
                         "default": e.alias == default, "last_used": "-", "arch": "-", "quant": "-",
                         "context": None})
    if json_out:
        print(json.dumps(rows))
    else:
        _print_table(rows, verify)
    if bad:
        raise RegistryError(f"{len(bad)} cached file(s) did not match their sha256 and were deleted: "
                            f"{', '.join(bad)} (`llmlite pull NAME` fetches one again)")


def _print_table(rows: list[dict], verify: bool) -> None:
    if not rows:
        print("no models: `llmlite pull NAME` fetches one", file=sys.stderr)
        return
    w = max(len(r["name"]) + 2 for r in rows)
    print(f"{'name':{w}}  {'size':>10}  {'quant':7}  {'arch':8}  {'context':>7}  {'last used':16}  "
          + ("sha256   " if verify else "") + "source")
    for r in rows:
        name = r["name"] + (" *" if r["default"] else "")
        size = fmt_bytes(r["size"]) if r["size"] else "?"
        print(f"{name:{w}}  {size:>10}  {r['quant']:7}  {r['arch']:8}  {r['context'] or '-':>7}  "
              f"{r['last_used']:16}  " + (f"{r.get('sha256', '-'):9}" if verify else "") + r["source"])
    print("* the default model; `llmlite pull NAME` fetches one", file=sys.stderr)


@app.command()
@command
def rm(name: str = typer.Argument(..., help="A models.toml alias, hf://org/repo/file.gguf or org/repo:QUANT.")) -> None:
    """Remove a model's files from the caches."""
    from llmlite.registry import remove

    for p in remove(name):
        print(f"removed {p}", file=sys.stderr)
