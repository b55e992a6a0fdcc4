"""What several test files share that is a plain function rather than a fixture:
running the CLI as a user does, and a GGUF copied with edits. (The fixtures, the
models and the shared reference data among them, are in tests/conftest.py.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `python -m llmlite` with this interpreter; cli_env's PYTHONPATH makes it the checkout's package
LLMLITE = [sys.executable, "-m", "llmlite"]


def cli_env(**env) -> dict:
    """The environment of a CLI run: this checkout first on the path, no colour codes
    (the tests read the text); env adds or replaces variables, a value of None removes one."""
    e = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    return e


def _run(argv, input=None, timeout=300, env=None, **run) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, argv)), input=input, capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, cwd=ROOT, env=cli_env(**(env or {})), **run)


def llmlite(*args, **kw) -> subprocess.CompletedProcess:
    """`llmlite ARGS` in a subprocess from the checkout's root: stdout and stderr
    captured as UTF-8 text; input=, a str for stdin; env=, as cli_env takes it;
    timeout= (300 s: it only stops a hung run); any other subprocess.run option."""
    return _run([*LLMLITE, *args], **kw)


def run_python(code: str, *args, **kw) -> subprocess.CompletedProcess:
    """`python -c CODE ARGS` as llmlite() runs the CLI (the same options): a fresh
    process for what must not touch this one (a backend library loaded once, a hang)."""
    return _run([sys.executable, "-c", code, *args], **kw)


def start_llmlite(*args, env=None, **popen) -> subprocess.Popen:
    """`llmlite ARGS` started and left running (to signal it mid-run): every stream a
    pipe (bytes unless popen says text=True), environment and folder as llmlite()'s."""
    return subprocess.Popen([*LLMLITE, *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=cli_env(**(env or {})), **popen)


def spawn_llmlite(*args, env=None, **spawn):
    """`llmlite ARGS` on a pseudo-terminal (pexpect, which the caller has checked is
    there), environment and folder as llmlite()'s; spawn: pexpect.spawn's options."""
    import pexpect

    return pexpect.spawn(LLMLITE[0], [*LLMLITE[1:], *map(str, args)], cwd=str(ROOT), env=cli_env(**(env or {})),
                         **spawn)


def _value_type(v):
    """The GGUF type a Python value is written as: str STRING, bool BOOL, int INT32, float FLOAT32;
    a numpy scalar as its dtype (np.uint32(2**31): UINT32), a numpy array as an array of its dtype."""
    import numpy as np

    from llmlite.gguf.constants import SCALAR_DTYPES, ValueType

    if isinstance(v, (np.generic, np.ndarray)):
        item = next(vt for vt, dt in SCALAR_DTYPES.items() if dt == v.dtype.newbyteorder("<") and vt != ValueType.BOOL)
        return (ValueType.ARRAY, item) if isinstance(v, np.ndarray) else item
    for t, vt in ((str, ValueType.STRING), (bool, ValueType.BOOL), (int, ValueType.INT32), (float, ValueType.FLOAT32)):
        if isinstance(v, t):
            return vt
    raise TypeError(f"no GGUF type for {v!r}")


def rewrite_gguf(src, dst, *, arch=None, kv=None, drop_kv=(), drop_tensors=(), retype=None) -> Path:
    """A copy of the GGUF src at dst with edits, to see what the loader and the CLI make
    of them: arch, a new architecture name (its <arch>.* keys renamed with it); kv,
    metadata added or replaced ({key: str | bool | int | float | numpy scalar or array},
    written after the rest);
    drop_kv, metadata left out; drop_tensors, tensors left out; retype, {tensor: ggml
    type} declared in the table over the same data (only loading is exercised).
    Every other value and tensor is copied byte for byte."""
    from llmlite.gguf import open_gguf
    from llmlite.gguf.writer import TensorOut, encode, write_gguf

    kv, retype = dict(kv or {}), dict(retype or {})
    if arch is not None:
        kv["general.architecture"] = arch
    with open_gguf(src) as g:
        old = g.architecture
        kvs = [(arch + k[len(old):] if arch and k.startswith(old + ".") else k, v)
               for k, v in g.stored_kvs() if k not in kv and k not in drop_kv]
        kvs += [(k, encode(_value_type(v), v)) for k, v in kv.items()]
        keep = [t for t in g.tensors.values() if t.name not in drop_tensors]
        table = [TensorOut(t.name, t.shape, retype.get(t.name, t.type), t.nbytes) for t in keep]
        write_gguf(dst, kvs, table, lambda i: g.tensor_data(keep[i].name))
    return Path(dst)


def assert_batch_invariant(w, toks, name: str, split: int = 17) -> None:
    """Weights w give each position of toks the same logits computed alone (one token
    per step), in one batch, or in a batch split at `split`."""
    import numpy as np

    whole = w.forward(toks, 0, 2)
    one_by_one = np.stack([w.forward([t], i, 1) for i, t in enumerate(toks)])
    assert np.array_equal(whole, one_by_one), name
    a = w.forward(toks[:split], 0, 2)
    b = w.forward(toks[split:], split, 2)
    assert np.array_equal(whole, np.concatenate([a, b])), name


def assert_same_with_small_n_batch(w, path, toks) -> None:
    """toks in one batch of Weights w give the bits of the same file cut into chunks of
    n_batch 7"""
    import numpy as np

    from llmlite.gguf import open_gguf
    from llmlite.model import Weights

    whole = w.forward(toks, 0, 2)
    with open_gguf(path) as g:
        small = Weights(g, 64, n_batch=7, flash_attn=False)
        assert np.array_equal(small.forward(toks, 0, 2), whole)


def greedy_tokens(w, toks, n: int) -> list[int]:
    """n greedy tokens after toks from Weights w, the prompt in one batch and each new
    token decoded alone (what llama.cpp's greedy references are compared with)"""
    import numpy as np

    logits = w.forward(toks, 0, 1)
    got = []
    for pos in range(len(toks), len(toks) + n):
        got.append(int(np.argmax(logits)))
        logits = w.forward([got[-1]], pos, 1)
    return got


def traced_stages(w, toks) -> dict:
    """Every stage the C forward pass traces (llm_set_trace) over toks in one batch:
    "<name>-<layer>" (llama.cpp's names; "<name>" for a stage outside the layers) ->
    its floats; the first of each name, as llama.cpp's dump keeps"""
    import numpy as np

    from llmlite._lib import ffi, lib

    out = {}

    @ffi.callback("llm_trace_fn")
    def keep(stage, layer, data, n):
        key = ffi.string(stage).decode() + (f"-{layer}" if layer >= 0 else "")
        out.setdefault(key, np.frombuffer(ffi.buffer(data, n * 4), np.float32).copy())

    lib.llm_set_trace(keep)
    try:
        w.forward(toks, 0, 0)
    finally:
        lib.llm_set_trace(ffi.NULL)
    return out


def load_npz(path) -> dict:
    """A references file (tests/data/*.npz) as a dict of arrays, read whole."""
    import numpy as np

    with np.load(path) as r:
        return {k: r[k] for k in r.files}


def rebuilt_models(module, refs: dict, folder) -> dict:
    """name -> path of each of module.MODELS rebuilt into folder (module.build), each
    checked to be the file its references (refs[name/sha256]) were made from"""
    from pathlib import Path

    paths = {}
    for name in module.MODELS:
        paths[name] = Path(folder) / f"{name}.gguf"
        assert module.build(name, paths[name]) == str(refs[f"{name}/sha256"]), \
            f"{name}: the rebuilt file differs from the one the references were made from"
    return paths


def flash_floor(logits, refs: dict, name: str, k: int):
    """How logits (every position of prompt k, flash attention) stand against llama.cpp's
    own flash-attention logits (refs' <name>/fa_top_logits_k over top_ids_k, and
    fa_logsumexp_k): whether every position's top-1 is llama.cpp's, and each top-20
    |dlogprob| ([n, 20]), for the issue's floor (top-1 all, mean <= 0.02, max <= 0.2)"""
    import numpy as np

    ids, want = refs[f"{name}/top_ids_{k}"], refs[f"{name}/fa_top_logits_{k}"]
    mx = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - mx).sum(1)) + mx[:, 0]
    dlp = np.abs((np.take_along_axis(logits, ids, 1) - lse[:, None])
                 - (want - refs[f"{name}/fa_logsumexp_{k}"][:, None]))
    top1 = bool(np.array_equal(logits.argmax(1), ids[np.arange(len(ids)), want.argmax(1)]))
    return top1, dlp


