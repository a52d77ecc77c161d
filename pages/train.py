"""Train: configure and start a run (pre-train a new model or fine-tune an existing one), watch it
learn live, compare runs, scrub the time-lapse.

A training runs in a plain background thread held by the process-wide job registry
(explorer/jobs.py), never in this script: a rerun or a closed tab cannot kill it. The run id sits in
the URL (?run=...), so a refresh or a second tab reattaches. The live panel is an
st.fragment that polls every few seconds, and only while its run is queued or training
(FIELD-NOTES: one server manages ~10 fragment ticks/s in all). Book: Raschka ch. 5 (pre-training).
This file holds the form and the live view; the Runs and Time-lapse views are in
explorer/trainpanels.py, the data behind them in explorer/trainviews.py.
"""

from __future__ import annotations

import uuid

import streamlit as st

from explorer import jobs, registry, runlog, trainjobs, trainpanels, trainviews
from explorer.trainpanels import k

POLL_S = 3  # seconds between live refreshes while a run trains
VIEWS = ("New run", "Watch", "Runs", "Time-lapse")
KEEP = {"persist_state": "session"}  # the form keeps its values while another view is shown
MODEL_FIELDS = ("n_layers", "n_heads", "d_model", "context_length")
DEFAULTS = {  # a run that learns visibly in about a minute on one core
    "n_layers": 2,
    "n_heads": 4,
    "d_model": 64,
    "context_length": 64,
    "activation": "gelu",
    "norm": "layernorm",
    "norm_position": "pre",
    "pos_encoding": "learned",
    "dropout": 0.0,
    "lr": 3e-3,
    "warmup_steps": 30,
    "max_steps": 300,
    "micro_batch": 16,
    "accum": 1,
    "grad_clip": 1.0,
    "bf16": False,
    "eval_every": 25,
    "frames": 12,
    "seed": 0,
    "corpus": "tinytales",
    "corpus_kb": 300,
    "tokenizer": "bpe",
    "vocab_size": 512,
    "label": "",
    "sample_prompt": "Once upon a time",
    "init_from": "",  # "" pre-trains a new model; a picker key fine-tunes that model
    "ft_seq": 64,  # tokens per sequence when fine-tuning (at most the base's context)
}
# a fine-tune starts from weights that already work: a 10x lower learning rate keeps what they
# know (Raschka ch. 7 fine-tunes GPT-2 at 5e-5 after pre-training at 4e-4), a short warm-up
FINE_TUNE = {"lr": 3e-4, "warmup_steps": 10, "max_steps": 200}


def init_defaults() -> None:
    for name, value in DEFAULTS.items():
        st.session_state.setdefault(k(name), value)
    st.session_state.setdefault(k("preset"), "custom")
    if k("view") not in st.session_state:
        view = st.query_params.get("view")
        if view not in VIEWS:
            view = (
                "Watch" if st.query_params.get("run") or jobs.registry().any_active() else VIEWS[0]
            )
        st.session_state[k("view")] = view
    if k("run") not in st.session_state:
        st.session_state[k("run")] = st.query_params.get("run")


def apply_preset() -> None:
    """Fill the explicit fields from a preset (a preset or explicit sizes, never both)."""
    from core.config import PRESETS

    name = st.session_state[k("preset")]
    if name in PRESETS:
        cfg = PRESETS[name]
        for f in MODEL_FIELDS + ("activation", "norm", "norm_position", "pos_encoding"):
            st.session_state[k(f)] = getattr(cfg, f)
        st.session_state[k("vocab_size")] = cfg.vocab_size


def on_base_change() -> None:
    """Switching between pre-training and fine-tuning swaps the schedule's defaults, unless the
    user had already changed them."""
    key = st.session_state[k("init_from")]
    new, old = (FINE_TUNE, DEFAULTS) if key else (DEFAULTS, FINE_TUNE)
    for name in FINE_TUNE:
        if st.session_state.get(k(name)) == old[name]:
            st.session_state[k(name)] = new[name]
    if key:  # the window fits the new base's context
        try:
            context = trainjobs.model_config(trainjobs.TrainSpec(init_from=key)).context_length
        except (ValueError, OSError):
            return  # the form says what is wrong with this base
        st.session_state[k("ft_seq")] = min(int(st.session_state[k("ft_seq")]), context)


def base_options() -> list[str]:
    """ "" (a new model) and the picker keys of the models a run can fine-tune: the shipped one
    and every finished run with a checkpoint."""
    keys = [e.key for e in registry.list_models() if e.kind in ("default", "run")]
    if st.session_state.get(k("init_from")) not in ["", *keys]:
        st.session_state[k("init_from")] = ""  # its run was deleted meanwhile
    return ["", *keys]


