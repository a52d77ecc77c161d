"""Train: configure and start a run, watch it learn live, compare runs, scrub the time-lapse.

A training runs in a plain background thread held by the process-wide job registry
(explorer/jobs.py), never in this script: a rerun or a closed tab cannot kill it. The run id sits in
the URL (?run=...), so a refresh or a second tab reattaches. The live panel is an
st.fragment that polls every few seconds, and only while its run is queued or training
(FIELD-NOTES: one server manages ~10 fragment ticks/s in all). Book: Raschka ch. 5 (pre-training).
"""

from __future__ import annotations

import uuid

import streamlit as st

from explorer import jobs, runlog, trainjobs, trainviews
from explorer.plots import training as tp

POLL_S = 3  # seconds between live refreshes while a run trains
VIEWS = ("New run", "Watch", "Runs", "Time-lapse")
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
}


def k(name: str) -> str:
    return f"train_{name}"


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


def spec_from_state() -> trainjobs.TrainSpec:
    s = lambda name: st.session_state[k(name)]  # noqa: E731
    micro, accum = int(s("micro_batch")), int(s("accum"))
    return trainjobs.TrainSpec(
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
        },
        corpus=s("corpus"),
        corpus_bytes=int(s("corpus_kb")) * 1000,
        tokenizer=s("tokenizer"),
        vocab_size=int(s("vocab_size")),
    )


def upload_bytes() -> bytes | None:
    f = st.session_state.get(k("upload"))
    return f.getvalue() if f is not None else None


def on_start() -> None:
    spec = spec_from_state()
    try:
        run_id = trainjobs.start(spec, upload=upload_bytes() if spec.corpus == "upload" else None)
    except (ValueError, OSError) as exc:
        st.session_state[k("start_error")] = str(exc)
        return
    st.session_state[k("run")] = run_id
    st.session_state[k("view")] = "Watch"


# ---------------------------------------------------------------- New run


