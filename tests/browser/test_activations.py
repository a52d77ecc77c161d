"""The Activations page in a real browser: every view draws, the heat-text shows a script
payload literally and runs nothing. Screenshot: tests/browser/screenshots/activations.png."""

from __future__ import annotations

PAYLOAD = '<img src=x onerror="alert(1)"> Lily <script>alert(2)</script>'


def test_views_draw_and_text_is_escaped(page, open_app, wait_idle, shot, dialogs):
    open_app(page, "activations", prompt=PAYLOAD)
    assert page.locator("[data-testid='stException']").count() == 0
    page.wait_for_selector(".js-plotly-plot")
    assert page.locator(".js-plotly-plot").count() >= 5
    heat = page.locator("[data-testid='stHtml']").first.inner_text()
    assert "<img" in heat and "<script>" in heat and "Lily" in heat  # shown as text, not parsed
    assert dialogs == []
    shot(page, "activations")