def base_label(key: str) -> str:
    if not key:
        return "A new model with random weights (pre-train)"
    return "Fine-tune the shipped model" if key == "default" else f"Fine-tune run {key[4:]}"


def spec_from_state() -> trainjobs.TrainSpec:
    s = lambda name: st.session_state[k(name)]  # noqa: E731
    micro, accum = int(s("micro_batch")), int(s("accum"))
    spec = trainjobs.TrainSpec(
        label=s("label").strip(),
        model={f: int(s(f)) for f in MODEL_FIELDS}
        | {f: s(f) for f in ("activation", "norm", "norm_position", "pos_encoding")}
        | {"dropout": float(s("dropout"))},
        train={
            "max_steps": int(s("max_steps")),
            "batch_size": micro * accum,
            "micro_batch_size": micro,
            "lr": float(s("lr")),
            "warmup_steps": int(s("warmup_steps")),
            "grad_clip": float(s("grad_clip")),
            "dtype": "bf16" if s("bf16") else "fp32",
            "device": "cpu",
            "eval_every": int(s("eval_every")),
            "eval_batches": 4,
            "ckpt_every": max(50, int(s("max_steps")) // 4),
            "telemetry_every": 5,
            "timelapse_frames": int(s("frames")),
            "seed": int(s("seed")),
            "sample_prompt": s("sample_prompt"),
        },
        corpus=s("corpus"),
        corpus_bytes=int(s("corpus_kb")) * 1000,
        tokenizer=s("tokenizer"),
        vocab_size=int(s("vocab_size")),
    )
    if s("init_from"):  # the base model's architecture and tokenizer; the window is the form's
        spec.init_from = s("init_from")
        spec.model = {"dropout": float(s("dropout"))}
        spec.train["seq_len"] = int(s("ft_seq"))
    return spec


def upload_bytes() -> bytes | None:
    f = st.session_state.get(k("upload"))
    return f.getvalue() if f is not None else None


def on_start() -> None:
    spec = spec_from_state()
    try:
        run_id = trainjobs.start(spec, upload=upload_bytes() if spec.corpus == "upload" else None)
    except (ValueError, OSError) as exc:
        st.session_state[k("start_error")] = registry.hide_paths(str(exc))
        return
    st.session_state[k("run")] = run_id
    st.session_state[k("view")] = "Watch"


# ---------------------------------------------------------------- New run


def view_new_run() -> None:
    from core.config import PRESETS

    bases = base_options()  # first: it resets a base that was deleted meanwhile
    spec = spec_from_state()
    errors = trainjobs.validate(spec, upload_bytes=len(upload_bytes() or b""))

    def msg(*fields):
        for f in fields:
            if f in errors:  # messages may quote run names and the user's values
                st.error(trainpanels.lit(errors[f]), icon=":material/error:")

    st.selectbox(
        "Start from",
        bases,
        format_func=base_label,
        key=k("init_from"),
        **KEEP,
        on_change=on_base_change,
        help="Pre-train a new model from random weights, or fine-tune one that already exists "
        "on new text (domain adaptation): it keeps that model's architecture and tokenizer "
        "and changes only its weights.",
    )
    msg("init_from")
    fine = bool(st.session_state[k("init_from")]) and "init_from" not in errors
    if not st.session_state[k("init_from")]:
        st.selectbox(
            "Preset",
            ["custom", *PRESETS],
            key=k("preset"),
            **KEEP,
            on_change=apply_preset,
            help="Fills the sizes below; change any of them afterwards for your own shape.",
        )
    base = trainjobs.model_config(spec) if fine else None
    c1, c2 = st.columns(2)
    with c1:
        st.subheader("Model", divider="gray")
        if st.session_state[k("init_from")]:
            if base is not None:
                show_base(base)
            st.number_input("Dropout", 0.0, 0.9, step=0.05, key=k("dropout"), **KEEP)
            msg("dropout", "")
        else:
            model_fields(msg)
        data_fields(msg, fine=bool(st.session_state[k("init_from")]))
    with c2:
        training_fields(spec, errors, msg, base)


def show_base(cfg) -> None:
    """What a fine-tune keeps: the base model's shape and tokenizer, in one box."""
    from core import stats

    params = stats.param_counts(cfg)["total"]
    st.info(
        f"Kept from the base model: L={cfg.n_layers} H={cfg.n_heads} C={cfg.d_model}, "
        f"context {cfg.context_length}, {cfg.activation}, {cfg.norm_position}-{cfg.norm}, "
        f"{cfg.pos_encoding} positions, {params / 1e6:.2f}M parameters, and its tokenizer "
        f"(vocabulary {cfg.vocab_size}). Only the weights change. The first evaluation, at "
        "step 0, measures the base model on your text before any update.",
        icon=":material/model_training:",
    )


def model_fields(msg) -> None:
    a, b = st.columns(2)
    a.number_input("Layers (L)", 1, 24, key=k("n_layers"), **KEEP)
    b.number_input("Heads (H)", 1, 32, key=k("n_heads"), **KEEP)
    a.number_input("Width (C)", 8, 2048, step=8, key=k("d_model"), **KEEP)
    b.number_input("Context (T)", 8, 2048, step=8, key=k("context_length"), **KEEP)
    msg("n_layers", "n_heads", "d_model", "context_length")
    a.selectbox("Activation", ["gelu", "relu", "swiglu"], key=k("activation"), **KEEP)
    b.selectbox("Norm position", ["pre", "post"], key=k("norm_position"), **KEEP)
    a.selectbox(
        "Position encoding",
        ["learned", "sinusoidal", "rope", "none"],
        key=k("pos_encoding"),
        **KEEP,
    )
    b.selectbox("Norm", ["layernorm", "rmsnorm"], key=k("norm"), **KEEP)
    st.number_input("Dropout", 0.0, 0.9, step=0.05, key=k("dropout"), **KEEP)
    msg("activation", "norm_position", "pos_encoding", "norm", "dropout", "")


def choice(label: str, options: dict[str, str], name: str) -> None:
    """A row of radio buttons over `options` (key -> what the user reads), kept in state `name`."""
    st.radio(label, list(options), format_func=options.get, key=k(name), **KEEP, horizontal=True)


def data_fields(msg, *, fine: bool) -> None:
    st.subheader("Data", divider="gray")
    choice("Corpus", trainjobs.CORPORA, "corpus")
    if st.session_state[k("corpus")] == "upload":
        st.file_uploader("A UTF-8 text file", type=["txt", "md"], key=k("upload"))
    st.slider("Corpus size (kB)", 10, 5000, step=10, key=k("corpus_kb"), **KEEP)
    msg("corpus", "corpus_bytes")
    if fine:
        st.caption("Tokenizer: the base model's (a fine-tune cannot change the vocabulary).")
        return
    choice("Tokenizer", trainjobs.TOKENIZERS, "tokenizer")
    if st.session_state[k("tokenizer")] == "bpe":
        st.number_input("BPE vocabulary size (V)", 260, 16384, step=64, key=k("vocab_size"), **KEEP)
    msg("tokenizer", "vocab_size")


def training_fields(spec, errors: dict, msg, base) -> None:
    st.subheader("Training", divider="gray")
    a, b = st.columns(2)
    a.number_input("Steps", 1, 1_000_000, step=50, key=k("max_steps"), **KEEP)
    b.number_input("Learning rate", 1e-6, 1.0, step=1e-4, format="%.5f", key=k("lr"), **KEEP)
    a.number_input("Warm-up steps", 0, 100_000, step=10, key=k("warmup_steps"), **KEEP)
    b.number_input("Gradient clip (0 = off)", 0.0, 100.0, step=0.5, key=k("grad_clip"), **KEEP)
    a.number_input("Batch (sequences per forward)", 1, 512, key=k("micro_batch"), **KEEP)
    b.number_input("Accumulation steps", 1, 64, key=k("accum"), **KEEP)
    a.number_input("Evaluate every (steps)", 0, 100_000, step=5, key=k("eval_every"), **KEEP)
    b.number_input("Time-lapse frames", 0, 64, key=k("frames"), **KEEP)
    a.number_input("Seed", 0, 2**31 - 1, key=k("seed"), **KEEP)
    b.checkbox("bf16 autocast", key=k("bf16"), **KEEP)
    if base is not None:  # (left out while the base has an error: its bound is unknown)
        context = base.context_length
        a.number_input("Tokens per sequence", min(8, context), context, step=8, key=k("ft_seq"),
                       help="At most the base model's context; shorter windows train faster.",
                       **KEEP)  # fmt: skip
    listed = ("max_steps", "lr", "warmup_steps", "grad_clip", "seq_len", "batch_size")
    msg(*[f for f in errors if f not in DEFAULTS and f not in ("corpus_bytes", "", *listed)])
    msg(*listed)
    st.text_input("Run name (optional)", key=k("label"), **KEEP, max_chars=120)
    msg("label")
    st.text_input("Sample prompt", key=k("sample_prompt"), **KEEP, max_chars=200,
                  help="Each evaluation continues this text, so you can read what the model "
                  "writes as it learns (empty: no samples). Fine-tuning on your own text? Start "
                  "it the way your text starts.")  # fmt: skip
    st.subheader("Estimate", divider="gray")
    if not errors:
        show_estimate(spec)
    else:
        st.info("Fix the fields marked above to see the estimate.")
    failed = st.session_state.pop(k("start_error"), None)
    if failed:
        st.error(f"Could not start: {trainpanels.lit(failed)}")
    st.button(
        "Start training",
        type="primary",
        disabled=bool(errors),
        on_click=on_start,
        key=k("start"),
        icon=":material/play_arrow:",
    )


def show_estimate(spec) -> None:
    try:
        est = trainjobs.estimate(spec)
    except Exception as exc:  # noqa: BLE001 - an estimate must never break the form
        st.warning(f"No estimate for this configuration: {exc}")
        return
    mem = est["memory"]
    a, b, c = st.columns(3)
    a.metric("Parameters", f"{est['params'] / 1e6:.2f} M")
    fb = trainpanels.fmt_bytes
    b.metric("Memory", fb(mem.get("total", 0)))
    c.metric("Time (rough)", trainpanels.fmt_duration(est["seconds"]))
    first = "loading the base model" if spec.init_from else "tokenizer training"
    st.caption(
        f"{est['tokens'] / 1e6:.2f} M tokens ({est['tokens_per_step']:,} per step), about "
        f"{est['step_seconds'] * 1000:.0f} ms per step ({est['basis']}); plus {first} "
        f"and time-lapse frames. Memory: weights {fb(mem.get('weights', 0))}, AdamW "
        f"{fb(mem.get('adamw', 0))}, activations {fb(mem.get('activations', 0))}."
    )
    reg = jobs.registry()
    n_busy = len(reg.running()) + len(reg.queued())
    if n_busy >= reg.max_concurrent:
        st.warning(
            f"{n_busy} training(s) already running or waiting on this server (at most "
            f"{reg.max_concurrent} at once); yours will wait in the queue."
        )


# ---------------------------------------------------------------- Watch


def view_watch() -> None:
    rows = trainviews.run_rows()
    names = [r["name"] for r in rows]
    trainpanels.show_queue()
    if not names:
        st.info("No runs yet: start one under **New run**.")
        return
    current = st.session_state.get(k("run"))
    if current not in names:
        active = [r["name"] for r in rows if r["state"] in jobs.ACTIVE]
        st.session_state[k("run")] = active[0] if active else names[0]
    st.selectbox("Run", names, key=k("run"))
    run_id = st.session_state[k("run")]
    job = jobs.registry().get(run_id)
    if job is not None and job.active:
        session = st.session_state.setdefault(k("session"), uuid.uuid4().hex)
        every = trainviews.poll_interval(session, base=POLL_S)
        st.fragment(run_every=every)(_live)(run_id)
    else:
        live_panel(run_id)


def _live(run_id: str) -> None:
    reg = jobs.registry()
    job = reg.get(run_id)
    row = trainviews.run_row(run_id)
    if row is None:
        st.warning("This run no longer exists.")
        return
    state = row["state"]
    m = runlog.run_log(row["path"])
    top = st.columns([4, 1])
    with top[0]:
        trainpanels.show_status(run_id, state, job, row, m)
    with top[1]:
        if state in jobs.ACTIVE:
            if st.button("Stop", key=k("stop"), icon=":material/stop:"):
                trainjobs.stop(run_id)
                st.toast("Stopping after the current step (a checkpoint is kept).")
        elif row["resumable"] and st.button("Resume", key=k("resume"), icon=":material/replay:"):
            trainpanels.resume_run(row)
    trainpanels.draw_live_charts(m, row)
    if job is not None and not job.active and st.session_state.get(k("polling")) == run_id:
        st.session_state[k("polling")] = None
        st.rerun(scope="app")  # stop the timer and refresh the runs list and the picker
    if job is not None and job.active:
        st.session_state[k("polling")] = run_id


live_panel = st.fragment(_live)


# ---------------------------------------------------------------- page


def main() -> None:
    init_defaults()
    st.title("Train")
    st.caption(
        "Pre-train a small GPT on this computer, or fine-tune one on your own text, and watch "
        "it learn: the run continues if you close the tab, and its link brings you back to it."
    )
    view = st.segmented_control("View", VIEWS, key=k("view"), label_visibility="collapsed")
    view = view or VIEWS[0]
    if st.query_params.get("view") != view:
        st.query_params["view"] = view
    if view == "New run":
        view_new_run()
    elif view == "Watch":
        view_watch()
    elif view == "Runs":
        trainpanels.view_runs()
    else:
        trainpanels.view_timelapse()
    run = st.session_state.get(k("run"))
    if run and st.query_params.get("run") != run:
        st.query_params["run"] = run


main()