def view_new_run() -> None:
    from core.config import PRESETS

    errors: dict[str, str] = {}
    spec = spec_from_state()
    errors = trainjobs.validate(spec, upload_bytes=len(upload_bytes() or b""))

    def msg(*fields):
        for f in fields:
            if f in errors:
                st.error(errors[f], icon=":material/error:")

    st.selectbox(
        "Preset",
        ["custom", *PRESETS],
        key=k("preset"),
        on_change=apply_preset,
        help="Fills the sizes below; change any of them afterwards for your own shape.",
    )
    c1, c2 = st.columns(2)
    with c1:
        st.subheader("Model", divider="gray")
        a, b = st.columns(2)
        a.number_input("Layers (L)", 1, 24, key=k("n_layers"))
        b.number_input("Heads (H)", 1, 32, key=k("n_heads"))
        a.number_input("Width (C)", 8, 2048, step=8, key=k("d_model"))
        b.number_input("Context (T)", 8, 2048, step=8, key=k("context_length"))
        msg("n_layers", "n_heads", "d_model", "context_length")
        a.selectbox("Activation", ["gelu", "relu", "swiglu"], key=k("activation"))
        b.selectbox("Norm position", ["pre", "post"], key=k("norm_position"))
        a.selectbox(
            "Position encoding", ["learned", "sinusoidal", "rope", "none"], key=k("pos_encoding")
        )
        b.selectbox("Norm", ["layernorm", "rmsnorm"], key=k("norm"))
        st.number_input("Dropout", 0.0, 0.9, step=0.05, key=k("dropout"))
        msg("activation", "norm_position", "pos_encoding", "norm", "dropout", "")
        st.subheader("Data", divider="gray")
        st.radio(
            "Corpus",
            list(trainjobs.CORPORA),
            format_func=trainjobs.CORPORA.get,
            key=k("corpus"),
            horizontal=True,
        )
        if st.session_state[k("corpus")] == "upload":
            st.file_uploader("A UTF-8 text file", type=["txt", "md"], key=k("upload"))
        st.slider("Corpus size (kB)", 10, 5000, step=10, key=k("corpus_kb"))
        msg("corpus", "corpus_bytes")
        st.radio(
            "Tokenizer",
            list(trainjobs.TOKENIZERS),
            format_func=trainjobs.TOKENIZERS.get,
            key=k("tokenizer"),
            horizontal=True,
        )
        if st.session_state[k("tokenizer")] == "bpe":
            st.number_input("BPE vocabulary size (V)", 260, 16384, step=64, key=k("vocab_size"))
        msg("tokenizer", "vocab_size")
    with c2:
        st.subheader("Training", divider="gray")
        a, b = st.columns(2)
        a.number_input("Steps", 1, 1_000_000, step=50, key=k("max_steps"))
        b.number_input("Learning rate", 1e-6, 1.0, step=1e-4, format="%.5f", key=k("lr"))
        a.number_input("Warm-up steps", 0, 100_000, step=10, key=k("warmup_steps"))
        b.number_input("Gradient clip (0 = off)", 0.0, 100.0, step=0.5, key=k("grad_clip"))
        a.number_input("Batch (sequences per forward)", 1, 512, key=k("micro_batch"))
        b.number_input("Accumulation steps", 1, 64, key=k("accum"))
        a.number_input("Evaluate every (steps)", 0, 100_000, step=5, key=k("eval_every"))
        b.number_input("Time-lapse frames", 0, 64, key=k("frames"))
        a.number_input("Seed", 0, 2**31 - 1, key=k("seed"))
        b.checkbox("bf16 autocast", key=k("bf16"))
        msg(*[f for f in errors if f not in DEFAULTS and f not in ("corpus_bytes", "")])
        msg("max_steps", "lr", "warmup_steps", "grad_clip", "seq_len", "batch_size")
        st.text_input("Run name (optional)", key=k("label"), max_chars=120)
        msg("label")
        st.subheader("Estimate", divider="gray")
        if not errors:
            show_estimate(spec)
        else:
            st.info("Fix the fields marked above to see the estimate.")
        failed = st.session_state.pop(k("start_error"), None)
        if failed:
            st.error(f"Could not start: {failed}")
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
    b.metric("Memory", fmt_bytes(mem.get("total", 0)))
    c.metric("Time (rough)", fmt_duration(est["seconds"]))
    st.caption(
        f"{est['tokens'] / 1e6:.2f} M tokens ({est['tokens_per_step']:,} per step), about "
        f"{est['step_seconds'] * 1000:.0f} ms per step ({est['basis']}); plus tokenizer training "
        f"and time-lapse frames. Memory: weights {fmt_bytes(mem.get('weights', 0))}, AdamW "
        f"{fmt_bytes(mem.get('adamw', 0))}, activations {fmt_bytes(mem.get('activations', 0))}."
    )
    reg = jobs.registry()
    n_busy = len(reg.running()) + len(reg.queued())
    if n_busy >= reg.max_concurrent:
        st.warning(
            f"{n_busy} training(s) already running or waiting on this server (at most "
            f"{reg.max_concurrent} at once); yours will wait in the queue."
        )


def fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


# ---------------------------------------------------------------- Watch


def view_watch() -> None:
    rows = trainviews.run_rows()
    names = [r["name"] for r in rows]
    show_queue()
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


def show_queue() -> None:
    reg = jobs.registry()
    running, queued = reg.running(), reg.queued()
    if running or queued:
        parts = [f"training: {', '.join(j.run_id for j in running) or '—'}"]
        if queued:
            parts.append(
                "waiting: " + ", ".join(f"{i + 1}. {j.run_id}" for i, j in enumerate(queued))
            )
        st.caption(f"Server queue (at most {reg.max_concurrent} at once) · " + " · ".join(parts))


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
        show_status(run_id, state, job, row, m)
    with top[1]:
        if state in jobs.ACTIVE:
            if st.button("Stop", key=k("stop"), icon=":material/stop:"):
                trainjobs.stop(run_id)
                st.toast("Stopping after the current step (a checkpoint is kept).")
        elif row["resumable"] and st.button("Resume", key=k("resume"), icon=":material/replay:"):
            resume(row)
    draw_live_charts(m, row)
    if job is not None and not job.active and st.session_state.get(k("polling")) == run_id:
        st.session_state[k("polling")] = None
        st.rerun(scope="app")  # stop the timer and refresh the runs list and the picker
    if job is not None and job.active:
        st.session_state[k("polling")] = run_id


live_panel = st.fragment(_live)


def resume(row: dict) -> None:
    try:
        trainjobs.resume(row["path"])
    except (ValueError, OSError) as exc:
        st.error(f"Could not resume: {exc}")
        return
    st.rerun(scope="app")


