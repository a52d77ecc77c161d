"""The BPE trainer: the incremental, heap-driven trainer learns exactly the merges of the
textbook loop (recount every pair, merge the most frequent, repeat), with the documented
tie-break, and the result is a working tiktoken-backed tokenizer."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.corpora import tinytales
from core.tokenizer import ENDOFTEXT, GPT2_PATTERN, TokenizerError, train_bpe
from core.tokenizer.bpe_train import count_pretokens, learn_merges


def naive_merges(word_counts: dict[str, int], n_merges: int) -> list[tuple[int, int]]:
    """The textbook loop: recount all pairs after every merge; ties -> smallest (left, right)."""
    words = {w: list(w.encode()) for w in word_counts}
    vocab = [bytes([i]) for i in range(256)]
    index = {b: i for i, b in enumerate(vocab)}
    merges = []
    while len(merges) < n_merges:
        counts = Counter()
        for w, ids in words.items():
            for p in zip(ids, ids[1:]):
                counts[p] += word_counts[w]
        if not counts:
            break
        (a, b), _ = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        merged = vocab[a] + vocab[b]
        new = index.get(merged)
        if new is None:
            new = len(vocab)
            vocab.append(merged)
            index[merged] = new
            merges.append((a, b))
        for w, ids in words.items():
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            words[w] = out
    return merges


def test_matches_textbook_loop_on_stories():
    text = tinytales.generate(20_000, seed=3)
    wc = count_pretokens(text, GPT2_PATTERN, [ENDOFTEXT])
    fast, _, _ = learn_merges(wc, 300)
    assert fast == naive_merges(wc, 300)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="aab b\n'.é😀", min_size=1, max_size=80), st.integers(1, 30))
def test_matches_textbook_loop_fuzzed(text, n):
    """Overlapping runs ("aaaa"), repeated words, multi-byte characters."""
    wc = count_pretokens(text, GPT2_PATTERN)
    fast, vocab, _ = learn_merges(wc, n)
    assert fast == naive_merges(wc, n)
    assert len(set(vocab)) == len(vocab)


def test_tie_break_prefers_smallest_pair():
    # (a, b) and (c, d) both occur 3 times: (97, 98) < (99, 100), so "ab" is merge 0
    merges, _, _ = learn_merges({"ab": 3, "cd": 3}, 2)
    assert merges == [(97, 98), (99, 100)]


def test_overlapping_run_counts():
    # "aaaa" -> (aa)(aa); then (aa, aa) -> aaaa
    merges, vocab, _ = learn_merges({"aaaa": 1}, 5)
    assert merges == [(97, 97), (256, 256)]
    assert vocab[257] == b"aaaa"


def test_train_bpe_sizes_and_specials():
    text = tinytales.generate(30_000, seed=1)
    tok = train_bpe(text, 400)
    assert tok.vocab_size == 400
    assert tok.n_merges == 400 - 256 - 1
    assert tok.eot_id == 399
    assert tok.special_tokens == {ENDOFTEXT: 399}
    # the special token was cut out before training: no merge spells it
    assert all(ENDOFTEXT.encode() not in b for b in tok.vocab)
    ids = tok.encode(text[:2000])
    assert tok.decode(ids) == text[:2000]
    assert len(ids) < 2000 / 1.8  # stories compress well with 143 merges (measured: 1009 ids)
    for key in ("pretokenize_s", "count_s", "merge_s", "n_unique"):
        assert key in tok.train_stats


def test_train_bpe_is_deterministic():
    text = tinytales.generate(20_000, seed=2)
    a = train_bpe(text, 350)
    b = train_bpe(text, 350)
    assert a.merges == b.merges
    assert a.content_hash == b.content_hash


def test_train_stops_when_text_runs_out_of_pairs():
    tok = train_bpe("ab ab ab", 1000)
    assert tok.n_merges < 10
    assert tok.vocab_size == 256 + tok.n_merges + 1
    assert tok.encode("ab ab") == tok.encode("ab ab")


def test_progress_callback():
    seen = []
    train_bpe(
        tinytales.generate(20_000), 500, progress=lambda done, total: seen.append((done, total))
    )
    assert seen and seen[-1][1] == 500 - 257
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_custom_pattern_and_no_specials():
    tok = train_bpe("hello world " * 50, 300, pattern=r"\S+|\s+", special_tokens=())
    assert tok.eot_id is None
    assert tok.vocab_size == 300 or tok.n_merges < 44
    assert tok.token_label(tok.encode("hello")[0]) == "hello"


def test_bad_arguments():
    with pytest.raises(TokenizerError, match="too small"):
        train_bpe("abc", 100)
    with pytest.raises(TokenizerError, match="regex"):
        train_bpe("abc", 300, pattern="(unclosed")


def test_pattern_with_groups_uses_whole_matches():
    """tiktoken splits on whole matches; a user pattern with groups must too."""
    from core.tokenizer import explain

    tok = train_bpe("the cat, the hat. " * 30, 300, pattern=r"( ?\w+)|([^\w\s]+)|\s+")
    text = "the cat, the hat.  sat"
    assert "".join(c for c, _ in explain.chunks(tok, text)) == text
    assert explain.encode(tok, text) == tok.encode(text)
    with pytest.raises(TokenizerError, match="non-empty"):
        train_bpe("abc", 300, special_tokens=[""])
