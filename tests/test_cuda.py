"""core/ on a CUDA GPU against the same computations on the CPU: the model's three attention
paths, the fused LM head + loss, bf16 autocast training, KV-cache generation, capture, the
Trainer and checkpoints across devices, and Hugging Face GPT-2 parity.

Every test skips when `torch.cuda.is_available()` is false (CI has no GPU): importing and
collecting this module never initialises CUDA. fp32 comparisons run with TF32 off, so the GPU
multiplies in full fp32 like the CPU reference and tolerances can be tight.
"""

import collections
import copy

import pytest
import torch
import torch.nn.functional as F

from core.checkpoint import load_checkpoint, save_checkpoint
from core.config import preset
from core.model import GPT
from core.probes import capture, probe_names
from core.sampling import generate
from tests import trainutil

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU (torch.cuda.is_available() is False)"
)

TOL = 1e-4  # fp32 GPU vs CPU, relative to the largest value: different summation orders only
LOW = 3e-2  # bf16 (8 significant bits) against an fp32 reference, same measure

# (config overrides, the attention a training forward takes): the fused qkv attention needs
# no RoPE and no dropout; otherwise attention by matmuls (core/attention.py)
VARIANTS = [
    ({}, "fused_causal_attention"),
    (dict(activation="relu", pos_encoding="sinusoidal", norm="rmsnorm"), "fused_causal_attention"),
    (dict(pos_encoding="none", norm_position="post", bias=False), "fused_causal_attention"),
    (
        dict(activation="swiglu", norm="rmsnorm", pos_encoding="rope", tie_embeddings=False),
        "matmul_attention",
    ),
]


@pytest.fixture(autouse=True)
def _no_tf32():
    """Full-precision fp32 matmuls on the GPU for every test; the previous setting restored."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.fixture
def paths(monkeypatch):
    """Counts the attention routes taken (one per block per forward), by name."""
    from core import attention

    seen = collections.Counter()

    def spy(name, fn):
        def counted(*args, **kwargs):
            seen[name] += 1
            return fn(*args, **kwargs)

        return counted

    for name in ("fused_causal_attention", "matmul_attention", "explicit_attention"):
        monkeypatch.setattr(attention, name, spy(name, getattr(attention, name)))
    monkeypatch.setattr(
        F, "scaled_dot_product_attention", spy("sdpa", F.scaled_dot_product_attention)
    )
    return seen


def rel_err(a, b) -> float:
    """max |a - b| / max |b|, on the CPU in fp32: one number for tensors of any scale."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def on_cuda(model):
    """A copy of `model` on the GPU (tied weights stay tied); the CPU original is untouched."""
    return copy.deepcopy(model).cuda()


def batch(V=128, B=3, T=32, seed=1):
    """ids and targets (B, T) on the CPU; a few targets ignored (-100)."""
    g = torch.Generator().manual_seed(seed)
    ids, tgt = torch.randint(0, V, (2, B, T), generator=g)
    tgt[0, :5] = -100
    return ids, tgt


# -- 1. fp32: GPU == CPU on every attention path ------------------------------------------
@pytest.mark.parametrize(
    "kw, train_path", VARIANTS, ids=[v[1][:5] + str(i) for i, v in enumerate(VARIANTS)]
)
def test_fp32_logits_loss_and_grads_match_cpu(kw, train_path, paths):
    torch.manual_seed(0)
    cpu = GPT(preset("tiny", **kw))
    gpu = on_cuda(cpu)
    L = cpu.config.n_layers
    ids, tgt = batch()
    out = {}
    for m in (cpu, gpu):  # training forward (grad on): fused/matmul attention, fused head + loss
        dev = m.tok_emb.weight.device
        logits, loss = m(ids.to(dev), tgt.to(dev))
        loss.backward()
        _, lean = m(ids.to(dev), tgt.to(dev), return_logits=False)
        assert torch.equal(lean, loss), "return_logits=False changed the loss"
        out[dev.type] = logits, loss, {n: p.grad for n, p in m.named_parameters()}
    assert paths[train_path] == 4 * L and paths["sdpa"] == 0, dict(paths)
    (c_logits, c_loss, c_grads), (g_logits, g_loss, g_grads) = out["cpu"], out["cuda"]
    assert g_logits.is_cuda and rel_err(g_logits, c_logits) <= TOL
    assert abs(g_loss.item() - c_loss.item()) <= TOL * c_loss.item()
    for name, grad in c_grads.items():
        assert rel_err(g_grads[name], grad) <= TOL, name

    paths.clear()  # fp32 inference: SDPA
    for m in (cpu.eval(), gpu.eval()):
        dev = m.tok_emb.weight.device
        with torch.no_grad():
            out[dev.type] = m(ids.to(dev), tgt.to(dev))
    assert paths["sdpa"] == 2 * L and paths["fused_causal_attention"] == 0, dict(paths)
    assert rel_err(out["cuda"][0], out["cpu"][0]) <= TOL
    assert abs(out["cuda"][1].item() - out["cpu"][1].item()) <= TOL * out["cpu"][1].item()

    paths.clear()  # capture: the explicit path
    logits, _ = capture(gpu, ids, names=["logits"])
    assert paths["explicit_attention"] == L and paths["sdpa"] == 0, dict(paths)
    assert rel_err(logits, out["cpu"][0]) <= TOL


