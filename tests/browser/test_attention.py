"""The Attention page in a real browser: a real click on a head thumbnail enlarges that head;
the step-through slider moves. Screenshots: tests/browser/screenshots/attention_*.png."""

from __future__ import annotations

ERRORS = "[data-testid='stException']"


def tile_xy(page, layer: int, head: int) -> tuple[float, float]:
    """Page coordinates of the centre of thumbnail (layer, head) in the grid (first chart)."""
    return tuple(
        page.evaluate(
            """([l, h]) => {
                const gd = document.querySelectorAll('.js-plotly-plot')[0];
                const tr = gd._fullData[1], fl = gd._fullLayout;
                const i = tr.text.indexOf(`layer ${l}, head ${h}`);
                const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
                return [box.left + fl.xaxis.l2p(tr.x[i]), box.top + fl.yaxis.l2p(tr.y[i])];
            }""",
            [layer, head],
        )
    )


def big_title(page) -> str:
    return page.evaluate("() => document.querySelectorAll('.js-plotly-plot')[1].layout.title.text")


def test_click_a_thumbnail_enlarges_it(page, open_app, wait_idle, shot):
    open_app(page, "attention", prompt="Lily saw a red fox. Lily saw a red fox.")
    assert page.locator(ERRORS).count() == 0
    assert "Layer 0, head 0:" in big_title(page)
    n_layers, n_heads = page.evaluate(
        """() => { const d = document.querySelectorAll('.js-plotly-plot')[0]._fullData[1];
                   const lh = d.text.map(s => s.match(/\\d+/g).map(Number));
                   return [Math.max(...lh.map(v => v[0])) + 1, Math.max(...lh.map(v => v[1])) + 1]; }"""
    )
    layer, head = n_layers - 1, n_heads - 1
    x, y = tile_xy(page, layer, head)
    # off-centre on purpose: anywhere on the tile counts
    page.mouse.move(x + 3, y - 3)
    page.mouse.click(x + 3, y - 3)
    wait_idle(page)
    page.wait_for_function(
        "(t) => document.querySelectorAll('.js-plotly-plot')[1].layout.title.text.includes(t)",
        arg=f"Layer {layer}, head {head}:",
        timeout=30_000,
    )
    assert page.locator(ERRORS).count() == 0
    assert page.get_by_text(f"Layer {layer}, head {head}, step by step").count() == 1
    shot(page, "attention_clicked")
    page.get_by_text("step by step").scroll_into_view_if_needed()
    shot(page, "attention_steps")
