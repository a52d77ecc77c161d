"""Tokenize: how text becomes token ids (book ch. 2).

Chips with ids for the chosen model's tokenizer; several tokenizers side by side; the BPE
merges replayed on your own text; a BPE trained on your text; the sliding-window pairs a
model is trained on. Thin page: the work is in explorer/compute.py via explorer/loaders.py.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from explorer import compute, loaders, state, widgets
from explorer.plots import tokens as tplots

MAX_CHARS = 100_000  # tokenized in full (tiktoken is fast)
MAX_CHIPS = 1500  # chips drawn; counts still cover the whole text
REPLAY_CHARS = 1000  # merge replay cost grows with text x merges
WINDOW_CHARS = 5000

st.title("Tokenize")
st.caption(
    "A model never sees letters: it sees integer ids. Type below to see how each tokenizer "
    "cuts your text, and how byte-pair encoding (BPE) builds its vocabulary one merge at a time."
)

loaded = state.require_model()
tok = loaded.tokenizer

state.from_url("tok_text", state.shared_prompt(), ok=lambda s: len(s) <= MAX_CHARS)
raw = st.text_area("Your text", key="tok_text", height=120, max_chars=2 * MAX_CHARS)
st.button(
    "Use the shared prompt",
    key="tok_use_shared",
    on_click=lambda: st.session_state.update(tok_text=state.shared_prompt()),
    help="Copy the sidebar's prompt into the box above.",
)
text, notes = widgets.inspect_text(raw, MAX_CHARS)
widgets.show_notices(notes)
if len(raw) <= state.URL_PROMPT_MAX:
    state.to_url("tok_text", raw, state.shared_prompt())

if not text.strip():
    st.info("Type or paste some text above to see its tokens.")
    st.stop()

# --- the model's tokens --------------------------------------------------------------------
records = loaders.token_records(loaded.key, tok, text, MAX_CHIPS)
n_tokens = loaders.count_tokens(loaded.key, tok, text)
n_bytes = len(text.encode("utf-8", "surrogatepass"))
c1, c2, c3, c4 = st.columns(4)
c1.metric("characters", f"{len(text):,}")
c2.metric("UTF-8 bytes", f"{n_bytes:,}")
c3.metric("tokens", f"{n_tokens:,}")
c4.metric("characters per token", f"{len(text) / max(n_tokens, 1):.2f}")
tok_name = widgets.md_literal(str(getattr(tok, "name", "the model tokenizer")))  # upload's text
st.subheader(f"Tokens of {tok_name} ({tok.vocab_size:,} ids)")
st.caption("Hover a chip for its id and bytes. ␣ is a space, ↵ a newline.")
widgets.show(widgets.chips_html(records))
if n_tokens > MAX_CHIPS:
    st.caption(f"Showing the first {MAX_CHIPS:,} of {n_tokens:,} tokens.")

# --- side by side ---------------------------------------------------------------------------
st.subheader("Tokenizers side by side")
avail = loaders.available_tokenizers()
offline = [n for n, ok in avail.items() if not ok]
choices = ["model"] + [n for n, ok in avail.items() if ok]
trained = st.session_state.get("tok_trained")
if trained:
    choices.append("your BPE")
default_cmp = [c for c in choices if c in ("model", "char", "word", "gpt2", "your BPE")]
state.from_url(
    "tok_cmp", default_cmp, parse=lambda s: [c for c in s.split(",") if c in choices] or default_cmp
)
st.session_state["tok_cmp"] = [c for c in st.session_state["tok_cmp"] if c in choices]
picked = st.multiselect("Compare", choices, key="tok_cmp")
state.to_url("tok_cmp", ",".join(picked), ",".join(default_cmp))
if offline:
    st.caption(
        f"Not available offline (their files are not on this machine): {', '.join(offline)}."
    )


def tokenizer_for(name):
    if name == "model":
        return f"model:{loaded.key}", tok
    if name == "your BPE":
        return trained
    return name, loaders.get_tokenizer(name)


rows = []
for name in picked:
    key, t = tokenizer_for(name)
    n = loaders.count_tokens(key, t, text)
    rows.append(
        dict(
            name=f"{name} ({t.vocab_size:,})",
            key=key,
            tok=t,
            n_tokens=n,
            chars_per_token=len(text) / max(n, 1),
        )
    )
if rows:
    st.plotly_chart(tplots.tokenizer_comparison(rows), key="tok_cmp_chart")
    cols = st.columns(min(len(rows), 3))
    for i, r in enumerate(rows):
        with cols[i % len(cols)]:
            st.markdown(f"**{r['name']}** · {r['n_tokens']:,} tokens")
            widgets.show(widgets.chips_html(loaders.token_records(r["key"], r["tok"], text, 200)))
    if any("word" in r["name"] for r in rows):
        st.caption(
            "The word tokenizer maps every word it never saw to <|unk|>: that is why BPE exists."
        )

# --- BPE merges replayed --------------------------------------------------------------------
st.subheader("Step through the BPE merges")
if not hasattr(tok, "replay"):
    st.info("This model's tokenizer is not a BPE, so there are no merges to replay.")
else:
    replay_text = text[:REPLAY_CHARS]
    if len(text) > REPLAY_CHARS:
        st.caption(f"Replaying the first {REPLAY_CHARS:,} characters.")
    rep = loaders.bpe_replay(f"model:{loaded.key}", tok, replay_text)
    steps = rep["steps"]
    state.from_url("tok_merge", steps[-1], parse=int, ok=lambda k: k in steps)
    if st.session_state["tok_merge"] not in steps:
        st.session_state["tok_merge"] = steps[-1]
    k = st.select_slider(
        "Merges applied (only merges that change your text are stops)", steps, key="tok_merge"
    )
    state.to_url("tok_merge", k, steps[-1])
    i = steps.index(k)
    m = rep["merges"][i]
    if m is None:
        st.markdown(f"Before any merge: one token per UTF-8 byte, **{rep['counts'][0]}** tokens.")
    else:
        st.markdown(f"Merge **#{k}** of {tok.n_merges:,}: now **{rep['counts'][i]}** tokens.")
        st.code(f"{m[0]!r} + {m[1]!r} -> {m[2]!r}", language=None)
    widgets.show(widgets.segments_html(rep["labels"][i]))
    st.plotly_chart(tplots.merge_curve(rep["counts"], i, steps), key="tok_merge_chart")

# --- train a BPE ----------------------------------------------------------------------------
st.subheader("Train your own BPE")
source = st.radio(
    "Training text",
    ["the text above", "a .txt file", "built-in stories (tinytales)"],
    horizontal=True,
    key="tok_src",
)
train_text = text
if source == "a .txt file":
    up = st.file_uploader("Text file", type=["txt", "md", "csv", "py"], key="tok_upload")
    train_text = ""
    if up is not None:
        try:
            from core.corpora import read_user_text

            train_text = read_user_text(up.getvalue(), max_bytes=5_000_000)
        except Exception as exc:  # noqa: BLE001 - any unreadable file becomes a message
            st.error(widgets.md_literal(f"Could not read {up.name!r} as text: {exc}"))
elif source.startswith("built-in"):
    from core.corpora import load_corpus

    train_text = load_corpus("tinytales", n_bytes=200_000)
state.from_url("tok_vocab", 512, parse=int, ok=lambda v: 257 <= v <= 4096)
vocab = st.slider("Vocabulary size (256 bytes + merges)", 257, 4096, key="tok_vocab", step=1)
state.to_url("tok_vocab", vocab, 512)
if st.button("Train BPE", key="tok_train", disabled=not train_text.strip()):
    text_key = hashlib.sha256(train_text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    bar = st.progress(0.0, text="counting pairs…")
    key = f"trained:{text_key}:{vocab}"

    def report(done, total):
        bar.progress(min(done / max(total, 1), 1.0), text=f"merge {done:,} of {total:,}")

    try:
        st.session_state["tok_trained"] = (key, compute.train_bpe(train_text, vocab, report))
    except Exception as exc:  # noqa: BLE001 - bad text or size becomes a message
        st.error(widgets.md_literal(f"Training failed: {exc}"))
    bar.empty()
    if st.session_state.get("tok_trained", (None,))[0] == key:
        st.rerun()  # so the comparison above includes the new tokenizer
if trained:
    key, mine = trained
    n_mine = loaders.count_tokens(key, mine, text)
    asked = int(key.rsplit(":", 1)[1])
    if mine.n_merges < asked - 257:
        st.info(
            f"Training stopped after {mine.n_merges:,} merges, before {asked:,} ids: no pair of "
            "tokens occurs twice any more in this text. More (or more varied) text allows more merges."
        )
    st.success(
        f"Your BPE: {mine.vocab_size:,} ids, {mine.n_merges:,} merges. Your text above takes "
        f"{n_mine:,} tokens with it vs {n_tokens:,} with the model's tokenizer."
    )
    first = [f"{mine.token_label(a)!r} + {mine.token_label(b)!r}" for a, b in mine.merges[:24]]
    st.text("First merges learned: " + " · ".join(first))  # literal: labels are user text
    widgets.show(widgets.chips_html(loaders.token_records(key, mine, text, 300)))

# --- sliding windows ------------------------------------------------------------------------
st.subheader("Sliding windows: what the model is trained on")
st.caption(
    "Each input x is a window of T ids; its target y is the same window shifted by one, so every position predicts the next token."
)
w1, w2 = st.columns(2)
state.from_url("tok_ctx", 8, parse=int, ok=lambda v: 2 <= v <= 32)
state.from_url("tok_stride", 4, parse=int, ok=lambda v: 1 <= v <= 32)
ctx = w1.slider("Context length T", 2, 32, key="tok_ctx")
stride = w2.slider("Stride", 1, 32, key="tok_stride")
state.to_url("tok_ctx", ctx, 8)
state.to_url("tok_stride", stride, 4)
win = loaders.window_records(f"model:{loaded.key}", tok, text[:WINDOW_CHARS], ctx, stride, 8)
if stride > ctx:
    st.info(f"Stride {stride} > context {ctx}: some tokens are never inside a window.")
elif stride < ctx:
    st.caption(
        f"Stride {stride} < context {ctx}: windows overlap, so tokens are seen more than once."
    )
if not win["rows"]:
    st.warning(
        f"The text has {win['n_ids']} tokens: a window needs at least T + 1 = {ctx + 1}. Type more text or lower T."
    )
else:
    st.markdown(
        f"{win['n_windows']:,} windows from {win['n_ids']:,} tokens; the first {len(win['rows'])}:"
    )
    widgets.show(widgets.windows_html(win["rows"]))