def _refs_and_models(module, refs_path, models_name: str):
    """the two fixtures every tiny-models test file starts from: refs (the references
    file, read whole) and, named models_name, name -> each rebuilt GGUF's path (checked
    to be the file llama.cpp ran)"""
    import pytest

    @pytest.fixture(scope="module", name="refs")
    def refs_():
        return load_npz(refs_path)

    @pytest.fixture(scope="module", name=models_name)
    def models_(tmp_path_factory, refs):
        return rebuilt_models(module, refs, tmp_path_factory.mktemp(module.__name__))

    return refs_, models_


def _open_weights(path):
    """a test's Weights over path (n_ctx 512, n_batch 64, flash attention off), closed after"""
    from llmlite.gguf import open_gguf
    from llmlite.model import Weights

    g = open_gguf(path)
    yield Weights(g, 512, n_batch=64, flash_attn=False)
    g.close()


def oracle_fixtures(module, refs_path):
    """The module-scoped fixtures of a test file over a tiny-models module (moe_models,
    gemma4_models, ...) and its llama.cpp references file: refs, built (name -> path)
    and model ((name, Weights) for each model in turn, as _open_weights makes them). A
    test file takes them with `refs, built, model = oracle_fixtures(...)`."""
    import pytest

    refs_, built_ = _refs_and_models(module, refs_path, "built")

    @pytest.fixture(scope="module", name="model", params=list(module.MODELS))
    def model_(request, built):
        for w in _open_weights(built[request.param]):
            yield request.param, w

    return refs_, built_, model_


