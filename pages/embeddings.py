"""Embeddings: where the model puts each token, each position, and each token of your text.

A map of the whole token-embedding table (UMAP, PCA or t-SNE) coloured by TinyTales category,
frequency or length; click a token (or search for one) to see its nearest neighbours by cosine
similarity. Then the position embeddings' similarity and the path your text takes through the
residual stream at a chosen layer. Reference: Raschka, ch. 2.7-2.8; McInnes et al. 2018 (UMAP).
"""

from __future__ import annotations

import streamlit as st

from explorer import inside, registry, state, widgets
from explorer.plots import embeddings as eplots

METHODS = {"umap": "UMAP", "pca": "PCA", "tsne": "t-SNE"}
TSNE_MAX = 16_384  # vocabularies above this get no t-SNE (GPT-2's 50k would take ~15 min)
COLOUR_BY = {"category": "TinyTales category", "frequency": "frequency", "length": "token length"}
POSITION_TEXT = {
    "learned": "**Learned** positions: each position has its own trained vector. Neighbouring "
    "positions usually end up similar (a bright band along the diagonal) because the model "
    "saw them in similar roles; far positions that were rarely trained stay noisy. (The part "
    "every position shares is removed first, or every pair would look alike.)",
    "sinusoidal": "**Sinusoidal** positions (the original Transformer): fixed sines and cosines "
    "of many wavelengths, not trained. Similarity depends only on the distance between two "
    "positions, so every diagonal has one colour.",
    "rope": "**RoPE** has no position vectors: it rotates each query and key by an angle "
    "proportional to its position, so q·k depends only on the distance m − n. Shown: how similar "
    "one vector stays when rotated to two positions — a function of their distance only.",
    "none": "This model has **no position encoding**: only the causal mask tells positions apart.",
}

st.title("Embeddings")
st.caption(
    "Every token id looks up one vector of C numbers. Training moves tokens that are used "
    "alike close together. Here those vectors are squeezed to 2-D so you can see the neighbourhoods."
)

loaded = state.require_model()
key = inside.model_key(loaded)
cfg = loaded.config
facts = inside.token_facts(key, loaded)
labels = facts["labels"]

# --- controls ---------------------------------------------------------------------------------
state.from_url("emb_method", "umap", ok=lambda v: v in METHODS)
state.from_url("emb_colour", "category", ok=lambda v: v in COLOUR_BY)
st.session_state.setdefault("emb_token", None)
c1, c2, c3 = st.columns([2, 2, 3])
method = c1.radio(
    "Projection", list(METHODS), format_func=METHODS.get, key="emb_method", horizontal=True
)
colour = c2.radio(
    "Colour by",
    list(COLOUR_BY),
    format_func=COLOUR_BY.get,
    key="emb_colour",
    horizontal=True,
    help="Category: the word lists the TinyTales stories are made from (names, animals, "
    "colours, ...). Frequency: how often the token occurs in a TinyTales sample. Length: characters.",
)
k = c3.slider("Nearest neighbours", 3, 30, 10, key="emb_k")
state.to_url("emb_method", method, "umap")
state.to_url("emb_colour", colour, "category")


def _search_changed() -> None:
    hits = inside.search(key, loaded, st.session_state.get("emb_search", ""), 1)
    if hits:
        st.session_state["emb_token"] = hits[0]


query = st.text_input(
    "Find a token", key="emb_search", placeholder="e.g. cat, red, Lily", on_change=_search_changed
)
if query.strip():
    hits = inside.search(key, loaded, query, 20)
    if hits:
        st.caption(
            "Matches: " + " · ".join(f"{widgets.md_code(labels[i])} ({i})" for i in hits[:12])
        )
    else:
        st.caption("No token contains that text.")

# a click on the map arrives as the chart's selection state (read before drawing the new figure)
event = st.session_state.get("emb_map")
points = (event or {}).get("selection", {}).get("points", []) if event else []
if points:
    data = points[0].get("customdata")
    clicked = int(data[0] if isinstance(data, list | tuple) else data) if data is not None else None
    if clicked is not None and clicked != st.session_state.get("emb_last_click"):
        st.session_state["emb_last_click"] = clicked
        st.session_state["emb_token"] = clicked
selected = st.session_state.get("emb_token")
if selected is not None and not 0 <= selected < cfg.vocab_size:
    selected = None

# --- the map ----------------------------------------------------------------------------------
xy, source = inside.available_map(key, loaded, method)
shown = method
if xy is None and method == "tsne" and cfg.vocab_size > TSNE_MAX:
    st.info(
        f"t-SNE of {cfg.vocab_size:,} tokens would take many minutes on this server's CPU "
        "(about a minute per 4k tokens, growing faster than linearly). Showing PCA; UMAP is "
        "the fast non-linear map."
    )
    xy, shown = inside.available_map(key, loaded, "pca")[0], "pca"
