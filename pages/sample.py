"""Sample: what temperature, top-k and top-p really do to the next-token distribution.

The distribution for the shared prompt at every stage of the pipeline on one token axis; a
generation streamed token by token, coloured by the probability each token was drawn with;
settings side by side on one seed; diversity across N samples as temperature changes.
Reference: Holtzman et al. 2020 (nucleus sampling); Raschka, ch. 5.3.
"""

from __future__ import annotations

import random

import streamlit as st

from core.sampling import SamplingError, validate_sampling
from explorer import compute, loaders, state, widgets
from explorer.plots import sampling as splots

TEMPS = (0.2, 0.5, 0.8, 1.0, 1.3, 1.6, 2.0)

st.title("Sample")
st.caption(
    "The model gives a probability to every token in its vocabulary. Sampling settings reshape "
    "that distribution before one token is drawn. Move the sliders and watch what each removes."
)

loaded = state.require_model()
tok, cfg = loaded.tokenizer, loaded.config
V, T = cfg.vocab_size, cfg.context_length
labels = loaders.vocab_labels(loaded.key, tok, V)  # V: the model's ids, a padded vocab too

prompt, notes = widgets.inspect_text(state.shared_prompt(), 100_000)
widgets.show_notices(notes)
ids = compute.encode(tok, prompt)
if not ids:
    if tok.eot_id is None:
        st.info("The shared prompt (sidebar) is empty. Type a prompt to sample from.")
        st.stop()
    ids = [tok.eot_id]
    st.info("The shared prompt is empty: sampling from the end-of-text token, i.e. a fresh story.")
ids, cropped = compute.crop_prompt(ids, T)
if cropped:
    st.warning(
        f"The prompt is {len(ids) + cropped:,} tokens but this model sees at most {T}: "
        f"the first {cropped:,} tokens were cropped, the last {T} are used."
    )
ids_key = tuple(ids)

# --- controls ------------------------------------------------------------------------------
state.from_url("smp_temp", 1.0, parse=float, ok=lambda v: 0.0 <= v <= 2.0)
state.from_url("smp_topk", 0, parse=int, ok=lambda v: 0 <= v <= min(V, 200))
state.from_url("smp_topp", 1.0, parse=float, ok=lambda v: 0.05 <= v <= 1.0)
state.from_url("smp_seed", 0, parse=int, ok=lambda v: 0 <= v < 2**31)
state.from_url("smp_lock", True, parse=state.parse_bool)
state.from_url("smp_len", 40, parse=int, ok=lambda v: 1 <= v <= 200)
# a model with a smaller vocabulary than the last one: clip settings that no longer fit
st.session_state["smp_topk"] = min(st.session_state["smp_topk"], min(V, 200))
for i in range(4):
    if st.session_state.get(f"smp_c{i}_k", 0) > V:
        st.session_state[f"smp_c{i}_k"] = V
c1, c2, c3 = st.columns(3)
temperature = c1.slider("Temperature (0 = greedy)", 0.0, 2.0, step=0.05, key="smp_temp")
top_k = c2.slider("Top-k (0 = off)", 0, min(V, 200), key="smp_topk")
top_p = c3.slider("Top-p (1 = off)", 0.05, 1.0, step=0.05, key="smp_topp")
for key, value, default in (
    ("smp_temp", temperature, 1.0),
    ("smp_topk", top_k, 0),
    ("smp_topp", top_p, 1.0),
):
    state.to_url(key, value, default)
k_arg = top_k or None
p_arg = None if top_p >= 1.0 else top_p
try:
    validate_sampling(temperature, k_arg, p_arg, V)
except SamplingError as exc:
    st.error(f"These settings cannot be sampled: {exc}")
    st.stop()

# --- the distribution at every stage -------------------------------------------------------
st.subheader("Next-token distribution, stage by stage")
stages = loaders.sampling_stages(loaded.key, loaded.model, ids_key, temperature, k_arg, p_arg)
state.from_url("smp_topn", 20, parse=int, ok=lambda v: 5 <= v <= 40)
state.from_url("smp_log", False, parse=state.parse_bool)
a1, a2 = st.columns([3, 1])
top_n = a1.slider("Tokens on the axis", 5, 40, key="smp_topn")
log_axis = a2.toggle(
    "Log scale", key="smp_log", help="Shows small probabilities; removed tokens vanish."
)
state.to_url("smp_topn", top_n, 20)
state.to_url("smp_log", log_axis, False)
st.plotly_chart(
    splots.stage_bars(
        {s: getattr(stages, s) for s in ("raw", "temperature", "top_k", "top_p", "final")},
        labels,
        top_n,
        log=log_axis,
    ),
    key="smp_stage_chart",
)
summary = compute.stage_summary(stages)
st.caption(
    f"Context: {len(ids)} tokens. Top-k keeps {summary['kept_k']:,} of {V:,} tokens; top-p then "
    f"keeps {summary['kept_p']:,}. Bars that drop to zero were removed by that stage."
)
# model text goes through st.text (literal), never markdown: a token could hold $...$ or :emoji:
st.text(f"Most likely next token: {labels[summary['best']]!r} ({summary['best_p']:.1%})")
if temperature == 0:
    st.caption("Temperature 0 is greedy decoding: all probability on the single most likely token.")