# -- 2. bf16 autocast and the fused kernels ------------------------------------------------
@pytest.mark.parametrize("kw", [{}, dict(pos_encoding="rope")], ids=["fused", "matmul"])
def test_bf16_autocast_training_step(kw):
    torch.manual_seed(0)
    model = GPT(preset("tiny", **kw)).cuda()
    ids, tgt = (t.cuda() for t in batch())

    def step(bf16: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            logits, loss = model(ids, tgt, return_logits=False)
        assert logits is None and loss.dtype == torch.float32
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss16, grads16 = step(True)
    loss32, grads32 = step(False)
    assert abs(loss16 - loss32) < 0.05 and torch.isfinite(torch.tensor(loss16))
    for name, g in grads16.items():
        assert g.dtype == torch.float32 and torch.isfinite(g).all(), name
        err = float((g - grads32[name]).norm() / grads32[name].norm().clamp(min=1e-12))
        assert err < 0.05, f"{name}: bf16 grad off fp32 by {err:.3g} (relative norm)"
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits, loss = model(ids, tgt)  # logits kept: bf16, as autocast's matmul gives
    assert logits.dtype == torch.bfloat16 and abs(loss.item() - loss32) < 0.05
    with torch.no_grad():  # a bf16 model without autocast: attention by matmuls, no grad
        low, _ = copy.deepcopy(model).bfloat16()(ids)
        ref, _ = model(ids)
    assert low.dtype == torch.bfloat16 and rel_err(low, ref) <= LOW


def test_bf16_autocast_with_dropout_trains():
    torch.manual_seed(0)
    model = GPT(preset("tiny", dropout=0.1)).cuda().train()
    ids, tgt = (t.cuda() for t in batch())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, loss = model(ids, tgt, return_logits=False)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _loss_grads(fn, x, w):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    loss, logits = fn(x, w)
    (loss * 3).backward()  # an incoming gradient other than 1
    return loss, logits, x.grad, w.grad


@pytest.mark.parametrize("mode", ["fp32", "bf16", "autocast"])
def test_linear_cross_entropy_matches_torch(mode):
    from core.layers import linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(300, 24, generator=g), torch.randn(77, 24, generator=g) * 0.5
    t = torch.randint(0, 77, (300,), generator=g)
    t[::7] = -100
    x, w, t = x.cuda(), w.cuda(), t.cuda()
    if mode == "bf16":
        x, w = x.bfloat16(), w.bfloat16()

    def ref(x, w):  # fp32 autograd on the same (rounded) inputs
        logits = F.linear(x.float(), w.float())
        return F.cross_entropy(logits, t, ignore_index=-100), logits

    def ours(x, w):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "autocast"):
            return linear_cross_entropy(x, w, t, rows=64)

    r_loss, r_logits, r_dx, r_dw = _loss_grads(ref, x, w)
    loss, logits, dx, dw = _loss_grads(ours, x, w)
    tol = TOL if mode == "fp32" else LOW
    assert loss.dtype == torch.float32 and abs(loss.item() - r_loss.item()) <= tol
    assert logits.dtype == (torch.float32 if mode == "fp32" else torch.bfloat16)
    assert (dx.dtype, dw.dtype) == (x.dtype, w.dtype)  # grads reach the inputs in their dtype
    assert rel_err(logits, r_logits) <= tol
    assert rel_err(dx, r_dx) <= tol and rel_err(dw, r_dw) <= tol
    assert (dx[::7] == 0).all()  # ignored rows get no gradient
    with torch.no_grad():  # evaluation: no logits, no gradient buffer, row blocks
        lean, _ = linear_cross_entropy(x, w, t, keep_logits=False)
    assert abs(lean.item() - r_loss.item()) <= tol