def show_status(run_id: str, state: str, job, row: dict, m) -> None:
    step, total = m.last_step, row["max_steps"] or m.max_steps or 0
    st.markdown(f"Run `{run_id}` · **{state}**")  # run names are [A-Za-z0-9_.-] only
    if state == "queued":
        pos = jobs.registry().queue_position(run_id)
        st.info(f"Waiting for a free slot: number {pos} in the queue.")
    elif state == "running":
        note = job.progress[2] if job is not None else ""
        if not m.step and note:
            st.progress(0.0, text=f"{note}…")
        else:
            eta = m.eta_seconds()
            tps = m.tokens_per_s[-1] if m.tokens_per_s else 0
            st.progress(
                min(1.0, step / total) if total else 0.0,
                text=f"step {step}/{total} · ETA {fmt_duration(eta)} · {tps:,.0f} tokens/s",
            )
    elif state == "failed" or (job is not None and job.state == jobs.FAILED):
        error = job.error if job is not None and job.error else row["error"]
        st.error(f"The run crashed: {error}")
        if job is not None and job.traceback:
            with st.expander("Traceback"):
                st.code(job.traceback, language=None)
    elif state == "diverged":
        reason = (m.end or {}).get("reason") or row["error"] or "the loss stopped being finite"
        st.error(f"The run diverged at step {step}: {reason}. The last good checkpoint is kept.")
    elif state == "interrupted":
        why = f" ({row['error']})" if row["error"] else ""
        st.warning(
            f"The run was interrupted at step {step}{why}, e.g. by a server restart. "
            + ("Resume continues from its last checkpoint." if row["resumable"] else "")
        )
    elif state in ("done", "stopped"):
        val = row["val_loss"]
        st.success(
            f"Finished ({state}) at step {step}"
            + (f", val loss {val:.3f}" if val is not None else "")
            + ". It is now in the sidebar's model picker, so every page can explore it."
        )


def draw_live_charts(m, row: dict) -> None:
    if not m.step:
        return
    clip = row.get("grad_clip")
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        tp.loss_figure(m.step, m.loss, m.eval_step, m.eval_val, eval_train_loss=m.eval_train),
        key=k("fig_loss"),
    )
    c2.plotly_chart(tp.lr_figure(m.step, m.lr), key=k("fig_lr"))
    c1.plotly_chart(tp.grad_norm_figure(m.step, m.grad_norm, m.clipped, clip=clip), key=k("fig_gn"))
    c2.plotly_chart(tp.layer_grad_norms_figure(m.layer_step, m.layer_matrix()), key=k("fig_lgn"))
    c1.plotly_chart(tp.tokens_per_s_figure(m.step, m.tokens_per_s), key=k("fig_tps"))
    with c2:
        st.markdown("**Samples at each evaluation** (newest first)")
        for s in reversed(m.samples[-6:]):
            st.text(f"step {s['step']}: {s['prompt']}{s['text']}")


# ---------------------------------------------------------------- Runs


def view_runs() -> None:
    rows = trainviews.run_rows()
    show_queue()
    if not rows:
        st.info("No runs yet.")
        return
    cols = ["name", "state", "step", "max_steps", "train_loss", "val_loss", "layers", "heads"]
    cols += ["width", "norm", "activation", "position", "created"]
    st.dataframe([{c: r[c] for c in cols} for r in rows], hide_index=True, key=k("table"))
    by_name = {r["name"]: r for r in rows}

    st.subheader("Compare runs", divider="gray")
    paths = {n: r["path"] for n, r in by_name.items()} | trainviews.shipped_log_source()
    pick = st.multiselect("Runs to overlay", list(paths), default=list(paths)[:2], key=k("cmp"))
    a, b = st.columns(2)
    metric = a.radio("Curve", ["train", "val"], horizontal=True, key=k("cmp_metric"))
    smooth = b.slider("Smoothing (EMA)", 0.0, 0.99, 0.8, key=k("cmp_smooth"))
    curves = trainviews.overlay_curves({n: paths[n] for n in pick}, metric)
    st.plotly_chart(tp.overlay_figure(curves, smooth=1 - smooth), key=k("fig_cmp"))

    st.subheader("Manage a run", divider="gray")
    name = st.selectbox("Run", list(by_name), key=k("manage"))
    row = by_name[name]
    busy = row["state"] in jobs.ACTIVE
    c1, c2, c3 = st.columns(3)
    with c1:
        new = st.text_input("New name", value=name, key=k("rename_to"), disabled=busy)
        if st.button("Rename", key=k("rename"), disabled=busy or new == name):
            try:
                runlog.rename_run(trainjobs.runs_root_dir(), name, new.strip())
            except (ValueError, OSError) as exc:
                st.error(str(exc))
            else:
                st.session_state[k("run")] = new.strip()
                st.rerun()
    with c2:
        if row["checkpoint"]:
            st.download_button(
                "Download checkpoint (.zip)",
                data=lambda p=row["path"]: runlog.checkpoint_zip(p),
                file_name=f"{name}.zip",
                mime="application/zip",
                key=k("dl_ckpt"),
                on_click="ignore",
            )
        st.download_button(
            "Download log (.csv)",
            data=lambda p=row["path"]: runlog.log_csv(p),
            file_name=f"{name}.csv",
            mime="text/csv",
            key=k("dl_csv"),
            on_click="ignore",
        )
        if row["resumable"] and st.button("Resume", key=k("resume_runs")):
            resume(row)
    with c3:
        sure = st.checkbox(f"Yes, delete {name}", key=k("delete_sure"), disabled=busy)
        if st.button("Delete", key=k("delete"), disabled=busy or not sure, type="primary"):
            try:
                runlog.delete_run(trainjobs.runs_root_dir(), name)
            except (ValueError, OSError) as exc:
                st.error(str(exc))
            else:
                st.session_state.pop(k("delete_sure"), None)
                st.rerun()
        if busy:
            st.caption("Stop the run before renaming or deleting it.")