# --- generate ------------------------------------------------------------------------------
st.subheader("Generate")
g1, g2, g3 = st.columns([1, 1, 1])
max_new = g1.slider("New tokens", 1, 200, key="smp_len")
lock = g2.checkbox(
    "Lock the seed", key="smp_lock", help="Locked: the same seed gives the same text."
)
seed = g3.number_input("Seed", 0, 2**31 - 1, step=1, key="smp_seed", disabled=not lock)
for key, value, default in (
    ("smp_len", max_new, 40),
    ("smp_seed", seed, 0),
    ("smp_lock", lock, True),
):
    state.to_url(key, value, default)
params = (loaded.key, ids_key, max_new, temperature, k_arg, p_arg)
if st.button("Generate", type="primary", key="smp_go"):
    run_seed = int(seed) if lock else random.randrange(2**31)
    out = st.empty()
    steps = []
    prompt_labels = [labels[i] for i in ids]
    try:
        for step in compute.stream(loaded.model, ids, max_new, temperature, k_arg, p_arg, run_seed):
            steps.append(step)
            if len(steps) % 2 == 0 or len(steps) == max_new:
                with out.container():
                    widgets.show(widgets.generation_html(prompt_labels, steps, labels))
    except SamplingError as exc:
        st.error(str(exc))
    out.empty()
    st.session_state["smp_last"] = (params, run_seed, steps)
last = st.session_state.get("smp_last")
if last and last[0] == params:
    _, run_seed, steps = last
    widgets.show(widgets.generation_html([labels[i] for i in ids], steps, labels))
    mean_p = sum(s.prob for s in steps) / max(len(steps), 1)
    st.caption(
        f"Seed {run_seed} · {len(steps)} tokens · mean probability of the drawn token {mean_p:.1%}. "
        "Darker = more likely; hover a token for the alternatives."
    )
elif last:
    st.caption("Settings changed since the last generation: press Generate.")
else:
    st.caption("Press Generate to stream a continuation of the shared prompt.")

# --- side by side --------------------------------------------------------------------------
st.subheader("Settings side by side, same seed")
n_cfg = st.radio("Configurations", [2, 3, 4], index=2, horizontal=True, key="smp_ncmp")
presets = [(0.0, 0, 1.0), (0.7, 40, 1.0), (1.0, 0, 0.9), (1.5, 0, 1.0)]
cols = st.columns(n_cfg)
configs = []
for i, col in enumerate(cols):
    t0, k0, p0 = presets[i]
    with col:
        t = st.number_input("temperature", 0.0, 2.0, t0, 0.1, key=f"smp_c{i}_t")
        k = st.number_input("top-k (0 = off)", 0, V, min(k0, V), 1, key=f"smp_c{i}_k")
        p = st.number_input("top-p", 0.05, 1.0, p0, 0.05, key=f"smp_c{i}_p")
        configs.append((float(t), int(k) or None, None if p >= 1.0 else float(p)))
if st.button("Compare", key="smp_cmp_go"):
    st.session_state["smp_cmp_on"] = True
if st.session_state.get("smp_cmp_on"):
    cmp_seed = int(seed)
    for col, (t, k, p) in zip(cols, configs):
        with col:
            try:
                g = loaders.generate(
                    loaded.key, loaded.model, ids_key, min(max_new, 60), t, k, p, cmp_seed
                )
                widgets.show(widgets.generation_html([], g.steps, labels))
                st.caption(f"T={t:g} · top-k={k or 'off'} · top-p={p or 'off'} · seed {cmp_seed}")
            except SamplingError as exc:
                st.error(str(exc))

# --- diversity -----------------------------------------------------------------------------
st.subheader("Diversity vs temperature")
st.caption(
    "N samples per temperature (seeds seed … seed+N−1). distinct-n = share of n-grams that are "
    "different across the samples (higher = more varied); mean log-prob = how likely the model "
    "itself (at T=1) finds the samples (higher = safer)."
)
d1, d2 = st.columns(2)
n_samples = d1.slider("Samples per temperature", 2, 16, 6, key="smp_div_n")
div_len = d2.slider("Tokens per sample", 8, 64, 24, key="smp_div_len")
if st.button("Measure diversity", key="smp_div_go"):
    st.session_state["smp_div_on"] = True
if st.session_state.get("smp_div_on"):
    with st.spinner(f"Sampling {n_samples * len(TEMPS)} continuations…"):
        rows = loaders.diversity(
            loaded.key, loaded.model, ids_key, TEMPS, n_samples, div_len, k_arg, p_arg, int(seed)
        )
    st.plotly_chart(splots.diversity_figure(rows), key="smp_div_chart")
    st.dataframe(
        [
            {
                "temperature": r["temperature"],
                "distinct-1": round(r["distinct_1"], 3),
                "distinct-2": round(r["distinct_2"], 3),
                "mean log-prob": round(r["mean_logprob"], 3),
            }
            for r in rows
        ],
        hide_index=True,
    )
