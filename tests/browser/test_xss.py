"""XSS in a real browser: the payload corpus (tests/xss_corpus.py) through every place text is shown.

One server of this module's own, with a runs root the module builds:
  xss-model  a finished run whose BPE keeps each corpus line as ONE token and whose tiny GPT puts
             nearly all probability on those tokens, so model output, sampling bars, attention
             axes, logit-lens cells, embedding labels and neighbours are all payloads
  a run whose folder and run.json name are payloads (the Train page's lists, legends, labels)
Surfaces: prompt and chips (Tokenize, Sample), generated text, plotly ticks and hover labels
(hovered with the mouse, read from plotly's hover layer), heat-text, embedding search, run names,
the run-name field, uploaded corpora (Tokenize and Train), a model link from the URL.
For each: no dialog, no marker set, no element a payload could add, and the payload text shown
as typed. Screenshots: tests/browser/screenshots/xss_*.png.
"""

from __future__ import annotations

import json
import time
import types

import pytest
from playwright.sync_api import expect

from explorer.plots.common import token_label
from tests.browser.conftest import serve
from tests.xss_corpus import BLOCKS, INJECTED_JS, LINES, LONG, MARKER_JS, PAYLOADS, TEXT, shown_as

MODEL_RUN = "xss-model"
EVIL_DIR = "xss-<img src=x onerror=alert('dir')> $x$ [d](javascript:alert(1))"
EVIL_NAME = PAYLOADS["img_alert"] + " " + PAYLOADS["md_link"] + " **b** <b>x</b>"
PROMPT = TEXT + "\n" + BLOCKS


