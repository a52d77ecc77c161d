"""BPETokenizer: tiktoken and the readable Python encoder agree; decode(encode(x)) == x;
trace and replay show the work truthfully; labels never hide bytes; save/load keeps ids."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.corpora import pyprose, tinytales
from core.tokenizer import (
    ENDOFTEXT,
    BPETokenizer,
    TokenizerError,
    bytes_label,
    explain,
    load_tokenizer,
    train_bpe,
)

MULTILINGUAL = (
    "Grüße aus Köln! Ça va? naïve café résumé e\u0301 a\u0308 "
    "中文字符测试，你好世界。日本語のテキスト。한국어 텍스트. "
    "Привет, мир! Γειά σου κόσμε. مرحبا بالعالم. שלום עולם. "
    "😀😃😄 👍🏽 👨‍👩‍👧 🇫🇷🇯🇵 \t\ttabs\r\n  spaces   \n\n\n 12345 6789 3.14159 "
)


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    text = tinytales.generate(40_000, seed=5) + pyprose.generate()[:40_000] + MULTILINGUAL * 20
    return train_bpe(text, 800)


PIECES = st.sampled_from(
    [
        "😀", "👨‍👩‍👧", "🇫🇷", "中文字", "e\u0301", "\u0000", "\x07", "\t", "\r\n", "\r",
        "   ", "\n\n\n", ENDOFTEXT, "<|endoftext", "'s", "'LL", "123456", "Ωμέγα", "مرحبا",
        "\u200b", "\ufeff", "\ufffd", "Once upon a time", " the", "?!...", "\u0301\u0301",
    ]
)  # fmt: skip
RUNS = st.builds(
    lambda c, n: c * n,
    st.sampled_from(["a", " ", "\n", "😀", "!", "1", "é", "\t"]),
    st.integers(1, 70),
)
TEXT = st.lists(st.one_of(st.text(max_size=20), PIECES, RUNS), max_size=12).map("".join)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(TEXT)
def test_python_encoder_matches_tiktoken(tok, text):
    assert explain.encode(tok, text) == tok.encode(text)


@FUZZ
@given(TEXT)
def test_roundtrip(tok, text):
    assert tok.decode(tok.encode(text)) == text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(TEXT)
def test_trace_and_replay_agree_with_encode(tok, text):
    ids = tok.encode(text)
    records = tok.trace(text)
    assert [i for r in records for i in r["ids"]] == ids
    assert b"".join(bytes(r["bytes"]) for r in records) == text.encode("utf-8")
    replay = tok.replay(text)
    assert replay[len(replay) - 1] == ids
    assert replay[0] == [i for r in records for i in r["start_ids"]]
    lengths = [len(replay[k]) for k in [0, *replay.steps]]
    assert lengths == sorted(lengths, reverse=True)


def test_replay_is_encoding_with_the_first_k_merges(tok):
    """replay[k] == what a tokenizer holding only the first k merges produces."""
    text = "Once upon a time, Lily saw three red birds. Grüße! 中文 😀 " + tinytales.generate(
        600, 9
    )
    replay = tok.replay(text)
    assert len(replay) == tok.n_merges + 1
    for k in [0, 1, 5, 40, 100, 300, tok.n_merges // 2, tok.n_merges]:
        small = BPETokenizer(
            tok.vocab[: 256 + k], pattern=tok.pattern, special_tokens={ENDOFTEXT: 5000}
        )
        assert replay[k] == small.encode(text), k
    # events, not copies: at most one event per byte, each at a merge that changes the text
    assert len(replay.events) <= len(text.encode())
    assert set(replay.steps) <= {e["merge"] for e in replay.events}
    for k in range(1, len(replay)):  # steps are exactly the merges that change the text
        assert (replay[k] != replay[k - 1]) == replay.changed_at(k), k


def test_trace_records(tok):
    (rec,) = tok.trace(" hello")
    assert rec["chunk"] == " hello" and rec["bytes"] == list(b" hello")
    assert rec["start_ids"] == list(b" hello")
    ranks = [m["rank"] for m in rec["merges"]]
    for m in rec["merges"]:
        assert tok.vocab[m["new"]] == tok.vocab[m["left"]] + tok.vocab[m["right"]]
        assert m["merge"] == m["rank"] - 255
    assert rec["merges"][-1]["ids"] == rec["ids"] or len(rec["ids"]) == 1
    assert ranks  # something was merged
    special = tok.trace("a<|endoftext|>b")
    assert [r["special"] for r in special] == [False, True, False]
    assert special[1]["ids"] == [tok.eot_id]


def test_special_tokens_are_recognised(tok):
    ids = tok.encode("The end.<|endoftext|>Once")
    assert ids.count(tok.eot_id) == 1
    assert tok.token_label(tok.eot_id) == ENDOFTEXT
    assert tok.is_special(tok.eot_id)
    assert tok.encode_ordinary(ENDOFTEXT).count(tok.eot_id) == 0


def test_labels_show_bytes_not_replacement_chars(tok):
    assert bytes_label(b"\xe2") == "<0xE2>"
    assert bytes_label(b"a\xe2\x82") == "a<0xE2><0x82>"
    assert bytes_label("é😀".encode()) == "é😀"
    assert bytes_label(b"\x9fab") == "<0x9F>ab"
    for i in range(tok.vocab_size):
        label = tok.token_label(i)
        assert label
        if "\ufffd" in label:
            assert b"\xef\xbf\xbd" in tok.token_bytes(i)
    # a CJK character is three bytes; its first byte alone is a token
    first = tok.encode("中")[0]
    assert tok.token_label(first).startswith("<0xE4>") or tok.token_label(first) == "中"


def test_token_bytes_concatenate_to_text(tok):
    text = MULTILINGUAL
    ids = tok.encode(text)
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode()
    with pytest.raises(TokenizerError):
        tok.token_bytes(tok.vocab_size + 5)
    with pytest.raises(TokenizerError):
        tok.decode([-1])


def test_save_load_roundtrip(tok, tmp_path):
    path = tok.save(tmp_path / "tok.json")
    back = load_tokenizer(path)
    assert isinstance(back, BPETokenizer)
    assert back.content_hash == tok.content_hash
    assert back.merges == tok.merges
    assert back.encode(MULTILINGUAL) == tok.encode(MULTILINGUAL)
    tok.save(tmp_path)  # a folder gets tokenizer.json
    assert load_tokenizer(tmp_path).content_hash == tok.content_hash


def test_tampered_file_is_rejected(tok, tmp_path):
    path = tok.save(tmp_path / "tok.json")
    data = json.loads(path.read_text())
    data["merges"][3] = [100, 101]
    path.write_text(json.dumps(data))
    with pytest.raises(TokenizerError, match="hash"):
        load_tokenizer(path)
    path.write_text("{not json")
    with pytest.raises(TokenizerError):
        load_tokenizer(path)
    with pytest.raises(TokenizerError, match="no tokenizer"):
        load_tokenizer(tmp_path / "missing.json")
    path.write_text(json.dumps({"type": "mystery"}))
    with pytest.raises(TokenizerError, match="unknown tokenizer type"):
        load_tokenizer(path)


def test_hash_changes_with_content(tok):
    other = train_bpe(tinytales.generate(20_000, seed=5), 400)
    assert other.content_hash != tok.content_hash
    assert len(tok.content_hash) == 64


def test_permuted_byte_ranks_like_gpt2(tok, tmp_path):
    """GPT-2's first 256 ranks are the bytes in another order; everything must still agree."""
    order = sorted(range(256), key=lambda b: (not chr(b).isprintable(), -b))
    remap = {old: new for new, old in enumerate(order)}
    vocab = [bytes([b]) for b in order] + tok.vocab[256:]
    perm = BPETokenizer(vocab, pattern=tok.pattern, special_tokens=tok.special_tokens)
    for text in [MULTILINGUAL, tinytales.generate(3000, 4), "a<|endoftext|>b"]:
        ids = perm.encode(text)
        assert explain.encode(perm, text) == ids
        assert perm.decode(ids) == text
        assert [remap.get(i, i) for i in tok.encode(text)] == ids
    expected = [(remap.get(a, a), remap.get(b, b)) for a, b in tok.merges]
    assert perm.merges == expected  # recovered from ranks alone
    back = load_tokenizer(perm.save(tmp_path / "perm.json"))
    assert back.encode(MULTILINGUAL) == perm.encode(MULTILINGUAL)