@pytest.mark.parametrize("T", [7, 40])
@pytest.mark.parametrize("mode", ["fp32", "bf16", "autocast"])
def test_fused_attention_matches_sdpa(mode, T):
    from core.attention import fused_causal_attention

    B, H, D = 2, 3, 8
    torch.manual_seed(T)
    qkv = torch.randn(B, T, 3 * H * D, device="cuda")
    if mode != "fp32":
        qkv = qkv.bfloat16()  # what a bf16 (or autocast) qkv projection hands over
    qkv.requires_grad_()

    def ref(qkv):  # fp32 SDPA on the same (rounded) inputs
        q, k, v = qkv.float().view(B, T, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        return z.transpose(1, 2).reshape(B, T, H * D)

    want = ref(qkv)
    # "autocast": CUDA's autocast runs softmax in fp32 (CPU's does not), so a kernel that
    # writes the pattern's product into a bf16 buffer must not run under it
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "autocast"):
        got = fused_causal_attention(qkv, H, blocks=2)
    assert got.shape == (B, T, H * D) and got.dtype == qkv.dtype
    gout = torch.randn_like(want)
    (g_want,) = torch.autograd.grad(want, qkv, gout)
    (g_got,) = torch.autograd.grad(got, qkv, gout.to(got.dtype))
    tol = TOL if mode == "fp32" else LOW
    assert rel_err(got, want) <= tol and rel_err(g_got, g_want) <= tol


# -- 3. generation -------------------------------------------------------------------------
def _taught(enc: str) -> GPT:
    """A tiny GPT taught a cycle of 13 tokens (as tests/test_sampling.py) so greedy ids vary."""
    torch.manual_seed(0)
    model = GPT(preset("tiny", pos_encoding=enc))
    cycle = torch.randperm(128, generator=torch.Generator().manual_seed(0))[:13]
    seq = cycle.repeat(6)[None, :33]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = model(seq[:, :-1], seq[:, 1:])[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("enc", ["learned", "rope"])
def test_generate_on_cuda_matches_cpu_with_and_without_cache(enc):
    cpu = _taught(enc)
    gpu = on_cuda(cpu)
    prompt = [int(i) for i in torch.randperm(128, generator=torch.Generator().manual_seed(0))[:10]]
    want = generate(cpu, prompt, 100, temperature=0).ids
    assert len(want) == 110 > cpu.config.context_length and len(set(want[10:])) > 3
    assert generate(gpu, prompt, 100, temperature=0).ids == want
    assert generate(gpu, prompt, 100, temperature=0, use_cache=False).ids == want
    long = list(range(40))  # a prompt longer than the context: cropped alike
    assert generate(gpu, long, 10, temperature=0).ids == generate(cpu, long, 10, temperature=0).ids
    cuda_rng = torch.cuda.get_rng_state()
    kw = dict(temperature=1.0, top_k=20, top_p=0.9)
    a = generate(gpu, prompt, 40, seed=1, **kw)
    assert a.ids == generate(gpu, prompt, 40, seed=1, **kw).ids
    assert a.ids != generate(gpu, prompt, 40, seed=2, **kw).ids
    assert a.ids == generate(cpu, prompt, 40, seed=1, **kw).ids  # draws come from a CPU generator
    assert a.ids == generate(gpu, prompt, 40, seed=1, use_cache=False, **kw).ids
    assert torch.equal(torch.cuda.get_rng_state(), cuda_rng), "the global CUDA RNG was used"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kw", [{}, dict(activation="swiglu", norm="rmsnorm", norm_position="post",
                                         pos_encoding="rope", bias=False, tie_embeddings=False)],
                         ids=["gpt2", "llama"])  # fmt: skip
