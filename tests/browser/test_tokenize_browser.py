"""Tokenize page in a real browser: type, hover a chip, step the merges, slide the windows."""


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
    assert chips.count() > 10
    chips.nth(2).hover()
    shot(page, "tokenize_hover", full=False)
    tokens = main.locator("[data-testid='stMetric']").filter(has_text="tokens").first.inner_text()

    merge = slider(page, "Merges applied")
    merge.focus()
    merge.press("Home")
    wait_idle(page)
    assert main.get_by_text("Before any merge").count() == 1

    ctx = slider(page, "Context length T")
    ctx.focus()
    ctx.press("ArrowLeft")
    wait_idle(page)
    assert main.locator("table.gbx-win tr").count() > 1
    assert main.locator("[data-testid='stException']").count() == 0
    assert tokens
    shot(page, "tokenize")


def test_train_a_bpe_shows_progress_and_result(page, open_app, wait_idle, shot):
    open_app(
        page, "tokenize", tok_text="low lower lowest newer newest wider " * 20, tok_vocab="300"
    )
    page.get_by_role("button", name="Train BPE").click()
    wait_idle(page, timeout=120_000)
    assert page.get_by_text("Your BPE:").count() == 1
    shot(page, "tokenize_trained")