def test_invalid_vocabularies():
    with pytest.raises(TokenizerError, match="256 bytes"):
        BPETokenizer([bytes([i]) for i in range(255)])
    with pytest.raises(TokenizerError, match="twice"):
        BPETokenizer([bytes([i]) for i in range(256)] + [b"a"])


def test_replay_when_a_merge_enables_an_earlier_rank():
    """A ranks file may hold "abc" (rank 257) before "bc" (rank 258): on "abcd" BPE applies
    258 then 257, and the text changes only once merge 3 exists."""
    vocab = [bytes([i]) for i in range(256)] + [b"xy", b"abc", b"bc"]
    tok = BPETokenizer(vocab, pattern=r"\S+|\s+")
    replay = tok.replay("abcd")
    assert sorted(e["merge"] for e in replay.events) == [2, 3]
    for k in range(len(replay)):
        assert replay[k] == BPETokenizer(vocab[: 256 + k], pattern=r"\S+|\s+").encode("abcd"), k
    assert replay.steps == [3]
    assert explain.encode(tok, "abcd") == tok.encode("abcd") == [257, ord("d")]


def test_lone_surrogates_become_replacement_chars_in_both_encoders(tok):
    """A str with a lone surrogate is not valid Unicode; tiktoken encodes it as U+FFFD, so does
    the Python encoder (the only strings for which decode(encode(x)) != x)."""
    text = "a\ud800b\udfffc"
    assert explain.encode(tok, text) == tok.encode(text) == tok.encode("a\ufffdb\ufffdc")
    # and training on such text treats it the same way (it raised UnicodeEncodeError)
    trained = train_bpe("hello wor\ud800ld " * 20, 280)
    assert trained.encode("wor\ud800ld") == trained.encode("wor\ufffdld")