def one_model_fixtures(module, refs_path, name: str):
    """The module-scoped fixtures of a test file about one model of a tiny-models module
    (qwen35_models, smollm3_models, ...): refs, paths (every model of the module rebuilt),
    path (name's) and w (its Weights, as _open_weights makes them). A test file takes
    them with `refs, paths, path, w = one_model_fixtures(...)`."""
    import pytest

    refs_, paths_ = _refs_and_models(module, refs_path, "paths")

    @pytest.fixture(scope="module", name="path")
    def path_(paths):
        return paths[name]

    @pytest.fixture(scope="module", name="w")
    def w_(path):
        yield from _open_weights(path)

    return refs_, paths_, path_, w_


def assert_top_logits_match(w, refs: dict, name: str, n_prompts: int, flash: bool = False) -> None:
    """Teacher-forced, each of the n_prompts prompts of refs (a references file's, for
    model `name`): the top-20 logits of every position are llama.cpp's bits, and so
    the top-1 and the log-normaliser agree too (flash: its flash-attention logits, at
    the same ids)"""
    import numpy as np

    fa = "fa_" if flash else ""
    for k in range(n_prompts):
        logits = w.forward(refs[f"{name}/tokens_{k}"], 0, 2)
        ids, want = refs[f"{name}/top_ids_{k}"], refs[f"{name}/{fa}top_logits_{k}"]
        ours = np.take_along_axis(logits, ids, 1)
        assert np.array_equal(ours, want), (k, np.abs(ours - want).max())
        assert np.array_equal(logits.argmax(1), ids[np.arange(len(ids)), want.argmax(1)]), k
        mx = logits.max(1, keepdims=True)
        lse = np.log(np.exp(logits - mx).sum(1)) + mx[:, 0]
        assert np.allclose(lse, refs[f"{name}/{fa}logsumexp_{k}"], rtol=0, atol=1e-5), k


