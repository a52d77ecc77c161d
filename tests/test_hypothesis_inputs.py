"""Hypothesis over what a user can type or send: text, sampling settings, configs.

Inside the widgets' ranges everything works (valid distributions, ids inside the vocabulary);
outside them, through the core API, a value is refused with a ValueError (SamplingError,
ConfigError, TrainConfigError, TokenizerError) whose message names the parameter: never another
exception type, a crash or a hang. Example counts are modest so the suite stays fast.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.config import ConfigError, ModelConfig
from core.sampling import SamplingError, generate, sampling_stages, validate_sampling
from core.train_config import TrainConfig, TrainConfigError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# any code point, lone surrogates and NUL included (st.text() leaves surrogates out by default)
ANY_CHAR = st.characters(codec=None, exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=300) | st.sampled_from(
    ["", "\x00" * 50, "\ud800\udfff\ud800", "<|endoftext|>" * 3, "\r\n\t", "🙂" * 40]
)


@functools.cache
def tokenizers():
    from core.corpora import tinytales
    from core.tokenizer import CharTokenizer, SimpleWordTokenizer, train_bpe

    text = tinytales.generate(5000, seed=0)
    return {
        "bpe": train_bpe(text, 280),
        "char": CharTokenizer(text),
        "word": SimpleWordTokenizer(text),
    }


@functools.cache
def tiny():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tok = tokenizers()["bpe"]
    cfg = ModelConfig(vocab_size=tok.vocab_size, context_length=16, d_model=16, n_layers=1,
                      n_heads=2)  # fmt: skip
    from core.model import GPT

    return GPT(cfg).eval(), tok


# ---------------------------------------------------------------- tokenizer


@FAST
@given(text=ANY_TEXT, name=st.sampled_from(["bpe", "char", "word"]))
def test_any_text_encodes_to_ids_in_the_vocabulary(text, name):
    tok = tokenizers()[name]
    ids = tok.encode(text)
    assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids)
    out = tok.decode(ids)
    assert isinstance(out, str)
    for i in ids[:20]:
        assert isinstance(tok.token_label(i), str)
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    if name == "bpe" and not has_surrogate:
        assert out == text  # byte-level BPE round-trips every valid string, NULs included


@settings(max_examples=15, deadline=None)
@given(bad=st.one_of(st.integers(max_value=-1), st.integers(min_value=280, max_value=2**70)))
def test_ids_outside_the_vocabulary_are_refused_by_name(bad):
    tok = tokenizers()["bpe"]
    for fn in (lambda: tok.decode([1, bad]), lambda: tok.token_label(bad)):
        with pytest.raises(ValueError, match="token id"):
            fn()


@pytest.mark.slow
def test_a_huge_text_encodes():
    tok = tokenizers()["bpe"]
    text = ("Once upon a time \x00 🙂 " * 60_000)[:1_500_000]  # 1.5 M characters
    ids = tok.encode(text)
    assert len(ids) > 100_000 and tok.decode(ids) == text


# ---------------------------------------------------------------- sampling: the widgets' ranges

# pages/sample.py: temperature 0..2 step 0.05, top-k 0 (off)..min(V, 200), top-p 0.05..1 step
# 0.05 (1 = off), new tokens 1..200, seed 0..2**31-1
TEMPS = st.integers(0, 40).map(lambda i: i * 0.05)
TOPPS = st.integers(1, 20).map(lambda i: i * 0.05)


@FAST
@given(t=TEMPS, k=st.integers(0, 200), p=TOPPS, seed=st.integers(0, 2**31 - 1))
def test_every_slider_combination_gives_a_distribution(t, k, p, seed):
    model, tok = tiny()
    V = model.config.vocab_size
    top_k = None if k == 0 else min(k, V)
    top_p = None if p >= 1.0 else p
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(V, generator=g, dtype=torch.float64) * 5
    s = sampling_stages(logits.numpy(), temperature=t, top_k=top_k, top_p=top_p)
    assert np.isfinite(s.final).all() and (s.final >= 0).all()
    assert math.isclose(s.final.sum(), 1.0, rel_tol=1e-9)
    assert s.kept_top_k.sum() >= 1 and s.kept_top_p.sum() >= 1
    assert (s.final[~(s.kept_top_k & s.kept_top_p)] == 0).all()


@settings(max_examples=25, deadline=None)
@given(
    prompt=ANY_TEXT,
    t=TEMPS,
    k=st.integers(0, 200),
    p=TOPPS,
    n=st.integers(1, 24),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_prompt_and_sliders_generate(prompt, t, k, p, n, seed):
    from explorer.compute import crop_prompt

    model, tok = tiny()
    ids = tok.encode(prompt) or [tok.eot_id]  # the page asks for a prompt when it is empty
    ids, _ = crop_prompt(ids, model.config.context_length)
    kw = dict(temperature=t, top_k=None if k == 0 else min(k, 280), top_p=None if p >= 1 else p)
    a = generate(model, ids, n, seed=seed, **kw)
    b = generate(model, ids, n, seed=seed, **kw)
    assert a.ids == b.ids and len(a.new_ids) == n
    assert all(0 <= i < model.config.vocab_size for i in a.new_ids)
    assert isinstance(tok.decode(a.new_ids), str)


# ---------------------------------------------------------------- sampling: outside, via the API

NOT_NUMBERS = st.sampled_from(["0.5", None, [1], {}, True, b"1", object()])


@FAST
@given(
    which=st.sampled_from(["temperature", "top_k", "top_p"]),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**40), 2**40),
        NOT_NUMBERS,
    ),
)
def test_out_of_range_sampling_is_refused_by_name(which, value):
    V = 280
    kw = {"temperature": 1.0, "top_k": None, "top_p": None, which: value}
    ok = {
        "temperature": lambda v: (
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        ),
        "top_k": lambda v: v is None or (type(v) is int and 1 <= v <= V),
        "top_p": lambda v: (
            v is None or (isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1)
        ),
    }[which](value)
    if ok:
        validate_sampling(kw["temperature"], kw["top_k"], kw["top_p"], V)
        return
    with pytest.raises(SamplingError, match=which):
        validate_sampling(kw["temperature"], kw["top_k"], kw["top_p"], V)
    model, _ = tiny()
    with pytest.raises(SamplingError, match=which):  # generate() checks before any work
        generate(model, [1, 2], 2, **kw)


@settings(max_examples=20, deadline=None)
@given(n=st.one_of(st.integers(max_value=-1), st.floats(), NOT_NUMBERS))
def test_bad_token_counts_and_prompts_are_refused(n):
    model, _ = tiny()
    assume(not (type(n) is int and n >= 0))
    with pytest.raises(SamplingError, match="max_new_tokens"):
        generate(model, [1, 2], n)
    with pytest.raises(SamplingError, match="outside the vocabulary|empty"):
        generate(model, [10**6] if n else [], 1)


# ---------------------------------------------------------------- configs

MODEL_FIELDS = {
    "vocab_size": st.integers(-3, 400) | NOT_NUMBERS,
    "context_length": st.integers(-3, 40),
    "d_model": st.integers(-3, 40) | st.floats(-2, 40),
    "n_layers": st.integers(-1, 3),
    "n_heads": st.integers(-1, 8),
    "d_ff": st.none() | st.integers(-2, 64),
    "dropout": st.floats(allow_nan=True, allow_infinity=True) | NOT_NUMBERS,
    "activation": st.sampled_from(["gelu", "relu", "swiglu", "tanh", "", "GELU"]),
    "norm": st.sampled_from(["layernorm", "rmsnorm", "batchnorm"]),
    "norm_position": st.sampled_from(["pre", "post", "middle"]),
    "pos_encoding": st.sampled_from(["learned", "sinusoidal", "rope", "none", "alibi"]),
    "bias": st.booleans() | st.sampled_from([0, 1, "yes"]),
    "tie_embeddings": st.booleans(),
    "init": st.sampled_from(["gpt2", "xavier", "kaiming"]),
    "norm_eps": st.floats(allow_nan=True, allow_infinity=True),
    "rope_base": st.floats(allow_nan=True, allow_infinity=True),
}


@settings(max_examples=80, deadline=None)
@given(fields=st.fixed_dictionaries({}, optional=MODEL_FIELDS))
def test_model_config_is_built_or_refused_by_field_name(fields):
    try:
        cfg = ModelConfig.from_dict(fields)
    except ConfigError as err:
        assert err.field in MODEL_FIELDS and str(err).startswith(err.field)
        return
    from core.model import GPT

    torch.manual_seed(0)
    model = GPT(cfg)
    T = min(cfg.context_length, 4)
    logits, _ = model(torch.zeros(1, T, dtype=torch.long))
    assert logits.shape == (1, T, cfg.vocab_size) and torch.isfinite(logits).all()


TRAIN_FIELDS = {
    "max_steps": st.integers(-2, 10**6) | NOT_NUMBERS,
    "batch_size": st.integers(-2, 64),
    "micro_batch_size": st.none() | st.integers(-2, 64),
    "seq_len": st.none() | st.integers(-2, 64),
    "lr": st.floats(allow_nan=True, allow_infinity=True) | NOT_NUMBERS,
    "warmup_steps": st.integers(-2, 100),
    "min_lr_ratio": st.floats(allow_nan=True),
    "grad_clip": st.floats(allow_nan=True, allow_infinity=True),
    "weight_decay": st.floats(allow_nan=True, allow_infinity=True),
    "eval_every": st.integers(-2, 100),
    "keep_checkpoints": st.integers(-1, 5),
    "val_fraction": st.floats(allow_nan=True),
    "dtype": st.sampled_from(["fp32", "bf16", "fp16"]),
    "device": st.sampled_from(["cpu", "auto", "tpu"]),
    "timelapse_steps": st.lists(st.integers(-5, 2000), max_size=4),
}


@settings(max_examples=80, deadline=None)
@given(fields=st.fixed_dictionaries({}, optional=TRAIN_FIELDS))
def test_train_config_is_built_or_refused_by_field_name(fields):
    try:
        tc = TrainConfig.from_dict(fields)
        tc.grad_accum_steps(1)
    except TrainConfigError as err:
        named = [f for f in TRAIN_FIELDS if str(err).startswith(f)]
        assert named, f"message does not start with a field name: {err}"
        return
    for name in ("lr", "grad_clip", "weight_decay", "min_lr_ratio", "val_fraction"):
        assert math.isfinite(getattr(tc, name)), f"{name}={getattr(tc, name)} was accepted"
    assert type(tc.max_steps) is int and tc.max_steps >= 1


@settings(max_examples=40, deadline=None)
@given(model=st.fixed_dictionaries({}, optional=MODEL_FIELDS),
       train=st.fixed_dictionaries({}, optional=TRAIN_FIELDS))  # fmt: skip
def test_the_train_form_never_raises_and_keys_messages_by_field(model, train):
    from explorer.trainspec import TrainSpec, validate

    errors = validate(TrainSpec(model=model, train=train, corpus_bytes=20_000, vocab_size=300))
    assert isinstance(errors, dict)
    for key, msg in errors.items():
        assert isinstance(msg, str) and msg
        assert key == "" or key in MODEL_FIELDS or key in TRAIN_FIELDS or key == "train", key