elif xy is None:
    job = inside.start_projection(key, loaded, method)
    xy, _ = inside.available_map(key, loaded, "pca")
    shown = "pca"

    @st.fragment(run_every=2)
    def _progress() -> None:
        j = inside.job_status(key, loaded, method)
        if j is None or j.state == "done":
            st.rerun(scope="app")
        if j.state == "failed":
            st.error(f"{METHODS[method]} could not be computed: {registry.hide_paths(j.error)}")
            return
        what = {
            "queued": "waiting for another map to finish",
            "compiling": "compiling UMAP's numba code (once per server, ~40 s)",
            "neighbours": "finding each token's neighbours",
            "layout": "laying out the map",
            "running": "running (t-SNE takes about a minute for 4k tokens)",
        }.get(j.state, j.state)
        st.progress(
            min(1.0, max(0.02, j.progress)),
            text=f"{METHODS[method]} of {j.n:,} tokens: {what} — PCA shown meanwhile.",
        )

    _progress()

neigh_ids, neigh_sims = ([], [])
if selected is not None:
    neigh_ids, neigh_sims = inside.nearest(key, loaded, selected, k)
colour_values = {"frequency": facts["counts"], "length": facts["lengths"]}.get(colour)
fig = eplots.embedding_map(
    xy,
    labels,
    colour,
    categories=facts["categories"],
    values=colour_values,
    selected=selected,
    neighbours=neigh_ids,
    title=f"{METHODS[shown]} of the token embeddings · {cfg.vocab_size:,} tokens × C={cfg.d_model}",
)
map_col, side = st.columns([3, 1])
with map_col:
    st.plotly_chart(fig, key="emb_map", on_select="rerun", selection_mode="points")
    if source == "precomputed":
        st.caption("Precomputed when this model was saved.")
with side:
    if selected is None:
        st.info("Click a point (or search above) to see a token's nearest neighbours.")
    else:
        st.markdown(f"**Selected:** {widgets.md_code(labels[selected])} · id {selected}")
        st.caption(
            f"Category: {facts['categories'][selected]} · seen {int(facts['counts'][selected]):,}× in the TinyTales sample"
        )
        st.plotly_chart(
            eplots.neighbour_bars(
                [labels[i] for i in neigh_ids],
                neigh_sims,
                "Nearest by cosine",
                height=max(240, 26 * len(neigh_ids) + 60),
            ),
            key="emb_nbars",
            width="stretch",
        )
        if st.button("Clear selection", key="emb_clear"):
            st.session_state["emb_token"] = None
            st.rerun()
st.caption(
    "Distances on a 2-D map are approximate: UMAP and t-SNE keep neighbourhoods, not global "
    "distances; PCA keeps the two directions of largest spread. The neighbour list is exact "
    "(cosine similarity in all C dimensions)."
)

# --- positions --------------------------------------------------------------------------------
st.subheader("Position embeddings")
max_pos = min(256, cfg.context_length)
n_pos = (
    st.slider("Positions shown", 8, max_pos, min(64, max_pos), key="emb_npos")
    if max_pos > 8
    else max_pos
)
kind, sim = inside.position_similarity(key, loaded, n_pos)
pc1, pc2 = st.columns([3, 2])
with pc2:
    st.markdown(POSITION_TEXT.get(kind, kind))
    with st.expander("The other ways to encode position"):
        for other, text in POSITION_TEXT.items():
            if other != kind:
                st.markdown(text)
with pc1:
    if sim is None:
        st.info("No position table to draw.")
    else:
        st.plotly_chart(eplots.position_similarity(sim, kind), key="emb_pos", width="stretch")

# --- contextual -------------------------------------------------------------------------------
st.subheader("Your text inside the model")
st.caption(
    "The same token gets a different vector in each context once attention has mixed in its "
    "neighbours. Each point is one token of the shared prompt (sidebar) at the chosen layer."
)
prompt, notes = widgets.inspect_text(state.shared_prompt(), 100_000)
widgets.show_notices(notes)
toks = inside.prompt_tokens(key, loaded, prompt)
if len(toks["ids"]) < 3:
    st.info("Type at least three tokens in the shared prompt to draw their path.")
else:
    if toks["cropped"]:
        st.warning(
            f"The prompt has {toks['total']:,} tokens; the first {len(toks['ids'])} are shown."
        )
    cc1, cc2 = st.columns(2)
    layer = cc1.selectbox("Layer", list(range(cfg.n_layers)), cfg.n_layers - 1, key="emb_layer")
    stage = cc2.radio(
        "Point in the block",
        list(inside.CONTEXT_STAGES),
        index=2,
        format_func={"embed": "input embedding", "attn": "after attention", "mlp": "after MLP"}.get,
        key="emb_stage",
        horizontal=True,
    )
    cxy = inside.contextual_map(key, loaded, toks["ids"], layer, stage)
    where = (
        "the input embedding"
        if stage == "embed"
        else f"layer {layer}, after {'attention' if stage == 'attn' else 'the MLP'}"
    )
    st.plotly_chart(
        eplots.contextual_path(cxy, toks["labels"], where), key="emb_ctx", width="stretch"
    )