def test_kv_cache_and_decoder_match_full_forward(kw, dtype):
    from core.kvcache import Decoder

    torch.manual_seed(0)
    model = GPT(preset("tiny", **kw)).eval().cuda().to(dtype)
    ids = torch.randint(0, 128, (2, 32)).cuda()
    tol = TOL if dtype == torch.float32 else 0.05
    with torch.inference_mode():
        full = model(ids)[0].float()  # (B, T, V)
        cache = model.new_cache(batch=2)
        assert cache.kv.is_cuda and cache.kv.dtype == dtype
        got = [model.forward_cached(ids[:, :20], cache)]
        got += [model.forward_cached(ids[:, t : t + 1], cache) for t in range(20, 32)]
        assert rel_err(torch.stack(got, dim=1), full[:, 19:]) <= tol
        dec = Decoder(model)
        assert not dec.numpy and dec.cache.kv.is_cuda
        steps = [dec.prefill(ids[:1, :5])] + [dec.step(int(t)) for t in ids[0, 5:]]
        with pytest.raises(ValueError, match="full"):
            dec.step(1)
    assert rel_err(torch.stack(steps), full[0, 4:]) <= tol


# -- 4. capture ----------------------------------------------------------------------------
def test_capture_on_cuda_returns_cpu_tensors_and_the_forward_logits():
    cfg = preset("tiny", activation="swiglu", pos_encoding="sinusoidal")
    torch.manual_seed(0)
    cpu = GPT(cfg).eval()
    gpu = on_cuda(cpu)
    ids = torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(3))
    before = {k: v.clone() for k, v in gpu.state_dict().items()}
    with torch.no_grad():
        plain, _ = gpu(ids.cuda())
    logits, trace = capture(gpu, ids)
    assert list(trace) == probe_names(cfg)
    for name, t in [("logits", logits), *trace.items()]:
        assert t.device.type == "cpu" and t.dtype == torch.float32 and not t.requires_grad, name
    assert rel_err(logits, plain) <= TOL and torch.equal(trace["logits"], logits)
    _, want = capture(cpu, ids)
    for name, t in want.items():  # scores hold -inf above the diagonal: assert_close matches them
        torch.testing.assert_close(trace[name], t, rtol=TOL, atol=1e-5, msg=name)
    again, _ = capture(gpu, ids.cuda(), names="blocks.*.attn.pattern")  # ids already on the GPU
    assert torch.equal(again, logits)
    assert all(torch.equal(v, before[k]) for k, v in gpu.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in gpu.modules())
    low, trace = capture(copy.deepcopy(gpu).bfloat16(), ids, names="blocks.0.attn.*")
    assert low.dtype == torch.float32 and low.device.type == "cpu" and rel_err(low, plain) <= LOW
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in trace.values())


# -- 5. Trainer and checkpoints across devices ---------------------------------------------
def _trainer(cfg, run_dir=None, seed=0, **model_kw):
    from core.trainer import Trainer

    tok, tr, va = trainutil.tiny_data()
    events = []
    model = trainutil.tiny_model(tok.vocab_size, seed, **model_kw)
    trainer = Trainer(
        model, tr, va, cfg, tokenizer=tok, run_dir=run_dir, subscribers=[events.append]
    )
    return trainer, events


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_trainer_on_cuda_and_its_checkpoint_on_cpu(tmp_path, dtype):
    from core.train_state import resolve_device

    assert resolve_device("auto").type == "cuda"
    cfg = trainutil.tiny_cfg(device="cuda", dtype=dtype, max_steps=6, lr=1e-2, eval_every=3,
                             ckpt_every=3, timelapse_steps=[0, 6])  # fmt: skip
    trainer, events = _trainer(cfg, tmp_path / "run")
    assert trainer.device.type == "cuda" and all(p.is_cuda for p in trainer.model.parameters())
    assert trainer.run().status == "done"
    losses = trainutil.losses(events)
    assert len(losses) == 6 and torch.isfinite(torch.tensor(losses)).all()
    assert losses[-1] < losses[0]
    kinds = {e.kind for e in events}
    assert {"eval", "sample", "checkpoint", "timelapse"} <= kinds, kinds
    ck = load_checkpoint(tmp_path / "run")  # LATEST, onto the CPU
    assert ck.meta["step"] == 6 and not any(p.is_cuda for p in ck.model.parameters())
    trained = {k: v.cpu() for k, v in trainer.model.state_dict().items()}
    assert all(torch.equal(v, trained[k]) for k, v in ck.model.state_dict().items())
    if dtype == "fp32":  # the same first steps as a CPU trainer (same data, same init)
        cpu_trainer, cpu_events = _trainer(trainutil.tiny_cfg(max_steps=3, lr=1e-2, eval_every=0))
        cpu_trainer.run()
        assert trainutil.losses(cpu_events) == pytest.approx(losses[:3], rel=1e-3)


