"""The Train page's Runs and Time-lapse views (Streamlit drawing; data from explorer/trainviews.py).

Split from pages/train.py to keep the page readable: the Runs view lists runs with their live
state, overlays loss curves, and renames / deletes (after a confirmation) / downloads a run; the
Time-lapse view is one st.fragment in which a single step slider moves every view together.
Session keys are prefixed "train_" like the page's.
"""

from __future__ import annotations

import streamlit as st

from explorer import jobs, registry, runlog, trainjobs, trainviews, widgets
from explorer.plots import training as tp

# errors and reasons carry run names and paths (any text): markdown shown as typed
lit = widgets.md_literal

WRITE_ERROR = "RunWriteError: "  # jobs.describe_error of core.runs.RunWriteError


def k(name: str) -> str:
    """The page's session-state key for a setting (STYLE rule 15: page-prefixed keys)."""
    return f"train_{name}"


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


def show_status(run_id: str, state: str, job, row: dict, m) -> None:
    step, total = m.last_step, row["max_steps"] or m.max_steps or 0
    st.markdown(f"Run `{run_id}` · **{state}**")  # run names are [A-Za-z0-9_.-] only
    if row.get("from"):
        st.caption(
            f"Fine-tuned from {lit(row['from'])}: step 0 on the loss curves is the base model "
            "on this text, before any update."
        )
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
        error = registry.hide_paths(error) if error else error  # a classroom sees it
        if error and error.startswith(WRITE_ERROR):  # full disk / read-only: say so plainly
            st.error(f"The run stopped: {lit(error.removeprefix(WRITE_ERROR))}")
        else:
            st.error(f"The run crashed: {lit(error)}")
        if job is not None and job.traceback:
            # a Python traceback, or what the server knows of a process that died without one
            python_tb = job.traceback.startswith("Traceback")
            details = registry.hide_paths(job.traceback)
            with st.expander("Traceback" if python_tb else "Details"):
                if python_tb:
                    st.code(details, language=None)
                else:
                    st.markdown(lit(details))
        if row["resumable"] and row["checkpoint"]:
            st.caption("Resume continues from its last checkpoint.")
    elif state == "diverged":
        reason = (m.end or {}).get("reason") or row["error"] or "the loss stopped being finite"
        st.error(
            f"The run diverged at step {step}: {lit(reason)}. The last good checkpoint is kept."
        )
    elif state == "interrupted":
        why = f" ({lit(registry.hide_paths(row['error']))})" if row["error"] else ""
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
        if row["checkpoint"]:
            explore_button(run_id)


def draw_live_charts(m, row: dict) -> None:
    if not m.step:
        return
    figs = trainviews.live_figures(row["path"], m, clip=row.get("grad_clip"))
    c1, c2 = st.columns(2)
    for i, (name, fig) in enumerate(figs.items()):
        (c1 if i % 2 == 0 else c2).plotly_chart(fig, key=k(f"fig_{name}"))
    with c2:
        st.markdown("**Samples at each evaluation** (newest first)")
        for s in reversed(m.samples[-6:]):
            st.text(f"step {s['step']}: {s['prompt']}{s['text']}")


def _pick_model(name: str) -> None:
    # a callback runs before the script, so it may set the sidebar picker's widget key
    from explorer import state

    st.session_state[state.MODEL_KEY] = f"run:{name}"


def explore_button(name: str) -> None:
    """Select the run in the sidebar's model picker, for every page to show."""
    if st.button(
        "Explore this run on every page",
        key=k(f"explore_{name}"),
        on_click=_pick_model,
        args=(name,),
        icon=":material/visibility:",
    ):
        st.rerun(scope="app")  # from inside the live fragment: redraw the sidebar too


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


def resume_run(row: dict) -> None:
    try:
        trainjobs.resume(row["path"])
    except (ValueError, OSError) as exc:
        st.error(f"Could not resume: {lit(registry.hide_paths(str(exc)))}")
        return
    st.rerun(scope="app")


# ---------------------------------------------------------------- Runs


def view_runs() -> None:
    rows = trainviews.run_rows()
    show_queue()
    if not rows:
        st.info("No runs yet.")
        return
    cols = ["name", "state", "step", "max_steps", "train_loss", "val_loss", "layers", "heads"]
    cols += ["width", "norm", "activation", "position", "from", "created"]
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
                st.error(lit(registry.hide_paths(str(exc))))
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
            resume_run(row)
    with c3:
        # a widget label is markdown, and a run name from run.json is any text: shown as typed
        sure = st.checkbox(
            f"Yes, delete {widgets.md_literal(name)}", key=k("delete_sure"), disabled=busy
        )
        if st.button("Delete", key=k("delete"), disabled=busy or not sure, type="primary"):
            try:
                runlog.delete_run(trainjobs.runs_root_dir(), name)
            except (ValueError, OSError) as exc:
                st.error(lit(registry.hide_paths(str(exc))))
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
        st.warning(f"Cannot read this time-lapse: {lit(registry.hide_paths(str(exc)))}")
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
