"""Activations: what flows through the model on your prompt.

The residual stream's size at every layer and position, the MLP's neurons (their distribution
and the ones your text fires most, with the tokens that fire them), what each norm layer does,
the logit lens (the model's guess if it stopped after each sub-layer) and the loss of every
token as heat-text. Reference: Raschka, ch. 4; nostalgebraist 2020 (logit lens).
"""

from __future__ import annotations

import streamlit as st

from explorer import inside, state, widgets
from explorer.plots import activations as xplots

st.title("Activations")
st.caption(
    "Every block reads the residual stream, computes something, and adds it back. These views "
    "follow your prompt (sidebar) through that stream."
)

loaded = state.require_model()
key = inside.model_key(loaded)
cfg = loaded.config
L = cfg.n_layers

prompt, notes = widgets.inspect_text(state.shared_prompt(), 100_000)
widgets.show_notices(notes)
toks = inside.prompt_tokens(key, loaded, prompt)
if not toks["ids"]:
    st.info("The shared prompt (sidebar) is empty. Type something to look at its activations.")
    st.stop()
if toks["cropped"]:
    st.warning(f"The prompt has {toks['total']:,} tokens; the first {len(toks['ids'])} are shown.")
ids, labels = toks["ids"], toks["labels"]
summary = inside.activation_summary(key, loaded, ids)

# --- loss heat-text ---------------------------------------------------------------------------
st.subheader("How surprised is the model by each token?")
st.caption(
    "Each token is tinted by its loss, −log p(token | the tokens before it): white = expected, "
    "red = surprising. Hover a token for the number. The first token has nothing before it."
)
st.html(xplots.loss_heat_html(toks["raw"], summary["losses"]))
if summary["mean_loss"] is not None:
    st.caption(
        f"Mean loss over {len(ids) - 1} predicted tokens: {summary['mean_loss']:.2f} nats "
        f"(perplexity {summary['perplexity']:.1f}: as unsure as a fair choice among that many tokens)."
    )

# --- logit lens -------------------------------------------------------------------------------
st.subheader("Logit lens: the guess after every sub-layer")
st.caption(
    "Decode the residual stream with the model's own final norm and output layer, as if it "
    "stopped after that sub-layer. Each cell: the top next-token guess at that position and its "
    "probability. Read down a column to see where the final answer appears."
)
lens_mode = st.radio(
    "Colour",
    ["top", "actual"],
    format_func={
        "top": "probability of the top guess",
        "actual": "probability of the real next token",
    }.get,
    key="act_lens_mode",
    horizontal=True,
)
st.plotly_chart(
    xplots.logit_lens_figure(
        summary["lens_stages"],
        summary["lens_probs"] if lens_mode == "top" else summary["lens_target_probs"],
        summary["lens_labels"],
        labels,
        colour_label="p(top)" if lens_mode == "top" else "p(next)",
    ),
    key="act_lens",
)

# --- residual norms ---------------------------------------------------------------------------
st.subheader("Residual-stream norm")
st.caption(
    "The length ‖x‖ of the residual vector at each position after each sub-layer. It grows as "
    "blocks add to it; the first position is often an outlier (an attention sink)."
)
st.plotly_chart(
    xplots.residual_norms(summary["norm_stages"], summary["norms"], labels), key="act_norms"
)

# --- MLP neurons ------------------------------------------------------------------------------
st.subheader("MLP neurons")
n1, n2 = st.columns(2)
state.from_url("act_layer", 0, parse=int, ok=lambda v: 0 <= v < L)
layer = n1.selectbox("Layer", list(range(L)), key="act_layer")
state.to_url("act_layer", layer, 0)
k = n2.slider("Neurons to show", 3, 30, 10, key="act_k")
rep = inside.neuron_report(key, loaded, ids, layer, k)
st.caption(
    f"Layer {layer}'s MLP has F = {rep['width']:,} neurons. On this text "
    f"{100 * rep['fraction_active']:.0f}% of the (position, neuron) activations are positive."
)
h1, h2 = st.columns(2)
with h1:
    st.plotly_chart(xplots.neuron_histogram(rep["edges"], rep["counts"], layer), key="act_hist")
with h2:
    st.plotly_chart(
        xplots.neuron_heatmap(rep["top_acts"], [r["neuron"] for r in rep["top"]], labels),
        key="act_neurons",
    )
st.dataframe(
    [
        {
            "neuron": r["neuron"],
            "max": round(r["max"], 3),
            "mean": round(r["mean"], 3),
            "fired most by": " · ".join(
                f"{labels[p]} ({v:.2f})" for p, v in zip(r["top_positions"], r["top_values"])
            ),
        }
        for r in rep["top"]
    ],
    hide_index=True,
    key="act_table",
)

# --- norm statistics --------------------------------------------------------------------------
st.subheader("Norm layers")
st.caption(
    "A norm layer rescales each position's vector to a fixed size (then multiplies by a learned "
    "gain). Input RMS grows through the stack; output RMS stays near the gain."
)
rows = summary["norm_rows"]
st.plotly_chart(xplots.norm_stats_figure(rows), key="act_normstats")
st.dataframe(
    [{k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in r.items()} for r in rows],
    hide_index=True,
)