def assert_stages_match(ours: dict, refs: dict, name: str, n: int, renames: dict | None = None) -> None:
    """refs' n stages of `name` (llama.cpp's names; renames: llama.cpp's -> ours where they
    differ) are the same bits as ours (traced_stages')"""
    import numpy as np

    stages = [k for k in refs if k.startswith(f"{name}/stage/")]
    assert len(stages) == n
    for k in stages:
        stage = k.split("/")[-1]
        got = ours[(renames or {}).get(stage, stage)]
        assert np.array_equal(got, refs[k].ravel()), (stage, np.abs(got - refs[k].ravel()).max())


def assert_greedy_match(w, refs: dict, name: str, n_prompts: int, n: int) -> None:
    """n greedy tokens after each of refs' prompts, each decoded alone after the prompt's
    batch (greedy_tokens), are llama.cpp's"""
    for k in range(n_prompts):
        assert greedy_tokens(w, refs[f"{name}/tokens_{k}"], n) == list(refs[f"{name}/greedy_{k}"]), k


def assert_refused_with_one_line(src, dst, edit: dict, message: str) -> None:
    """src rewritten to dst with edit (rewrite_gguf's keywords) fails to load with one
    GGUFError line matching message"""
    import pytest

    from llmlite.gguf import GGUFError, open_gguf
    from llmlite.model import Weights

    bad = rewrite_gguf(src, dst, **edit)
    with pytest.raises(GGUFError, match=message) as ei, open_gguf(bad) as g:
        Weights(g, 64, n_batch=8)
    assert "\n" not in str(ei.value)


def assert_cli_info_and_run(path, *facts: str) -> None:
    """`llmlite info` on path succeeds and shows each of facts; `llmlite run` with -n 8
    generates 8 tokens of text"""
    r = llmlite("info", path)
    assert r.returncode == 0, r.stderr
    assert all(f in r.stdout for f in facts), r.stdout
    r = llmlite("run", path, "-p", "the cat", "-n", 8, "--temp", 0)
    assert r.returncode == 0, r.stderr
    assert "generated 8 tokens" in r.stderr and r.stdout.strip()


def cuda_span_refusal(emulated_cuda_lib, path, n_gpu: int) -> str:
    """What the CUDA span itself (the real code under the emulated runtime) says when
    handed the last n_gpu layers of the model at path (in a fresh process: the backend
    library loads once): its OffloadError's line, or "" where it took them"""
    code = ("import sys; from llmlite import offload; from llmlite.errors import OffloadError\n"
            "from llmlite.gguf import open_gguf; from llmlite.model import Weights\n"
            "assert offload.load_cuda()[0]\n"
            "try:\n    Weights(open_gguf(sys.argv[1]), 64, n_batch=8, n_gpu=int(sys.argv[2]), backend='cuda')\n"
            "except OffloadError as e:\n    print(e)\n")
    r = run_python(code, path, n_gpu, env={"LLMLITE_CUDA_LIB": emulated_cuda_lib})
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---- a recurrent state (qwen35's delta-net, lfm2's short convolution): what every
# hybrid family must show, its tests' shared bodies ----

def assert_state_restarts(w, toks) -> None:
    """Weights w's recurrent state holds one position: a pass at 0 starts it over (the
    same logits twice), one anywhere but where it stands is refused rather than wrong,
    and a pass continuing where it stands gives the whole pass's logits"""
    import numpy as np
    import pytest

    from llmlite.errors import LlmliteError

    a = w.forward(toks, 0, 2)
    assert np.array_equal(w.forward(toks, 0, 2), a)
    with pytest.raises(LlmliteError, match=f"recurrent state holds {len(toks)} tokens, not 5"):
        w.forward(toks[:3], 5, 1)
    assert np.array_equal(w.forward(toks[:10], 0, 2), a[:10])
    assert np.array_equal(w.forward(toks[10:], 10, 2), a[10:])


