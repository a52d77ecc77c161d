"""Architecture page in a real browser: the diagram draws, sliders move the numbers."""

from playwright.sync_api import expect


def metric(page, label):
    box = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text()


def test_architecture_sliders_move_the_numbers(page, open_app, wait_idle, shot):
    open_app(page, "architecture")
    main = page.locator("[data-testid='stMain']")
    expect(main.locator(".js-plotly-plot")).to_have_count(3, timeout=60_000)
    before = metric(page, "parameters")
    layers = (
        page.locator("[data-testid='stSlider']")
        .filter(has_text="Layers L")
        .locator("input[type='range']")
    )
    layers.focus()
    for _ in range(4):
        layers.press("ArrowRight")
    wait_idle(page)
    value = page.locator("[data-testid='stMetric']").filter(has_text="parameters").first
    expect(value.locator("[data-testid='stMetricValue']")).not_to_have_text(before, timeout=60_000)
    assert "arch_L=" in page.url
    main.get_by_role("tab", name="Attention").click()
    assert main.locator(".katex").count() > 0
    assert main.locator("[data-testid='stException']").count() == 0
    shot(page, "architecture")