# ---------------------------------------------------------------- Time-lapse


def view_timelapse() -> None:
    sources = trainviews.timelapse_sources()
    if not sources:
        st.info("Nothing has a time-lapse yet: runs record one when Time-lapse frames > 0.")
        return
    run_label = f"run: {st.session_state.get(k('run'))}"
    if st.session_state.get(k("tl_source")) not in sources:  # start on the run being watched
        st.session_state[k("tl_source")] = (
            run_label if run_label in sources else next(iter(sources))
        )
    label = st.selectbox("Model", list(sources), key=k("tl_source"))
    timelapse_panel(sources[label])


@st.fragment
def timelapse_panel(run_dir: str) -> None:
    try:
        v = trainviews.load_timelapse_view(run_dir)
    except (FileNotFoundError, ValueError, OSError) as exc:
        st.warning(f"Cannot read this time-lapse: {exc}")
        return
    if not v.steps:
        st.info("No frames recorded yet; they appear as the run passes its frame steps.")
        return
    step = st.select_slider("Training step", v.steps, value=v.steps[-1], key=k("tl_step"))
    i = v.frame_of(step)
    m = runlog.run_log(run_dir)
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        tp.loss_figure(m.step, m.loss, m.eval_step, m.eval_val, cursor=step, smooth=0.3),
        key=k("tl_loss"),
    )
    kinds = [n.replace("_", "-") for n in v.score_names]
    with c2:
        kind = st.radio("Head role", kinds, horizontal=True, key=k("tl_kind"))
        st.plotly_chart(
            tp.head_scores_figure(v.steps, v.head_scores, kind=kinds.index(kind), cursor=step),
            key=k("tl_heads"),
        )
    st.plotly_chart(
        tp.attention_grid_figure(v.attention[i], v.probe_labels, step=step), key=k("tl_att")
    )
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        tp.embedding_map_figure(
            v.embedding[i], v.vocab_labels, categories=v.categories, extent=v.extent, step=step
        ),
        key=k("tl_map"),
    )
    with c2:
        st.markdown(
            f"**Per-token loss on the probe text at step {step}** (redder = more surprised)"
        )
        st.html(tp.token_loss_html(v.probe_labels, v.token_loss[i], vmax=v.loss_max))
        st.markdown(f"**Greedy sample at step {step}**")
        st.text(f"{v.sample_prompt}{v.samples[i]}" if i < len(v.samples) else "")
    st.plotly_chart(tp.head_scores_at_step_figure(v.head_scores[i], step=step), key=k("tl_hstep"))


# ---------------------------------------------------------------- page


def main() -> None:
    init_defaults()
    st.title("Train")
    st.caption(
        "Pre-train a small GPT on this computer and watch it learn: the run continues if you "
        "close the tab, and its link brings you back to it."
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
        view_runs()
    else:
        view_timelapse()
    run = st.session_state.get(k("run"))
    if run and st.query_params.get("run") != run:
        st.query_params["run"] = run


main()
