"""Dump every intermediate tensor of llama.cpp's forward pass (flash attention off, one
batch) to an npz, through llama.cpp's cb_eval scheduler callback. Run with the
llama-cpp-python venv; compare with benchmarks/trace_compare.py:

    .venv-llamacpp/bin/python benchmarks/llamacpp_trace_dump.py MODEL.gguf OUT.npz 1,2,3,...
"""
import sys, ctypes, numpy as np, llama_cpp as L
path, out = sys.argv[1], sys.argv[2]
toks = [int(t) for t in sys.argv[3].split(',')]
class T(ctypes.Structure):
    _fields_ = [('type', ctypes.c_int), ('buffer', ctypes.c_void_p), ('ne', ctypes.c_int64*4), ('nb', ctypes.c_size_t*4),
                ('op', ctypes.c_int), ('op_params', ctypes.c_int32*16), ('flags', ctypes.c_int32), ('src', ctypes.c_void_p*10),
                ('view_src', ctypes.c_void_p), ('view_offs', ctypes.c_size_t), ('data', ctypes.c_void_p), ('name', ctypes.c_char*64),
                ('extra', ctypes.c_void_p), ('padding', ctypes.c_char*8)]
store = {}; order = []
def cb(t, ask, ud):
    tt = ctypes.cast(t, ctypes.POINTER(T)).contents
    if ask: return True
    name = tt.name.decode()
    if tt.type not in (0, 1): return True
    ne = list(tt.ne); nb = list(tt.nb)
    esz = 4 if tt.type == 0 else 2
    n = ne[0]*ne[1]*ne[2]*ne[3]
    # strided read
    span = sum((ne[i]-1)*nb[i] for i in range(4)) + esz
    buf = (ctypes.c_char*span).from_address(tt.data)
    a = np.frombuffer(bytes(buf), dtype=np.float32 if tt.type == 0 else np.float16)
    a = np.lib.stride_tricks.as_strided(a, shape=ne[::-1], strides=[s for s in nb[::-1]]).copy()
    key = f'{len(order):04d}_{name}'
    store[key] = a; order.append(key)
    return True
cbf = L.ggml_backend_sched_eval_callback(cb)
L.llama_backend_init()
mp = L.llama_model_default_params()
model = L.llama_model_load_from_file(path.encode(), mp)
cp = L.llama_context_default_params()
cp.n_ctx = 512; cp.n_batch = 512; cp.n_ubatch = 512; cp.n_threads = 2; cp.n_threads_batch = 2
if hasattr(cp, 'flash_attn_type'): cp.flash_attn_type = 0
else: cp.flash_attn = False
cp.cb_eval = cbf; cp.cb_eval_user_data = None
ctx = L.llama_init_from_model(model, cp)
n = len(toks)
batch = L.llama_batch_init(n, 0, 1)
for i, t in enumerate(toks):
    batch.token[i] = t; batch.pos[i] = i; batch.n_seq_id[i] = 1; batch.seq_id[i][0] = 0; batch.logits[i] = 1
batch.n_tokens = n
assert L.llama_decode(ctx, batch) == 0
np.savez(out, **store)
print(len(order), 'tensors;', ' '.join(order[:60]))