def _write_run(path, name, created, *, samples=()):
    events = [
        {"event": "start", "step": 0, "max_steps": 10, "tokens_per_step": 64, "num_params": 1},
        *[
            {
                "event": "step",
                "step": s,
                "loss": 6.0 - 0.3 * s,
                "lr": 1e-3,
                "grad_norm": 1.0,
                "clipped": False,
                "tokens": 64 * s,
                "tokens_per_s": 1000.0,
                "elapsed": 0.1 * s,
            }
            for s in range(1, 11)
        ],  # fmt: skip
        *[{"event": "sample", "step": 10, "prompt": p, "text": t, "ids": []} for p, t in samples],
        {"event": "done", "step": 10, "reason": "finished"},
    ]
    path.mkdir(parents=True, exist_ok=True)
    (path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    meta = {
        "name": name, "status": "done", "created": created, "seed": 0, "commit": None,
        "command": "test", "model": {"n_layers": 1, "n_heads": 2, "d_model": 32},
        "train": {"max_steps": 10, "grad_clip": 1.0}, "final": {},
    }  # fmt: skip
    (path / "run.json").write_text(json.dumps(meta))


def _build_runs(root):
    import torch

    from core.checkpoint import save_checkpoint
    from core.config import ModelConfig
    from core.model import GPT
    from core.timelapse import TimelapseRecorder
    from core.tokenizer import train_bpe

    tok = train_bpe("\n".join(LINES * 3), 1024, pattern=r"[^\n]+|\n")
    ids = [tok.encode(line) for line in LINES]
    assert all(len(i) == 1 for i in ids), "each corpus line must be one token"
    torch.manual_seed(0)
    C = 32
    model = GPT(ModelConfig(tok.vocab_size, context_length=64, d_model=C, n_layers=1, n_heads=2))
    with torch.no_grad():  # logits = ln_f(x) @ E.T = u @ E.T: the payload tokens win everywhere
        u = torch.zeros(C)
        u[0] = 1.0
        model.ln_f.weight.zero_()
        model.ln_f.bias.copy_(u)
        v = torch.zeros(C)
        v[1] = 0.6  # spreads them on the maps (v is orthogonal to u: the logits stay as they are)
        for j, (i,) in enumerate(ids):
            model.tok_emb.weight[i] = u * (12.0 - 0.05 * j) + v * j
    run = root / MODEL_RUN
    save_checkpoint(run / "ckpt" / "step_000010", model, tokenizer=tok, meta={"step": 10})
    (run / "ckpt" / "LATEST").write_text("step_000010")
    tok.save(run / "tokenizer.json")
    probe = types.SimpleNamespace(timelapse_text=TEXT, sample_prompt=PAYLOADS["plotly_tags"])
    TimelapseRecorder(run / "timelapse", model.config, tok, probe).record(model, 10)
    now = time.time()
    _write_run(run, MODEL_RUN, now - 60, samples=[(PAYLOADS["plotly_tags"], PAYLOADS["script"])])
    _write_run(root / EVIL_DIR, EVIL_NAME, now)


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """This module's own server (overrides the shared one for open_app): its runs root holds
    the payload runs, so the shared runs root of the other browser tests stays as they expect."""
    root = tmp_path_factory.mktemp("xss_runs")
    _build_runs(root)
    with serve(root, tmp_path_factory.mktemp("xss_server") / "streamlit.log") as base:
        yield base


def assert_clean(page, dialogs, where: str) -> None:
    """Nothing ran, nothing was injected, nothing crashed."""
    time.sleep(0.3)  # an onerror fires after the image fails to load
    assert page.evaluate(MARKER_JS), f"{where}: a payload ran"
    bad = page.locator("[data-testid='stApp']").evaluate(INJECTED_JS)
    assert bad == [], f"{where}: injected {bad}"
    assert dialogs == [], f"{where}: dialog {dialogs}"
    assert page.locator("[data-testid='stException']").count() == 0, where


def main_text(page) -> str:
    return shown_as(page.locator("[data-testid='stMain']").inner_text())


# The point (bar, marker or heatmap cell) whose hover, text or axis label contains `needle`
# (in the figure's data, i.e. escaped), as viewport pixels.
POINT_JS = """([sel, needle]) => {
  const gd = document.querySelector(sel);
  if (!gd || !gd._fullData) return null;
  const L = gd._fullLayout, box = gd.getBoundingClientRect();
  const has = v => typeof v === 'string' && v.includes(needle);
  for (const t of gd._fullData) {
    if (t.visible !== true) continue;
    const xa = L['xaxis' + (t.xaxis || 'x').slice(1)], ya = L['yaxis' + (t.yaxis || 'y').slice(1)];
    const xs = Array.from(t.x || []), ys = Array.from(t.y || []);
    let x = null, y = null;
    if (t.type === 'heatmap') {
      const text = t.text || [];
      let r = text.findIndex(row => Array.isArray(row) && row.some(has));
      let c = r >= 0 ? text[r].findIndex(has) : xs.findIndex(has);
      if (r < 0) r = ys.findIndex(has);
      if (r < 0 && c >= 0) r = ys.length - 1;  // the last query row sees every key
      if (c < 0 && r >= 0) c = 0;
      if (r < 0) continue;
      x = xs.length ? xs[c] : c; y = ys.length ? ys[r] : r;
    } else {
      const texts = Array.from(t.hovertext || t.text || []);
      let i = texts.findIndex(has);
      if (t.type.startsWith('scatter')) {  // a map: BPE's partial merges share the text, so
        let far = -1;                      // take the payload token, far out by construction
        texts.forEach((v, k) => { const d = xs[k] ** 2 + ys[k] ** 2;
          if (has(v) && d > far) { far = d; i = k; } });
      }
      if (i < 0) i = xs.findIndex(has);
      if (i < 0) i = ys.findIndex(has);
      if (i < 0) continue;
      x = xs[i]; y = ys[i];
      if (t.type === 'bar') { if (t.orientation === 'h') x = x / 2; else y = y / 2; }
    }
    return {x: box.left + xa._offset + xa.c2p(xa.d2c(x)),
            y: box.top + ya._offset + ya.c2p(ya.d2c(y))};
  }
  return null;
}"""


def hover(page, key: str, needle: str) -> str:
    """Move the mouse onto the point of chart `key` labelled with `needle` (escaped form) and
    return the text of plotly's hover layer."""
    sel = f".st-key-{key} .js-plotly-plot"
    page.locator(sel).first.scroll_into_view_if_needed()
    time.sleep(0.3)
    xy = page.evaluate(POINT_JS, [sel, needle])
    assert xy is not None, f"no point labelled {needle!r} in {key}"
    page.mouse.move(xy["x"] + 1, xy["y"] + 1)
    page.mouse.move(xy["x"], xy["y"])
    page.wait_for_function(
        "sel => (document.querySelector(sel + ' .hoverlayer')?.textContent || '').length > 0",
        arg=sel,
        timeout=5000,
    )
    return page.locator(sel + " .hoverlayer").first.text_content()


def svg_text(page, key: str) -> str:
    """Every tick, legend and title string of chart `key`, as displayed."""
    return page.locator(f".st-key-{key} .js-plotly-plot").first.evaluate(
        "g => Array.from(g.querySelectorAll('text')).map(t => t.textContent).join('\\n')"
    )


WIDE_JS = """() => { const m = document.querySelector("[data-testid='stMain']"); const R = m.getBoundingClientRect().right; const out=[m.scrollWidth + '/' + m.clientWidth];
 for (const e of m.querySelectorAll('*')) { const b = e.getBoundingClientRect(); if (b.right > R + 5) out.push(e.tagName + ' ' + (e.getAttribute('data-testid')||'') + ' ' + e.className.toString().slice(0,40) + ' ' + Math.round(b.right) + ' ' + (e.textContent||'').slice(0,30)); }
 return out.slice(0, 12).join(' | '); }"""
ESC_TAGS = "&lt;b&gt;x&lt;/b&gt;"  # PAYLOADS["plotly_tags"] as it sits in a figure's data


@pytest.mark.parametrize("path", ["tokenize", "sample", "attention", "activations", "embeddings"])
def test_prompt_and_model_text_show_literally(path, page, open_app, wait_idle, dialogs, shot):
    text = PROMPT + ("\n" + LONG if path == "tokenize" else "")
    open_app(page, path, model=f"run:{MODEL_RUN}", prompt=PROMPT, tok_text=text, emb_method="pca")
    assert_clean(page, dialogs, path)
    shown = main_text(page)
    if path == "tokenize":
        for line in LINES:  # one chip per corpus line, shown as typed (invisibles as <U+...>)
            assert shown_as(token_label(line)) in shown, line
        width = page.evaluate(
            "() => { const m = document.querySelector(\"[data-testid='stMain']\");"
            " return [m.scrollWidth, m.clientWidth]; }"
        )
        assert width[0] <= width[1] + 2, page.evaluate(WIDE_JS)
    elif path == "sample":
        ticks = svg_text(page, "smp_stage_chart")  # tick labels are cut at 14 characters
        assert "<script>windo…" in ticks and "[md6](javascr…" in ticks, ticks
        assert "<b>x</b><br><i>y</i><sup>2</sup>id " in hover(page, "smp_stage_chart", ESC_TAGS)
        page.get_by_role("button", name="Generate").click()
        wait_idle(page)
        expect(page.get_by_text("mean probability of the drawn token")).to_have_count(1)
        chips = page.locator(".gbx-chip:not(.prompt)").evaluate_all(
            "cs => cs.map(c => c.firstChild.textContent)"
        )
        drawn = {shown_as(c) for c in chips}  # generated by the model, shown as typed
        assert len(drawn & {shown_as(token_label(line)) for line in LINES}) >= 5, drawn
    elif path == "attention":
        assert "<script>window." in svg_text(page, "att_big")
        assert "<b>x</b><br><i>" in hover(page, "att_big", ESC_TAGS)
        assert "<b>x</b>" in shown  # the step-by-step sentence quotes the last query token
    elif path == "activations":
        heat = page.locator("[data-testid='stHtml']").first.inner_text()
        assert PAYLOADS["script"] in heat and PAYLOADS["plotly_tags"] in heat
        assert "reading <b>x</b><br><i>… ·" in hover(page, "act_lens", ESC_TAGS)
    else:
        assert "<b>x</b><br><i>y</i>" in hover(page, "emb_map", ESC_TAGS)
        search = page.get_by_label("Find a token")
        search.fill("<b>x</b>")
        search.press("Enter")
        wait_idle(page)
        expect(page.get_by_text("Selected:")).to_have_count(1, timeout=30_000)
        shown = main_text(page)
        assert "<b>x</b><br><i>y</i>" in shown.split("Selected:")[1], "selected token"
        assert "Matches: <b>x</b><br><i>y</i>" in shown, "search matches"
        assert '␣href="javascript:alert(' in svg_text(page, "emb_nbars")  # neighbours' ticks
        search.fill(":smile:")
        search.press("Enter")
        wait_idle(page)
        expect(page.get_by_text("Selected:")).to_have_count(1)
        chosen = main_text(page).split("Selected:")[1].split("\n")[0].replace("\u2060", "")
        assert chosen.startswith(" :smile: :material/home:") and "😄" not in chosen, chosen
    assert_clean(page, dialogs, f"{path} after hover")
    if path in ("sample", "embeddings"):
        shot(page, f"xss_{path}")


def _upload(locator, name: str, data: bytes) -> None:
    locator.set_input_files(files=[{"name": name, "mimeType": "text/plain", "buffer": data}])


def test_uploaded_corpus_and_a_model_link_on_tokenize(page, open_app, wait_idle, dialogs, shot):
    link = PAYLOADS["md_link"] + PAYLOADS["latex_href"]  # ?model=... names no model here
    open_app(page, "tokenize", tok_text="hello", tok_vocab="300", model=link)
    alert = page.locator("[data-testid='stSidebar'] [data-testid='stAlert']").first
    expect(alert).to_contain_text("is not on this server")
    assert PAYLOADS["md_link"] in alert.inner_text()
    assert alert.locator("a, .katex").count() == 0
    assert_clean(page, dialogs, "sidebar model link")
    page.get_by_text("a .txt file").click()
    wait_idle(page)
    main = page.locator("[data-testid='stMain']")
    uploader = main.locator("[data-testid='stFileUploaderDropzoneInput']")
    _upload(uploader, PAYLOADS["md_link"] + ".txt", b"\x00\x01\x02" * 100)
    wait_idle(page)
    error = main.locator("[data-testid='stAlert']").filter(has_text="Could not read")
    expect(error).to_contain_text(PAYLOADS["md_link"])
    assert_clean(page, dialogs, "unreadable upload")
    _upload(uploader, "corpus.txt", (PROMPT + "\n").encode() * 5)
    wait_idle(page)
    page.get_by_role("button", name="Train BPE").click()
    wait_idle(page, timeout=120_000)
    expect(page.get_by_text("Your BPE:")).to_have_count(1, timeout=120_000)
    merges = page.locator("[data-testid='stText']").filter(has_text="First merges learned")
    assert "'<'" in merges.inner_text() or "'<" in merges.inner_text()
    assert_clean(page, dialogs, "trained on an uploaded corpus")
    shot(page, "xss_tokenize_upload")
    # the checks see an injection when there is one: unescaped HTML put into the page runs
    page.locator("[data-testid='stMain'] .gbx").first.evaluate(
        "(el, p) => el.insertAdjacentHTML('beforeend', p)", PAYLOADS["img_marker"]
    )
    time.sleep(0.3)
    assert not page.evaluate(MARKER_JS)
    assert page.locator("[data-testid='stApp']").evaluate(INJECTED_JS) != []


def test_run_names_on_the_train_page(page, open_app, wait_idle, dialogs, shot):
    open_app(page, "train", view="Runs")
    assert_clean(page, dialogs, "runs view")
    legend = svg_text(page, "train_fig_cmp")
    assert EVIL_NAME in legend, legend  # the overlay's legend names the run as it is written
    sure = page.locator("[data-testid='stCheckbox']").filter(has_text="Yes, delete")
    assert f"Yes, delete {EVIL_NAME}" in sure.inner_text()
    assert sure.locator("a, strong, .katex").count() == 0
    shot(page, "xss_train_runs")
    open_app(page, "train", view="Watch", run=MODEL_RUN)  # its samples hold payloads
    expect(page.get_by_text("Samples at each evaluation")).to_have_count(1)
    assert f"step 10: {PAYLOADS['plotly_tags']}{PAYLOADS['script']}" in main_text(page)
    assert_clean(page, dialogs, "train watch")
    open_app(page, "train", view="Time-lapse", run=MODEL_RUN)  # probe text and vocab: payloads
    heat = page.locator("[data-testid='stHtml']").first.inner_text()
    assert PAYLOADS["script"] in heat and PAYLOADS["plotly_tags"] in heat
    assert "<b>x</b><br><i>y</i>" in hover(page, "train_tl_map", ESC_TAGS)
    assert ":<b>x</b><br><i>y</i><sup>2</sup>weight" in hover(page, "train_tl_att", ESC_TAGS)
    assert_clean(page, dialogs, "train time-lapse")
    shot(page, "xss_train_timelapse")
    for view in ("Watch", "Time-lapse", "New run"):  # a link naming the payload run
        open_app(page, "train", view=view, run=EVIL_NAME)
        assert_clean(page, dialogs, f"train {view}")
    field = page.get_by_label("Run name (optional)")
    field.fill(PAYLOADS["img_alert"] + PAYLOADS["md_link"])
    field.press("Enter")
    wait_idle(page)
    expect(page.get_by_text("run name: use letters")).to_have_count(1)
    page.get_by_text("Your own text file").click()
    wait_idle(page)
    uploader = page.locator("[data-testid='stMain'] [data-testid='stFileUploaderDropzoneInput']")
    _upload(uploader, PAYLOADS["img_alert"] + ".txt", PROMPT.encode())
    wait_idle(page)
    assert_clean(page, dialogs, "train form with payloads")