def assert_rewinds_exact(path, toks) -> None:
    """What the decode loop and chat do to a model's cache (toks: 46 or more): truncate
    then continue (a guess's rejected tokens, a regenerated reply, a new turn sharing a
    prefix) gives the logits of a fresh run, from the copies of the state kept where it
    can (the prompt's end, a verify's start), else from the start."""
    import numpy as np

    from llmlite.model import Model

    m = Model(path, n_ctx=128, n_batch=16)
    fresh = m.eval(toks)
    m.reset()
    m.eval(toks[:30])
    m.eval(toks[30:36])                  # a guess of 6 tokens, 2 of them kept
    m.truncate(32)
    assert np.array_equal(m.eval(toks[32:40]), fresh[32:40])
    m.truncate(10)                       # below the copy: run again from the start
    assert np.array_equal(m.eval(toks[10:20]), fresh[10:20])
    m.reset()
    assert np.array_equal(m.prefill(toks[:40]), fresh[39])
    for t in toks[40:44]:
        m.step(t)
    assert np.array_equal(m.prefill(toks[:40]), fresh[39])     # /regen: the same prompt again
    assert m.last_reused == 39
    assert np.array_equal(m.prefill(toks[:46]), fresh[45])     # a longer prompt sharing the prefix
    # a guess verified after the prompt keeps its own copy: /regen then restores the
    # prompt's copy and runs only the prompt's last token, not the whole history
    m.reset()
    m.prefill(toks[:40])
    m.eval(toks[40:46])
    ran = []
    forward = m.weights.forward
    m.weights.forward = lambda ids, *a, **k: (ran.append(len(ids)), forward(ids, *a, **k))[1]
    assert np.array_equal(m.prefill(toks[:40]), fresh[39]) and ran == [1]
    m.weights.forward = forward
    m.close()


def assert_offload_on_cpu_span(path, toks, n_gpu: int, cuda_note: str) -> None:
    """The last n_gpu layers given to the CPU stand-in for a device (their state with
    them) give the same bits, rewinds included (from the start: the copy would miss the
    span's part); the CUDA backend leaves the model on the CPU with the one line cuda_note"""
    import numpy as np

    from llmlite.model import Model

    whole = Model(path, n_ctx=64, gpu_layers=0).eval(toks)
    split = Model(path, n_ctx=64, gpu_layers=n_gpu, offload_backend="cpu")
    assert split.weights.n_gpu == n_gpu and np.array_equal(split.eval(toks), whole)
    split.truncate(10)
    assert np.array_equal(split.eval(toks[10:]), whole[10:])
    notes = []
    m = Model(path, n_ctx=64, gpu_layers="all", offload_backend="cuda", notify=notes.append)
    assert m.weights.n_gpu == 0 and np.array_equal(m.eval(toks), whole)
    assert notes == [cuda_note]


def assert_lookup_decodes_greedy(path, prompt, greedy) -> None:
    """Prompt-lookup speculation (each rejected guess rolled back through the state's
    copy) decodes the tokens plain greedy decoding does, and from prompt those are
    greedy (llama.cpp's 48)"""
    from llmlite.generate import GenStats, drafter_for, generate_tokens
    from llmlite.genconfig import GenerationConfig
    from llmlite.model import Model
    from llmlite.sampling import Sampler, SamplingParams

    m = Model(path, n_ctx=256, n_batch=32)
    # the prompt again after its continuation: the model partly repeats itself, and the
    # lookup's guesses (from the first continuation) are partly kept, partly rolled back
    out, stats = {}, {}
    for lookup in (False, True):
        m.reset()
        stats[lookup] = GenStats()
        out[lookup] = list(generate_tokens(m, prompt + greedy + prompt, Sampler(SamplingParams(temperature=0.0)), 48,
                                           stats[lookup], stop_ids=[],
                                           drafter=drafter_for(GenerationConfig(lookup=lookup))))
    assert out[True] == out[False]
    assert 0 < stats[True].accepted < stats[True].drafted     # guesses kept and guesses rolled back
    m.reset()
    got = generate_tokens(m, prompt, Sampler(SamplingParams(temperature=0.0)), len(greedy), GenStats(), stop_ids=[],
                          drafter=drafter_for(GenerationConfig(lookup=True)))
    assert list(got) == list(greedy)
    m.close()
