"""core/ on a CUDA GPU against the CPU, part 2: KV-cache generation and sampling, capture,
the Trainer and checkpoints across devices, and Hugging Face GPT-2 parity (part 1:
test_cuda.py). Every test skips without CUDA; fp32 runs with TF32 off (tests/cudautil.py).
"""

import copy

import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.config import preset
from core.model import GPT
from core.probes import capture, probe_names
from core.sampling import generate
from tests import trainutil
from tests.cudautil import (
    LOW,
    TOL,
    needs_cuda,
    on_cuda,
    rel_err,
)

pytestmark = [needs_cuda, pytest.mark.usefixtures("no_tf32")]  # fp32 without TF32


# -- 3. generation -------------------------------------------------------------------------
@pytest.mark.parametrize("enc", ["learned", "rope"])
def test_generate_on_cuda_matches_cpu_with_and_without_cache(enc):
    cpu, cycle = trainutil.cycle_model(enc)
    gpu = on_cuda(cpu)
    prompt = cycle[:10].tolist()
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
