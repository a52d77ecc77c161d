"""Tokenize page in a real browser: type, hover a chip, step the merges, slide the windows."""

from playwright.sync_api import expect


def slider(page, label):
    return (
        page.locator("[data-testid='stSlider']")
        .filter(has_text=label)
        .locator("input[type='range']")
    )


def test_tokenize_page_interactions(page, open_app, wait_idle, shot):
    open_app(page, "tokenize")
    main = page.locator("[data-testid='stMain']")
    area = main.locator("textarea").first
    area.fill("Once upon a time, Mia found a red ball in the garden. שלום 🙂 zero\u200bwidth")
    area.press("Control+Enter")
    wait_idle(page)
    chips = main.locator(".gbx").first.locator(".gbx-chip")
    expect(chips.nth(10)).to_be_visible(timeout=60_000)
    chips.nth(2).hover()
    shot(page, "tokenize_hover", full=False)
    tokens = main.locator("[data-testid='stMetric']").filter(has_text="tokens").first.inner_text()

    merge = slider(page, "Merges applied")
    merge.focus()
    merge.press("Home")
    wait_idle(page)
    expect(main.get_by_text("Before any merge")).to_have_count(1, timeout=60_000)

    ctx = slider(page, "Context length T")
    ctx.focus()
    ctx.press("ArrowLeft")
    wait_idle(page)
    expect(main.locator("table.gbx-win tr").nth(1)).to_be_visible(timeout=60_000)
    assert main.locator("[data-testid='stException']").count() == 0
    assert tokens
    shot(page, "tokenize")


def test_train_a_bpe_shows_progress_and_result(page, open_app, wait_idle, shot):
    open_app(
        page, "tokenize", tok_text="low lower lowest newer newest wider " * 20, tok_vocab="300"
    )
    page.get_by_role("button", name="Train BPE").click()
    wait_idle(page, timeout=120_000)
    expect(page.get_by_text("Your BPE:")).to_have_count(1, timeout=120_000)
    shot(page, "tokenize_trained")
