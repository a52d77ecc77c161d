"""Architecture: the GPT drawn from its config, with what it costs.

Parameters per component, memory to train it (weights, gradients, AdamW state, activations)
and FLOPs per token, all from core.stats (pure functions of the config: nothing is built), so
every slider move redraws at once. The math of each block, and the main variants side by side.
Reference: Raschka, ch. 4; Kaplan et al. 2020 (FLOPs ≈ 2N per token); Xiong et al. 2020 (pre-LN);
Shazeer 2020 (SwiGLU); Su et al. 2021 (RoPE).
"""

from __future__ import annotations

import streamlit as st

from core import stats
from core.config import ACTIVATIONS, NORM_POSITIONS, NORMS, POS_ENCODINGS, ConfigError, ModelConfig
from explorer import state
from explorer.plots import arch as aplots
from explorer.plots.common import fmt_bytes, fmt_count

WIDTHS = [32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1280, 1600, 2048]
HEADS = [1, 2, 3, 4, 6, 8, 12, 16, 20, 25, 32]
CONTEXTS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
VOCABS = [128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 50257, 100277]

st.title("Architecture")
st.caption(
    "The model as a stack of blocks. Change its shape and watch parameters, memory and compute "
    "move. Starts from the model chosen in the sidebar."
)
loaded = state.require_model()
base = loaded.config


# the loaded model's own sizes are always stops, so "reset" reproduces it exactly
WIDTHS = sorted({*WIDTHS, base.d_model})
HEADS = sorted({*HEADS, base.n_heads})
CONTEXTS = sorted({*CONTEXTS, base.context_length})
VOCABS = sorted({*VOCABS, base.vocab_size})

FIELDS = {  # session key -> (default from the loaded model, parser, allowed)
    "arch_L": (min(base.n_layers, 48), int, range(1, 49)),
    "arch_C": (base.d_model, int, WIDTHS),
    "arch_H": (base.n_heads, int, HEADS),
    "arch_T": (base.context_length, int, CONTEXTS),
    "arch_V": (base.vocab_size, int, VOCABS),
    "arch_act": (base.activation, str, ACTIVATIONS),
    "arch_norm": (base.norm, str, NORMS),
    "arch_npos": (base.norm_position, str, NORM_POSITIONS),
    "arch_pos": (base.pos_encoding, str, POS_ENCODINGS),
    "arch_tie": (base.tie_embeddings, state.parse_bool, (True, False)),
    "arch_bias": (base.bias, state.parse_bool, (True, False)),
    "arch_B": (8, int, range(1, 129)),
    "arch_dtype": ("fp32", str, ("fp32", "bf16")),
}
for key, (default, parse, allowed) in FIELDS.items():
    state.from_url(key, default, parse=parse, ok=lambda v, a=allowed: v in a)


def reset():
    for key, (default, _, _) in FIELDS.items():
        st.session_state[key] = default


if st.session_state.get("arch_base") != loaded.key:  # another model was picked: start from it
    if "arch_base" in st.session_state:
        reset()
    st.session_state["arch_base"] = loaded.key

c1, c2, c3, c4 = st.columns(4)
L = c1.slider("Layers L", 1, 48, key="arch_L")
C = c2.select_slider("Width C (d_model)", WIDTHS, key="arch_C")
H = c3.select_slider("Heads H", HEADS, key="arch_H")
T = c4.select_slider("Context T", CONTEXTS, key="arch_T")
c5, c6, c7, c8 = st.columns(4)
V = c5.select_slider("Vocabulary V", VOCABS, key="arch_V")
act = c6.selectbox("Activation", ACTIVATIONS, key="arch_act")
norm = c7.selectbox("Norm", NORMS, key="arch_norm")
npos = c8.selectbox("Norm position", NORM_POSITIONS, key="arch_npos")
c9, c10, c11, c12 = st.columns(4)
pos = c9.selectbox("Positions", POS_ENCODINGS, key="arch_pos")
tie = c10.toggle("Tie LM head to embedding", key="arch_tie")
bias = c11.toggle("Biases", key="arch_bias")
c12.button("Reset to the current model", on_click=reset, key="arch_reset")
for key, (default, _, _) in FIELDS.items():
    state.to_url(key, st.session_state[key], default)

try:
    cfg = ModelConfig(
        vocab_size=V, context_length=T, d_model=C, n_layers=L, n_heads=H, activation=act,
        norm=norm, norm_position=npos, pos_encoding=pos, tie_embeddings=tie, bias=bias,
    )  # fmt: skip
except ConfigError as exc:
    st.error(f"This combination is not a valid model — {exc}. Change {exc.field} to continue.")
    st.stop()

st.caption(f"Head dim D = C / H = {cfg.head_dim} · feed-forward width F = {cfg.ff_dim}")
m1, m2, m3, m4 = st.columns(4)
b1, b2 = st.columns(2)
batch = b1.slider("Batch B (for memory)", 1, 128, key="arch_B")
dtype = b2.radio("Training precision", ["fp32", "bf16"], horizontal=True, key="arch_dtype")
counts = stats.param_counts(cfg)
flops = stats.flops_per_token(cfg, T)
mem = stats.memory_estimate(cfg, batch, T, dtype=dtype)
total_flops = flops["forward"]
m1.metric("parameters", fmt_count(counts["total"]))
m2.metric("forward FLOPs / token", fmt_count(total_flops))
m3.metric("training memory", fmt_bytes(mem["total"]))
m4.metric("weights on disk (fp32)", fmt_bytes(4 * counts["total"]))

left, right = st.columns([3, 2])
with left:
    st.plotly_chart(
        aplots.architecture_diagram(cfg, aplots.count_labels(counts)), key="arch_diagram"
    )
