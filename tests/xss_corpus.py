"""The XSS payload corpus: the one list of hostile text every escaping test feeds the app.

Each payload that could execute announces itself: it sets `window.__xss` (or `top.__xss`
from inside an iframe) or opens an alert, so a browser test sees execution as a marker or a
dialog. Payloads are short enough (≤ 39 characters) that a tokenizer which keeps a whole line
as one token shows each of them as one chip, tick or hover label (token_label cuts at 40).

  PAYLOADS    name -> payload, one line each (no newline inside)
  LINES       the payloads in order; TEXT = them joined by newlines (one input holds them all)
  BLOCKS      multi-line payloads (markdown headings, raw HTML blocks, display LaTeX)
  LONG        one 10k-character token without spaces
  LITERAL     strings that must appear as typed wherever TEXT is shown
  MARKER_JS   JS expression: true when no payload ran
  INJECTED_JS JS expression: a list of elements a payload could have added inside a root element
"""

from __future__ import annotations

PAYLOADS: dict[str, str] = {
    "script": "<script>window.__xss='script'</script>",
    "img_alert": "<img src=x onerror=alert('img')>",
    "img_marker": '<img src=y onerror="window.__xss=2">',
    "svg": '<svg onload="window.__xss=3">',
    "iframe": '<iframe srcdoc="<script>top.__xss=4">',
    "a_href": '<a href="javascript:alert(5)">a5</a>',
    "md_link": "[md6](javascript:alert(6))",
    "md_image": "![md7](javascript:alert(7))",
    "md_autolink": "<javascript:alert(8)>",
    "md_emphasis": "**bold** _em_ `code` ~~del~~",
    "latex_href": r"$\href{javascript:alert(9)}{tex9}$",
    "latex_display": r"$$\frac{a}{b}$$ \(x\)",
    "emoji": ":smile: :material/home: :red[red]",
    "entities": "&lt;b&gt; &amp; &#60;i&#62;",
    "plotly_tags": "<b>x</b><br><i>y</i><sup>2</sup>",
    "plotly_link": '<a href="javascript:alert(10)">p</a>',
    "template": "%{x} %{customdata} {0} ${y}",
    "invisible": "zero\u200bwidth \u202eevil\u202c ltr",
    "rtl": "שלום עולם مرحبا",
}
LINES: list[str] = list(PAYLOADS.values())
TEXT = "\n".join(LINES)

BLOCKS = (
    "# heading\n\n"
    "<div onmouseover=\"window.__xss='div'\">raw block</div>\n\n"
    "$$\n\\href{javascript:alert(11)}{display}\n$$\n\n"
    "> quote\n- item"
)

LONG = "x" * 10_000

# Shown exactly so wherever TEXT is displayed (after undoing the visible-space stand-in ␣).
LITERAL = (
    "<script>window.__xss='script'</script>",
    "<b>x</b><br><i>y</i>",
    "[md6](javascript:alert(6))",
    "**bold**",
    "&lt;b&gt;",
    ":smile:",
    r"$\href{javascript:alert(9)}{tex9}$",
)

MARKER_JS = "() => window.__xss === undefined && !document.title.includes('xss')"

# Elements only a payload could add. `root` is the element the page text lives in.
INJECTED_JS = """root => {
  const bad = [];
  const q = s => Array.from(root.querySelectorAll(s));
  for (const e of q('img[src="x"], img[src="y"], img[onerror], svg[onload], iframe[srcdoc]'))
    bad.push(e.outerHTML.slice(0, 80));
  for (const e of q('script')) if (/__xss|alert/.test(e.textContent)) bad.push('script');
  for (const e of q('[onmouseover], [onload], [onerror]')) bad.push(e.outerHTML.slice(0, 80));
  for (const e of q('a[href], [xlink\\\\:href]')) {
    const h = (e.getAttribute('href') || e.getAttribute('xlink:href') || '').trim().toLowerCase();
    if (h.startsWith('javascript:')) bad.push(e.outerHTML.slice(0, 80));
  }
  return bad;
}"""


def shown_as(text: str) -> str:
    """How text reads in a chip or label: the visible stand-ins turned back into characters."""
    return text.replace("␣", " ").replace("↵", "\n")
