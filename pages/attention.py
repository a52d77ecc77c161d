"""Attention: every head of every layer on your prompt, the heads' roles, and one head worked
through by hand.

A grid of small heatmaps (click one to enlarge it with token labels), the previous-token /
first-token / induction scores of every head, and one query position stepped through: q, each
k, the dot products, ÷√D, the causal mask, softmax, the weighted sum of v and the output, with
the model's real numbers and each tensor's shape.
Reference: Vaswani et al. 2017; Raschka, ch. 3; Olsson et al. 2022 (induction heads).
"""

from __future__ import annotations

import streamlit as st

from explorer import inside, state, widgets
from explorer.plots import attention as aplots

st.title("Attention")
st.caption(
    "Each head decides, for every position, how much to look at every earlier position "
    "(rows: the query doing the looking; columns: the keys it looks at). Darker = more weight."
)

loaded = state.require_model()
key = inside.model_key(loaded)
cfg = loaded.config
L, H, D = cfg.n_layers, cfg.n_heads, cfg.d_model // cfg.n_heads

prompt, notes = widgets.inspect_text(state.shared_prompt(), 100_000)
widgets.show_notices(notes)
toks = inside.prompt_tokens(key, loaded, prompt)
if not toks["ids"]:
    st.info("The shared prompt (sidebar) is empty. Type something to see where the heads look.")
    st.stop()
if toks["cropped"]:
    st.warning(
        f"The prompt has {toks['total']:,} tokens; the first {len(toks['ids'])} are shown "
        "so every heatmap stays readable."
    )
ids, labels = toks["ids"], toks["labels"]
T = len(ids)
patterns = inside.attention_patterns(key, loaded, ids)  # (L, H, T, T)

# --- which head: a thumbnail click or the two selectors ---------------------------------------
state.from_url("att_layer", 0, parse=int, ok=lambda v: 0 <= v < L)
state.from_url("att_head", 0, parse=int, ok=lambda v: 0 <= v < H)
event = st.session_state.get("att_grid")
points = (event or {}).get("selection", {}).get("points", []) if event else []
lh = aplots.head_from_click(points[0].get("customdata"), H) if points else None
if lh is not None and lh != st.session_state.get("att_last_click"):
    st.session_state["att_last_click"] = lh
    st.session_state["att_layer"], st.session_state["att_head"] = lh
st.session_state["att_layer"] = min(st.session_state["att_layer"], L - 1)
st.session_state["att_head"] = min(st.session_state["att_head"], H - 1)

st.subheader(f"All {L * H} heads")
grid_col, big_col = st.columns([1, 1])
with grid_col:
    st.caption("Click a thumbnail to enlarge it.")
    grid_fig = aplots.head_grid(
        patterns,
        selected=(st.session_state["att_layer"], st.session_state["att_head"]),
    )
    st.plotly_chart(
        grid_fig,
        key="att_grid",
        on_select="rerun",
        selection_mode="points",
        width="content",
        config={"displayModeBar": False},  # the toolbar would cover the head labels
    )
with big_col:
    s1, s2 = st.columns(2)
    layer = s1.selectbox("Layer", list(range(L)), key="att_layer")
    head = s2.selectbox("Head", list(range(H)), key="att_head")
    state.to_url("att_layer", layer, 0)
    state.to_url("att_head", head, 0)
    st.plotly_chart(aplots.head_heatmap(patterns[layer, head], labels, layer, head), key="att_big")

# --- one query, step by step ------------------------------------------------------------------
st.subheader(f"Layer {layer}, head {head}, step by step")
query = (
    st.slider("Query position (the token doing the looking)", 0, T - 1, T - 1, key="att_query")
    if T > 1
    else 0
)
steps = inside.head_step(key, loaded, ids, layer, head, query)
st.markdown(
    f"The query is token {query}, {widgets.md_code(labels[query])}. It may look at positions "
    f"0..{query}; the {T - 1 - query} later ones are masked. Head dimension D = {D}."
)
st.plotly_chart(
    aplots.step_figure(labels, steps.dots, steps.scaled, steps.weights, query), key="att_steps"
)
v1, v2 = st.columns(2)
rows = [f"{lab} ·{i}" for i, lab in enumerate(labels)]
with v1:
    st.plotly_chart(
        aplots.vector_strip(steps.q, [rows[query]], "q: the query vector (D numbers)"),
        key="att_q",
    )
    st.plotly_chart(aplots.vector_strip(steps.k, rows, "k: one key per position"), key="att_k")
with v2:
    st.plotly_chart(
        aplots.vector_strip(steps.z, [f"z ·{query}"], "z = Σ w_j v_j: the head's output"),
        key="att_z",
    )
    st.plotly_chart(aplots.vector_strip(steps.v, rows, "v: one value per position"), key="att_v")

table = [
    {
        "position": i,
        "token": labels[i],
        "q·k": float(steps.dots[i]),
        "÷√D": float(steps.scaled[i]),
        "after mask": float(steps.masked[i]),  # -inf after the query: the causal mask
        "softmax weight": float(steps.weights[i]),
    }
    for i in range(T)
]
st.dataframe(table, hide_index=True, key="att_table")
st.markdown("**The steps, with the shape of each tensor**")
st.dataframe(
    [{"step": s["step"], "formula": s["formula"], "shape here": s["shape"]} for s in steps.steps],
    hide_index=True,
)
st.caption(
    "Full tensors in the model: "
    + " · ".join(f"{name} {shape}" for name, shape in steps.shapes.items())
    + f". Check: these weights equal the model's own pattern row to "
    f"{steps.check_error:.1e}."
)

# --- roles (last: a big model without a release manifest takes a while to score) -----------
st.subheader("What kind of head is it?")
scores = inside.head_scores(key, loaded)
st.plotly_chart(aplots.head_scores_figure(scores), key="att_scores")
for text in aplots.ROLE_TEXT.values():
    st.markdown(f"- {text}")
st.caption(
    "Scores are mean attention weights measured on random tokens repeated twice (not on your "
    "prompt), so a head scores high only if it follows the pattern whatever the words are."
)