with right:
    st.plotly_chart(aplots.param_breakdown(counts), key="arch_params")
    st.plotly_chart(aplots.memory_breakdown(mem), key="arch_memory")
    st.caption(
        f"Memory for one training step at B={batch}, T={T}, {dtype}: AdamW keeps two extra "
        "numbers per parameter; activations grow with B·T·L·C (and B·H·T² for attention)."
    )
if cfg.pos_encoding == "none":
    st.info(
        "Without position information the model can only tell positions apart through the causal mask."
    )

st.subheader("The math of each block")
tabs = st.tabs(["Embedding", "Attention", "Feed-forward", "Norm", "Block", "Output"])
with tabs[0]:
    st.latex(r"x_t = W_E[\,\text{id}_t\,] + p_t,\qquad W_E \in \mathbb{R}^{V\times C}")
    st.markdown(
        {
            "learned": "$p_t$ is row $t$ of a learned table $W_P \\in \\mathbb{R}^{T\\times C}$.",
            "sinusoidal": "$p_{t,2i} = \\sin(t/10000^{2i/C})$, $p_{t,2i+1} = \\cos(t/10000^{2i/C})$: fixed, no parameters.",
            "rope": "No $p_t$ is added: RoPE rotates each query and key pair of dimensions by an angle proportional to $t$.",
            "none": "$p_t = 0$: the causal mask is the only source of order.",
        }[cfg.pos_encoding]
    )
with tabs[1]:
    st.latex(r"q = xW_Q,\; k = xW_K,\; v = xW_V \quad (B, H, T, D)")
    st.latex(
        r"\text{head}_h = \operatorname{softmax}\!\Big(\frac{q_h k_h^\top}{\sqrt{D}} + M\Big)\, v_h,\qquad M_{ij} = \begin{cases}0 & j \le i\\ -\infty & j > i\end{cases}"
    )
    st.latex(r"\text{attn}(x) = [\text{head}_1;\dots;\text{head}_H]\, W_O")
with tabs[2]:
    st.latex(
        {
            "gelu": r"\text{mlp}(x) = \operatorname{GELU}(xW_1 + b_1)\,W_2 + b_2,\quad W_1 \in \mathbb{R}^{C\times F}",
            "relu": r"\text{mlp}(x) = \max(0,\, xW_1 + b_1)\,W_2 + b_2",
            "swiglu": r"\text{mlp}(x) = \big(\operatorname{SiLU}(xW_1) \odot xW_3\big)\,W_2",
        }[cfg.activation]
    )
with tabs[3]:
    st.latex(
        r"\operatorname{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta"
        if cfg.norm == "layernorm"
        else r"\operatorname{RMSNorm}(x) = \gamma \odot \frac{x}{\sqrt{\tfrac{1}{C}\sum_i x_i^2 + \epsilon}}"
    )
with tabs[4]:
    if cfg.norm_position == "pre":
        st.latex(
            r"x \leftarrow x + \text{attn}(\operatorname{N}_1(x)),\qquad x \leftarrow x + \text{mlp}(\operatorname{N}_2(x))"
        )
    else:
        st.latex(
            r"x \leftarrow \operatorname{N}_1(x + \text{attn}(x)),\qquad x \leftarrow \operatorname{N}_2(x + \text{mlp}(x))"
        )
with tabs[5]:
    st.latex(
        r"\text{logits} = \operatorname{N}_f(x)\, W_U,\quad W_U = W_E^\top \text{ (tied)},\quad p = \operatorname{softmax}(\text{logits})"
    )

st.subheader("Variants side by side")
VARIANTS = [
    ("Norm position", "norm_position", {
        "pre": "Pre-LN normalises the input of each sub-layer; the residual path stays clean, so deep stacks train stably without long warm-up (GPT-2 onwards).",
        "post": "Post-LN (the original Transformer) normalises after the residual add; gradients near the input shrink with depth, so it needs careful warm-up.",
    }),
    ("Activation", "activation", {
        "gelu": "GELU is a smooth ReLU (GPT-2); two matrices of C×4C.",
        "relu": "ReLU is the cheapest and zeroes negative inputs outright, which can leave neurons dead.",
        "swiglu": "SwiGLU gates one projection with another (LLaMA); three matrices, so F shrinks to ≈8/3·C to keep the parameter count, and it usually trains a little better.",
    }),
    ("Positions", "pos_encoding", {
        "learned": "Learned: a T×C table, simple and flexible, but the model cannot go past the T it was trained on.",
        "sinusoidal": "Sinusoidal: fixed waves, no parameters; extrapolation beyond T is possible in principle but weak in practice.",
        "rope": "RoPE: rotates q and k, so attention depends on relative distance; no parameters, the modern default.",
        "none": "None: the causal mask alone leaks some order; works surprisingly well for small models.",
    }),
]  # fmt: skip
for title, field, options in VARIANTS:
    st.markdown(f"**{title}**")
    cols = st.columns(len(options))
    for col, (value, sentence) in zip(cols, options.items()):
        with col:
            try:
                v_cfg = cfg.replace(**{field: value})
                n = stats.param_counts(v_cfg)["total"]
                delta = n - counts["total"]
                mark = " ← current" if getattr(cfg, field) == value else ""
                st.markdown(
                    f"`{value}`{mark}  \n{fmt_count(n)} params ({'+' if delta >= 0 else '−'}{fmt_count(abs(delta))})"
                )
            except ConfigError as exc:
                st.markdown(f"`{value}`  \nnot valid here: {exc}")
            st.caption(sentence)
