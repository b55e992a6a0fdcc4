"""llama.cpp's own logits depend on how a position was batched: the evidence that a
batch-invariant engine can equal only one of its paths (llmlite: its batch kernels, the
refs' greedy_batch), not its one-token decode too. Run it with the llama-cpp-python venv
(.venv-llamacpp/bin/python, see compare_llamacpp.py):

    .venv-llamacpp/bin/python benchmarks/llamacpp_batch_variance.py MODEL.gguf REFDIR [--save DIR]

For each refs prompt it prints how far llama.cpp's logits at each position move when
the same prompt is evaluated inside a longer batch (padded to a multiple of 4), and
how many greedy tokens llama.cpp produces identically when every step is computed by
its batch kernels instead of its one-token decode. --save writes the padded-batch
logits and the batched greedy tokens (npy) for comparison with llmlite's."""
import argparse
from pathlib import Path

import numpy as np
from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("refdir")
ap.add_argument("--save")
a = ap.parse_args()
llm = Llama(a.model, n_ctx=512, n_batch=512, n_threads=2, logits_all=True, verbose=False, flash_attn=False)
for k in range(2):
    ref = np.load(Path(a.refdir) / f"logits_{k}.npz")
    toks = [int(t) for t in ref["tokens"]]
    n = len(toks)
    llm.reset(); llm.eval(toks); alone = np.array(llm.scores[:n])
    pad = (-n) % 4 + (8 if n < 8 else 0)
    llm.reset(); llm.eval(toks + [toks[-1]] * pad); padded = np.array(llm.scores[:n])
    ids = ref["top_ids"]
    d = np.abs(np.take_along_axis(alone, ids, 1) - np.take_along_axis(padded, ids, 1)).max(1)
    print(f"prompt {k} ({n} tokens): max |logit change| per position when padded to {n + pad}:",
          np.round(d, 3).tolist())
    seq, out = list(toks), []
    for _ in range(len(ref["greedy"])):
        m = len(seq)
        llm.reset(); llm.eval(seq + [seq[-1]] * ((-m) % 4 + (8 if m < 8 else 0)))
        t = int(np.argmax(np.array(llm.scores[m - 1])))
        out.append(t); seq.append(t)
        if t == llm.token_eos():
            break
    want = [int(t) for t in ref["greedy"]]
    same = 0
    while same < min(len(out), len(want)) and out[same] == want[same]:
        same += 1
    print(f"prompt {k}: greedy through the batch kernels matches the decode-path reference for {same}/{len(want)} tokens")
    if a.save:
        Path(a.save).mkdir(parents=True, exist_ok=True)
        np.save(Path(a.save) / f"padded_logits_{k}.npy", padded.astype(np.float32))
        np.save(Path(a.save) / f"batched_greedy_{k}.npy", np.array(out))
