"""The Embeddings page in a real browser: the map draws, a real click on a point selects that
token and rings its nearest neighbours, search finds a token. Screenshots:
tests/browser/screenshots/embeddings_*.png (looked at by hand; not committed)."""

from __future__ import annotations

import pytest

from core.projection import load_maps
from explorer.registry import default_dir

ERRORS = "[data-testid='stException']"


def point_xy(page, chart: int, trace: int, index: int) -> tuple[float, float]:
    """Page coordinates of point `index` of trace `trace` in the chart-th plotly figure."""
    return tuple(
        page.evaluate(
            """([c, t, i]) => {
                const gd = document.querySelectorAll('.js-plotly-plot')[c];
                const fl = gd._fullLayout, tr = gd._fullData[t];
                const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
                const xa = fl[tr.xaxis === 'x' ? 'xaxis' : 'xaxis' + tr.xaxis.slice(1)];
                const ya = fl[tr.yaxis === 'y' ? 'yaxis' : 'yaxis' + tr.yaxis.slice(1)];
                return [box.left + xa.l2p(tr.x[i]), box.top + ya.l2p(tr.y[i])];
            }""",
            [chart, trace, index],
        )
    )


def trace_names(page, chart: int = 0) -> list[str]:
    return page.evaluate(
        "(c) => document.querySelectorAll('.js-plotly-plot')[c].data.map(t => t.name)", chart
    )


def test_click_a_point_shows_its_neighbours(page, open_app, wait_idle, shot):
    open_app(page, "embeddings", emb_method="pca")
    assert page.locator(ERRORS).count() == 0
    page.wait_for_selector(".js-plotly-plot")
    names = trace_names(page)
    assert names[0].startswith("other") and len(names) >= 2
    # the point of a category trace farthest (in pixels) from every other point on the map, so
    # nothing else sits under the cursor (points overlap in dense clusters)
    t = 1
    index = page.evaluate(
        """(t) => { const gd = document.querySelectorAll('.js-plotly-plot')[0];
                     const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                     const px = (tr, i) => [xa.d2p(tr.x[i]), ya.d2p(tr.y[i])];
                     const all = [];
                     gd._fullData.forEach((tr, k) => { if (tr.visible === true || tr.visible === undefined)
                       for (let i = 0; i < tr.x.length; i++) all.push([k, i, ...px(tr, i)]); });
                     let best = 0, bestd = -1;
                     for (const [k, i, x, y] of all) { if (k !== t) continue;
                       let dmin = Infinity;
                       for (const [k2, i2, x2, y2] of all) if (k2 !== k || i2 !== i)
                         dmin = Math.min(dmin, Math.hypot(x - x2, y - y2));
                       if (dmin > bestd) { bestd = dmin; best = i; } }
                     return best; }""",
        t,
    )
    token = page.evaluate(
        "([t, i]) => document.querySelectorAll('.js-plotly-plot')[0]._fullData[t].customdata[i]",
        [t, index],
    )
    shot(page, "embeddings_map")
    x, y = point_xy(page, 0, t, index)
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    wait_idle(page)
    page.wait_for_selector("text=Selected:", timeout=30_000)
    assert page.locator(ERRORS).count() == 0
    names = trace_names(page)
    assert names[-2:] == ["nearest neighbours", "selected"]
    selected = page.evaluate(
        "() => { const d = document.querySelectorAll('.js-plotly-plot')[0]._fullData; "
        "return Array.from(d[d.length - 1].customdata); }"
    )
    assert selected == [token]
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    shot(page, "embeddings_clicked")


def test_search_selects_a_token(page, open_app, wait_idle, shot):
    open_app(page, "embeddings", emb_method="pca")
    box = page.get_by_label("Find a token")
    box.fill("the")
    box.press("Enter")
    wait_idle(page)
    page.wait_for_selector("text=Selected:", timeout=30_000)
    assert page.locator(ERRORS).count() == 0
    assert trace_names(page)[-1] == "selected"
    page.get_by_text("Position embeddings").scroll_into_view_if_needed()
    shot(page, "embeddings_positions")


def test_shipped_model_opens_on_its_precomputed_umap(page, open_app, shot):
    if "umap" not in load_maps(default_dir()):
        pytest.skip("assets/default/maps has no UMAP map")
    open_app(page, "embeddings")
    page.wait_for_selector(".js-plotly-plot")
    title = page.evaluate("() => document.querySelector('.js-plotly-plot').layout.title.text")
    assert "UMAP" in title
    assert page.locator("[data-testid='stProgress']").count() == 0  # nothing to compute
    shot(page, "embeddings_umap")