def test_resume_on_cuda_continues_the_same_curve(tmp_path):
    """As tests/test_train_resume.py, on the GPU: dropout draws from the CUDA RNG, saved too."""
    cfg = trainutil.tiny_cfg(device="cuda", max_steps=6, ckpt_every=3, eval_every=2)
    full, full_events = _trainer(cfg, tmp_path / "a", dropout=0.1)
    full.run()
    first, _ = _trainer(cfg, tmp_path / "b", dropout=0.1)
    first.subscribe(lambda e: first.stop() if e.kind == "step" and e.step == 5 else None)
    assert first.run().status == "stopped"
    (tmp_path / "b" / "ckpt" / "LATEST").write_text("step_000003\n")
    second, events = _trainer(cfg, tmp_path / "b", seed=99, dropout=0.1)
    second.resume(tmp_path / "b")
    assert second.step == 3 and second.run().status == "done"
    assert trainutil.losses(events) == pytest.approx(trainutil.losses(full_events)[3:], rel=1e-6)


def test_cpu_checkpoint_resumes_on_cuda(tmp_path):
    """Optimizer state saved on the CPU moves to the GPU (fused AdamW wants it there)."""
    base = dict(max_steps=4, ckpt_every=2, eval_every=0)
    cpu, cpu_events = _trainer(trainutil.tiny_cfg(**base), tmp_path / "cpu")
    cpu.run()
    gpu, events = _trainer(trainutil.tiny_cfg(device="cuda", **base), tmp_path / "gpu", seed=99)
    gpu.resume(tmp_path / "cpu" / "ckpt" / "step_000002")
    assert gpu.step == 2 and gpu.run().status == "done"
    assert all(v.is_cuda for s in gpu.optimizer.state.values() for v in s.values())
    assert trainutil.losses(events) == pytest.approx(trainutil.losses(cpu_events)[2:], rel=1e-3)


def test_checkpoint_round_trips_across_devices(tmp_path):
    torch.manual_seed(0)
    gpu = GPT(preset("tiny", pos_encoding="rope", tie_embeddings=False)).eval().cuda()
    save_checkpoint(
        tmp_path / "ck", gpu, meta={"step": 1}, extra_tensors={"m": torch.ones(3).cuda()}
    )
    ids = torch.randint(0, 128, (1, 16))
    with torch.no_grad():
        want = gpu(ids.cuda())[0]
    for where in ("cpu", "cuda"):
        ck = load_checkpoint(tmp_path / "ck", map_location=where, load_extra=True)
        assert {p.device.type for p in ck.model.parameters()} == {where}
        assert ck.extra_tensors["m"].device.type == where
        state = gpu.state_dict()
        assert all(torch.equal(v.cpu(), state[k].cpu()) for k, v in ck.model.state_dict().items())
        with torch.no_grad():
            assert rel_err(ck.model(ids.to(where))[0], want) <= TOL
    torch.save({"config": gpu.config.to_dict(), "model": gpu.state_dict()}, tmp_path / "m.pt")
    for where in ("cpu", "cuda"):  # a .pt of CUDA tensors, read weights-only, mapped
        ck = load_checkpoint(tmp_path / "m.pt", map_location=where)
        assert {p.device.type for p in ck.model.parameters()} == {where}


# -- 6. Hugging Face GPT-2 ------------------------------------------------------------------
def test_hf_gpt2_import_and_export_on_cuda(tmp_path):
    from core.hf_gpt2 import export_hf_gpt2, import_hf_gpt2
    from tests.test_hf_parity import random_hf, transformers  # skips without transformers

    ref = random_hf(tie=False, n_inner=48)
    ref.save_pretrained(tmp_path / "hf")
    ref = ref.cuda()
    ours = import_hf_gpt2(tmp_path / "hf").cuda()
    ids = torch.randint(0, 96, (2, 24), generator=torch.Generator().manual_seed(1)).cuda()
    with torch.no_grad():
        theirs = ref(ids).logits
        assert (ours(ids)[0] - theirs).abs().max() <= 1e-4
    export_hf_gpt2(ours, tmp_path / "out")  # from GPU weights
    back = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").cuda().eval()
    with torch.no_grad():
        assert (back(ids).logits - theirs).abs().max() <= 1e-4
