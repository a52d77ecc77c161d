"""Glassbox GPT: the entry point (`streamlit run explorer/app.py`).

Adds the frame only (STYLE rule 15): page config, server thread count, the sidebar's model
picker and shared prompt, and the navigation. Every page runs on its own with its own defaults.

Adding a page: append one line to PAGES below. A line whose file does not exist yet is skipped,
so registering a page before its file lands breaks nothing.
"""

from __future__ import annotations

import os

# A Streamlit server runs many sessions' scripts in threads at once; torch's default intra-op
# pool (one thread per core, per calling thread) oversubscribes the CPU and made one rerun take
# 10-18 s under load instead of 0.25 s (FIELD-NOTES). Measured here with
# `python tests/bench/bench_pages.py --threads` (2 cores, already loaded by other work): 8
# concurrent Sample reruns ran p50 0.64-0.71 s / p90 0.76-1.05 s, 11.0-11.6 reruns/s with 1
# thread vs p50 0.71-0.79 s / p90 1.25-1.32 s, 9.2-9.6 reruns/s with 2. One thread per script
# thread, then; a single-user laptop may set GLASSBOX_TORCH_THREADS=2. Set before torch loads.
SERVER_THREADS = int(os.environ.get("GLASSBOX_TORCH_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(SERVER_THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(SERVER_THREADS))

from pathlib import Path  # noqa: E402

# Imported before any page runs, in every script thread: Streamlit imports pandas lazily, and
# plotly's validators look pandas up in sys.modules without importing it, so a figure built in one
# session while another session's thread was half-way through that first import failed with
# "partially initialized module 'pandas' has no attribute 'Series'" (found by tests/load: two
# sessions and a training). An `import` waits for a concurrent import to finish; a lookup does not.
import pandas  # noqa: E402, F401
import streamlit as st  # noqa: E402
import torch  # noqa: E402

from explorer import loaders, registry, state, widgets  # noqa: E402

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"
SECTIONS = ("Data", "Model", "Train", "Generate")

# One line per page: (section, file in pages/, title, icon, url path). Owners add their own line.
PAGES = [
    ("Data", "tokenize.py", "Tokenize", ":material/text_fields:", "tokenize"),
    ("Model", "architecture.py", "Architecture", ":material/account_tree:", "architecture"),
    ("Model", "embeddings.py", "Embeddings", ":material/scatter_plot:", "embeddings"),
    ("Model", "attention.py", "Attention", ":material/grid_view:", "attention"),
    ("Model", "activations.py", "Activations", ":material/stacked_line_chart:", "activations"),
    ("Train", "train.py", "Train", ":material/model_training:", "train"),
    ("Generate", "sample.py", "Sample", ":material/casino:", "sample"),
]


# One sentence per page for the start page; a page without one is still listed.
BLURBS = {
    "tokenize.py": "How text becomes ids: chips, tokenizers compared, BPE merges, sliding windows.",
    "architecture.py": "The model drawn from its config, with parameters, memory and FLOPs.",
    "embeddings.py": "Maps of the token embedding table and of positions.",
    "attention.py": "Every head of every layer on your prompt, step by step.",
    "activations.py": "The residual stream, MLP neurons and the logit lens.",
    "train.py": "Pre-train a model, or fine-tune one on your own text, and watch it learn.",
    "sample.py": "Temperature, top-k and top-p on the next-token distribution; generate.",
}


def start_page(sections: dict[str, list]) -> None:
    """The landing page: what this is and the path through it (the book's order)."""
    st.title("Glassbox GPT")
    st.markdown(
        "Build, train and look inside a small GPT, live, on a CPU. The pages follow the path of "
        "*Build a Large Language Model (From Scratch)*: tokenize → embed → attend → transformer "
        "block → pre-train → generate → fine-tune. The model chosen in the sidebar is the one every page "
        "shows; the shared prompt is where the model-reading pages start."
    )
    try:
        state.current_model()
    except loaders.ModelUnavailable as exc:
        st.warning(str(exc))
    for section, pages in sections.items():
        st.subheader(section)
        for file, page in pages:
            st.page_link(page)
            if file in BLURBS:
                st.caption(BLURBS[file])


def navigation_spec(pages=PAGES, pages_dir: Path = PAGES_DIR) -> dict[str, list[tuple]]:
    """Section -> page lines whose files exist, sections in SECTIONS order (pure, testable)."""
    spec: dict[str, list[tuple]] = {}
    for section in SECTIONS + tuple(s for s, *_ in pages if s not in SECTIONS):
        rows = [p for p in pages if p[0] == section and (pages_dir / p[1]).is_file()]
        if rows:
            spec[section] = rows
    return spec


def _upload_changed() -> None:
    """Validate uploaded checkpoints (each .zip on its own, loose files together); select the
    last one that loads. A callback runs before the widgets, so it may set model_key."""
    files = st.session_state.get("upload_files") or []
    zips = [f for f in files if f.name.lower().endswith(".zip")]
    loose = [f for f in files if not f.name.lower().endswith(".zip")]
    messages = []
    for group in [[z] for z in zips] + ([loose] if loose else []):
        try:
            entry = loaders.save_upload([(f.name, f.getvalue()) for f in group])
        except ValueError as exc:
            messages.append(("error", str(exc)))
            continue
        st.session_state.setdefault("uploaded_models", {})[entry.key] = entry
        st.session_state[state.MODEL_KEY] = entry.key
        messages.append(("success", f"Loaded {entry.label}."))
    st.session_state["upload_message"] = messages


def model_picker() -> None:
    """The sidebar: which model every page shows, and the prompt they share."""
    entries = registry.list_models()
    uploads = st.session_state.setdefault("uploaded_models", {})
    entries += list(uploads.values())
    state.from_url(state.MODEL_KEY, state.DEFAULT_MODEL, param="model")
    key = st.session_state[state.MODEL_KEY]
    if key not in {e.key for e in entries}:
        entry = loaders.resolve_entry(key)  # e.g. a link to a run that is still running
        if entry is None:
            st.sidebar.warning(  # the key comes from the URL: shown as typed
                widgets.md_literal(
                    f"The linked model {key[:60]!r} is not on this server; showing the default."
                )
            )
            st.session_state[state.MODEL_KEY] = state.DEFAULT_MODEL
        else:
            entries.append(entry)
    labels = {e.key: e.label for e in entries}
    st.sidebar.selectbox(
        "Model", list(labels), format_func=lambda k: labels.get(k, k), key=state.MODEL_KEY
    )
    with st.sidebar.expander("Load a checkpoint"):
        st.file_uploader(
            "A .zip of a checkpoint folder, or config.json + model.safetensors (+ tokenizer.json)",
            type=["zip", "json", "safetensors"],
            accept_multiple_files=True,
            key="upload_files",
            on_change=_upload_changed,
        )
        for level, text in st.session_state.pop("upload_message", []):
            (st.error if level == "error" else st.success)(widgets.md_literal(text))
    try:
        loaded = state.current_model()
        cfg = loaded.config
        st.sidebar.caption(
            f"{loaded.model.num_params() / 1e6:.2f}M parameters · L={cfg.n_layers} H={cfg.n_heads} "
            f"C={cfg.d_model} · context {cfg.context_length} · vocab {cfg.vocab_size}"
        )
    except loaders.ModelUnavailable:
        st.sidebar.warning("This model cannot be loaded (the page says why).")
    state.from_url(state.PROMPT_KEY, state.DEFAULT_PROMPT, param="prompt")
    st.sidebar.text_area(
        "Shared prompt",
        key=state.PROMPT_KEY,
        height=100,
        max_chars=100_000,
        help="Every page that reads a prompt starts from this one.",
    )
    state.to_url("model", st.session_state[state.MODEL_KEY], state.DEFAULT_MODEL)
    prompt = st.session_state[state.PROMPT_KEY]
    state.to_url(
        "prompt", prompt if len(prompt) <= state.URL_PROMPT_MAX else None, state.DEFAULT_PROMPT
    )


def main() -> None:
    torch.set_num_threads(SERVER_THREADS)  # per script thread: each rerun runs in its own thread
    st.set_page_config(page_title="Glassbox GPT", page_icon=":material/visibility:", layout="wide")
    sections = {
        section: [
            (file, st.Page(PAGES_DIR / file, title=title, icon=icon, url_path=url))
            for _, file, title, icon, url in rows
        ]
        for section, rows in navigation_spec().items()
    }
    start = st.Page(
        lambda: start_page(sections),
        title="Start",
        icon=":material/home:",
        url_path="start",
        default=True,
    )
    nav = st.navigation({"": [start], **{s: [p for _, p in rows] for s, rows in sections.items()}})
    model_picker()
    nav.run()


if __name__ == "__main__":  # `streamlit run` (and AppTest) execute this file as __main__
    main()
