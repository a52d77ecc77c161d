"""Small HTML widgets (token chips, generated text coloured by probability, window tables)
and the checks every text input goes through.

Everything that came from a user or a model is passed through `esc()` before it is put into
HTML: `st.markdown(unsafe_allow_html=True)` and `st.html` do not make text safe (FIELD-NOTES).
Builders return strings (unit-testable); `show()` is the only function that draws.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping, Sequence

import streamlit as st

from explorer.plots.common import chip_colour, prob_colour, text_colour_on, token_label

CSS = """<style>
.gbx{line-height:2.2;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
 font-size:14px;direction:ltr;text-align:left;word-break:break-all;max-width:100%;overflow-x:auto}
.gbx-chip{position:relative;display:inline-block;padding:0 4px;margin:1px 1px;border-radius:4px;
 border:1px solid rgba(0,0,0,.18);white-space:pre;unicode-bidi:isolate;color:#111;line-height:1.6}
.gbx-chip sub{font-size:9px;color:#444;margin-left:3px;vertical-align:baseline;opacity:.8}
.gbx-chip.prompt{background:#f1f5f9;color:#475569}
.gbx-chip:hover{outline:2px solid #111;z-index:20}
.gbx-chip:hover::after{content:attr(data-tip);position:absolute;left:0;top:105%;z-index:30;
 background:#111;color:#fff;padding:4px 8px;border-radius:4px;white-space:pre;font-size:12px;
 line-height:1.4;pointer-events:none;min-width:8em}
.gbx-win{border-collapse:collapse;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
.gbx-win td,.gbx-win th{border:1px solid #ddd;padding:2px 6px;text-align:left;white-space:pre}
.gbx-win td.t{background:#fef3c7}
.gbx-muted{color:#64748b;font-size:12px}
</style>"""


def esc(text: str) -> str:
    """html.escape plus the characters Streamlit's markdown would still interpret ($ for LaTeX,
    : for emoji shortcodes, [ ] for links, * _ ` for emphasis), and newlines as entities so a
    token can never end the HTML block."""
    out = html.escape(str(text), quote=True)
    for ch, ent in (
        ("$", "&#36;"),
        (":", "&#58;"),
        ("[", "&#91;"),
        ("]", "&#93;"),
        ("*", "&#42;"),
        ("_", "&#95;"),
        ("`", "&#96;"),
        ("\\", "&#92;"),
        ("\n", "&#10;"),
        ("\r", "&#13;"),
    ):
        out = out.replace(ch, ent)
    return out


def md_literal(text: str) -> str:
    """Text for a markdown element (st.error, st.caption...) shown as typed: every ASCII
    punctuation character that markdown, LaTeX or HTML could use is backslash-escaped
    (CommonMark), so `$x$`, `**b**`, `<b>` and `[a](b)` stay as typed."""
    out = []
    for ch in str(text):
        out.append("\\" + ch if ch in _MD_PUNCT else ch)
    return "".join(out)


# "/" too: Streamlit rewrites ":material/" anywhere in a markdown source (icon shortcodes)
_MD_PUNCT = set("\\`*_{}[]()#+-.!|$:~<>&/")


def md_code(text: str) -> str:
    """Text as an inline code span for a markdown element, shown exactly as typed: inside a code
    span markdown, LaTeX, HTML and entities are all literal (so no esc() here: `&lt;` would show
    as those four characters). The fence is one backtick longer than any run inside.
    Streamlit rewrites every ":material/" in a markdown source, code spans included, to
    ":material_" (its icon shortcodes): an invisible word joiner after the colon keeps it as typed."""
    text = str(text).replace("\n", " ").replace("\r", " ").replace(":material/", ":\u2060material/")
    run = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def chip(
    label: str, tip: str, *, bg: str, fg: str = "#111", sub: str | None = None, cls: str = ""
) -> str:
    """One token chip: visible label, optional small id, hover tip (all escaped here)."""
    sub_html = f"<sub>{esc(sub)}</sub>" if sub is not None else ""
    return (
        f'<span class="gbx-chip {cls}" style="background:{bg};color:{fg}" '
        f'data-tip="{esc(tip)}" title="{esc(tip)}">{esc(token_label(label))}{sub_html}</span>'
    )


def chips_html(records: Sequence[Mapping], *, show_ids: bool = True) -> str:
    """Token chips for token_records(): neighbours differ in colour, id under each chip,
    hover shows id, bytes and the raw label."""
    parts = []
    for i, r in enumerate(records):
        tip = (
            f"id {r['id']}\n{r['n_bytes']} byte(s): {r['hex']}\ntext: {token_label(r['label'], 60)}"
        )
        parts.append(
            chip(r["label"], tip, bg=chip_colour(i), sub=str(r["id"]) if show_ids else None)
        )
    return f'<div class="gbx">{"".join(parts)}</div>'


def segments_html(segments: Sequence[str]) -> str:
    """Chips for a list of text pieces (a BPE segmentation), no ids."""
    parts = [
        chip(s, f"{len(s.encode('utf-8', 'surrogatepass'))} byte(s)", bg=chip_colour(i))
        for i, s in enumerate(segments)
    ]
    return f'<div class="gbx">{"".join(parts)}</div>'


def generation_html(prompt_labels: Sequence[str], steps: Sequence, labels: Sequence[str]) -> str:
    """The prompt in grey, then each generated token coloured by the probability it was drawn
    with; hover lists the top alternatives. `steps` are core.sampling.GenStep records."""
    parts = [chip(lbl, "prompt token", bg="#f1f5f9", cls="prompt") for lbl in prompt_labels]
    for s in steps:
        alts = "\n".join(
            f"{'→' if tid == s.token_id else ' '} {token_label(labels[tid], 24):<24} {p:6.1%}"
            for tid, p in zip(s.top_ids, s.top_probs)
        )
        tip = f"p = {s.prob:.1%} (id {s.token_id})\ntop alternatives:\n{alts}"
        parts.append(
            chip(labels[s.token_id], tip, bg=prob_colour(s.prob), fg=text_colour_on(s.prob))
        )
    return f'<div class="gbx">{"".join(parts)}</div>'


def windows_html(records: Sequence[Mapping]) -> str:
    """Sliding-window pairs: one row per window, input tokens and the target tokens (shifted by
    one). records: mappings with start, input (labels), target (labels)."""
    rows = []
    for r in records:
        inp = "".join(chip(t, "input", bg="#e0f2fe") for t in r["input"])
        tgt = "".join(chip(t, "target", bg="#fef3c7") for t in r["target"])
        rows.append(f"<tr><td>{int(r['start'])}</td><td>{inp}</td><td>{tgt}</td></tr>")
    head = "<tr><th>start</th><th>input x</th><th>target y (x shifted by one)</th></tr>"
    return f'<div class="gbx"><table class="gbx-win">{head}{"".join(rows)}</table></div>'


def show(fragment: str) -> None:
    """Draw an HTML fragment built by this module (already escaped) with the widget CSS."""
    st.markdown(CSS + fragment, unsafe_allow_html=True)


# --- text checks -------------------------------------------------------------------------------

RTL_BIDI = {"R", "AL"}


def inspect_text(text: str, max_chars: int) -> tuple[str, list[tuple[str, str]]]:
    """Check a text input: returns (text to use, notices as (level, message)).

    Long text is cut to max_chars; NUL bytes are dropped; binary-looking text, right-to-left
    scripts and invisible characters are pointed out (they are kept: they are real text).
    """
    notes: list[tuple[str, str]] = []
    if "\x00" in text:
        text = text.replace("\x00", "")
        notes.append(("warning", "NUL characters were removed from the text."))
    if len(text) > max_chars:
        notes.append(
            (
                "warning",
                f"The text has {len(text):,} characters; only the first {max_chars:,} are used here.",
            )
        )
        text = text[:max_chars]
    if text:
        sample = text[:5000]
        control = sum(1 for c in sample if unicodedata.category(c) == "Cc" and c not in "\n\r\t")
        replacement = sample.count("\ufffd")
        if (control + replacement) > 0.05 * len(sample):
            notes.append(
                (
                    "warning",
                    "This looks like binary data rather than text "
                    f"({control + replacement} control/undecodable characters in the first "
                    f"{len(sample):,}). It is tokenized as-is.",
                )
            )
        if any(unicodedata.bidirectional(c) in RTL_BIDI for c in sample):
            notes.append(
                ("info", "Right-to-left text: tokens are shown in logical (typing) order.")
            )
        invisible = sum(1 for c in sample if unicodedata.category(c) == "Cf")
        if invisible:
            notes.append(
                (
                    "info",
                    f"{invisible} invisible character(s) (zero-width, bidi marks) are shown as <U+…> codes.",
                )
            )
    return text, notes


def show_notices(notes: Sequence[tuple[str, str]]) -> None:
    for level, message in notes:
        (st.warning if level == "warning" else st.info)(message)
