"""Compare llmlite's forward pass stage by stage (llm_set_trace) with a llama.cpp dump
from benchmarks/llamacpp_trace_dump.py: the first stage whose bits differ is where
the arithmetic departs from llama.cpp's.

    python benchmarks/trace_compare.py MODEL.gguf DUMP.npz 1,2,3,... [N_LAYERS]
"""
import sys, numpy as np
from llmlite.gguf import open_gguf
from llmlite.model import Weights
from llmlite._lib import ffi, lib
path, dump, toks = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3].split(',')]
ours = {}
@ffi.callback("llm_trace_fn")
def cb(name, layer, data, n):
    ours[(ffi.string(name).decode(), layer)] = np.frombuffer(ffi.buffer(data, n * 4), np.float32).copy()
lib.llm_set_trace(cb)
g = open_gguf(path)
w = Weights(g, 512, n_batch=512, flash_attn=False)
logits = w.forward(np.array(toks, np.int32), 0, 2)
lib.llm_set_trace(ffi.NULL)
z = np.load(dump)
ref = {}
for k in z.files:
    name = k[5:]
    ref.setdefault(name, z[k])   # first occurrence of a name
m = {'attn_norm': 'attn_norm-%d', 'Vcur': 'Vcur-%d', 'kqv_out': 'kqv_out-%d', 'attn_out': 'attn_out-%d', 'ffn_inp': 'ffn_inp-%d',
     'ffn_norm': 'ffn_norm-%d', 'ffn_gate': 'ffn_gate-%d', 'ffn_up': 'ffn_up-%d', 'ffn_act': 'ffn_swiglu-%d', 'ffn_out': 'ffn_out-%d', 'l_out': 'l_out-%d',
     # a mixture of experts (csrc/moe.c): the router, the chosen experts' weights, their sum
     'ffn_moe_logits': 'ffn_moe_logits-%d', 'ffn_moe_weights': 'ffn_moe_weights-%d',
     'ffn_moe_weights_norm': 'ffn_moe_weights_norm-%d', 'ffn_moe_out': 'ffn_moe_out-%d'}
# Qcur/Kcur: last named Qcur-%d before the view (after rope)
qk = {}
for k in z.files:
    nm = k[5:]
    if nm.startswith('Qcur-') or nm.startswith('Kcur-'):
        if '(' in nm: continue
        qk.setdefault(nm, []).append(z[k])
nl = max(l for _, l in ours) + 1
def show(tag, a, b):
    a = a.ravel(); b = b.ravel().astype(np.float32)
    if a.shape != b.shape: print(f'{tag:14s} shape {a.shape} vs {b.shape}'); return
    d = np.abs(a - b); print(f'{tag:14s} max|d| {d.max():.3e} rel {d.max()/max(np.abs(b).max(),1e-30):.2e} ndiff {(d>0).sum()}/{d.size}')
show('embd', ours[('embd', -1)], ref['inp_scaled'] if 'inp_scaled' in ref else ref['embd'])
files = list(z.files)
def after(name, il):
    idx = [i for i, k in enumerate(files) if k[5:] == name % il]
    return z[files[idx[-1] + 1]] if idx else None
gem = 'inp_scaled' in ref
if gem:
    m['ffn_inp'] = 'sa_out-%d'; m['ffn_act'] = 'ffn_geglu-%d' 
for il in range(min(nl, int(sys.argv[4]) if len(sys.argv) > 4 else 2)):
    print('layer', il)
    for ok in ['attn_norm', 'Qraw', 'Kraw', 'Vcur', 'Qcur', 'Kcur', 'kqv_out', 'attn_out', 'ffn_inp', 'ffn_norm', 'ffn_gate', 'ffn_up',
               'ffn_act', 'ffn_moe_logits', 'ffn_moe_weights', 'ffn_moe_weights_norm', 'ffn_moe_out', 'ffn_out', 'l_out']:
        if (ok, il) not in ours: continue
        if ok in ('Qraw', 'Kraw', 'Qcur', 'Kcur'):
            lst = qk.get(ok[0] + 'cur-%d' % il, [])
            r = lst[0] if ok.endswith('raw') else (lst[-1] if lst else None)
            if gem and ok == 'Qcur': r = after('Qcur-%d', il)
            if r is None: continue
        elif gem and ok == 'attn_out':
            r = after('kqv_out-%d', il)
        else:
            r = ref.get(m[ok] % il)
            if r is None: print(ok, 'missing in ref'); continue
        show(ok, ours[(ok, il)], r)
rz = ref.get('result_norm')
if rz is not None: show('result_norm', ours[('result_norm', -1)], rz)
rr = ref.get('result_output')
if rr is not None: show('logits', logits, rr)
