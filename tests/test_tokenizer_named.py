"""Named tiktoken encodings are found on local disk only: a ranks file the user points to,
GLASSBOX_TIKTOKEN_DIR, or tiktoken's cache (sha1 of the URL). Nothing downloads; a missing
file is a quick, plain TokenizerUnavailable. Tests build a stand-in cache from our own ranks."""

import base64
import hashlib
import time

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.corpora import tinytales
from core.tokenizer import (
    GPT2_PATTERN,
    TokenizerError,
    TokenizerUnavailable,
    available_named_encodings,
    explain,
    load_tokenizer,
    named_encoding,
    train_bpe,
)
from core.tokenizer import named as N


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """An empty tiktoken cache, and get_encoding booby-trapped: we must never call it."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.delenv("GLASSBOX_TIKTOKEN_DIR", raising=False)

    def no_download(*a, **k):
        raise AssertionError("tiktoken.get_encoding was called (it downloads)")

    monkeypatch.setattr(tiktoken, "get_encoding", no_download)
    N._load.cache_clear()
    return cache


def write_ranks(path, vocab):
    path.write_bytes(b"".join(base64.b64encode(b) + b" %d\n" % i for i, b in enumerate(vocab)))
    return path


@pytest.fixture(scope="module")
def small_vocab():
    return train_bpe(tinytales.generate(20_000), 500, pattern=GPT2_PATTERN).vocab


def test_missing_is_plain_and_fast(isolated_cache):
    t0 = time.perf_counter()
    with pytest.raises(TokenizerUnavailable, match="not available offline"):
        named_encoding("cl100k_base")
    assert time.perf_counter() - t0 < 2  # a file check, never a network wait
    assert available_named_encodings() == {
        "gpt2": False, "r50k_base": False, "cl100k_base": False, "o200k_base": False
    }  # fmt: skip


def test_cache_file_is_sha1_of_url(isolated_cache):
    url = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
    assert N.cache_file("gpt2") == isolated_cache / hashlib.sha1(url.encode()).hexdigest()


def test_found_in_tiktoken_cache(isolated_cache, small_vocab):
    write_ranks(N.cache_file("r50k_base"), small_vocab)
    avail = available_named_encodings()
    assert avail["gpt2"] and avail["r50k_base"] and not avail["o200k_base"]
    tok = named_encoding("gpt2", verify=False)
    assert tok.name == "gpt2" and tok.pattern == GPT2_PATTERN
    assert tok.eot_id == 50256 and tok.vocab_size == 50257
    # ids between the ranks and the specials exist in the id space but hold no token
    assert tok.token_label(49999) == "<unused 49999>"
    assert len([tok.token_label(i) for i in range(tok.vocab_size)]) == tok.vocab_size
    text = "Once upon a time<|endoftext|> there was a fox."
    assert tok.decode(tok.encode(text)) == text
    assert explain.encode(tok, text) == tok.encode(text)
    # the stand-in is not the real file: with verification on, the sha256 check says so
    N._load.cache_clear()
    with pytest.raises(TokenizerError, match="sha256"):
        named_encoding("gpt2")


def test_user_given_file_and_env_dir(tmp_path, monkeypatch, small_vocab):
    f = write_ranks(tmp_path / "r50k_base.tiktoken", small_vocab)
    assert named_encoding("r50k_base", f, verify=False).vocab == small_vocab
    with pytest.raises(TokenizerUnavailable, match="does not exist"):
        named_encoding("r50k_base", tmp_path / "nope.tiktoken")
    monkeypatch.setenv("GLASSBOX_TIKTOKEN_DIR", str(tmp_path))
    assert available_named_encodings()["r50k_base"]
    # load_tokenizer accepts a .tiktoken file too
    assert load_tokenizer(f).vocab == small_vocab


def test_unknown_name():
    with pytest.raises(TokenizerError, match="unknown encoding"):
        named_encoding("gpt5")


# ---- real GPT-2 ranks, only where the file is on this machine (never downloaded) ----------
REAL = N.find_ranks_file("gpt2")  # looked up at import, before the fixture empties the cache


@pytest.mark.skipif(
    REAL is None, reason="GPT-2 ranks (r50k_base.tiktoken) not cached on this machine"
)
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=60))
def test_python_encoder_reproduces_gpt2(text):
    tok = named_encoding("gpt2", REAL)
    assert explain.encode(tok, text) == tok.encode(text)
    assert tok.encode("Hello world") == [15496, 995]


def test_gpt2_merges_file_matches_tiktokens_reader(tmp_path):
    """A Hugging Face GPT-2 folder's merges.txt (= vocab.bpe) gives the ranks tiktoken's own
    data-gym reader gives (checked on a stand-in made from our merges)."""
    import json

    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    spell = {b: c for c, b in N._gpt2_byte_decoder().items()}
    tok = train_bpe(tinytales.generate(20_000), 400, pattern=GPT2_PATTERN)
    lines = ["#version: 0.2"]
    for a, b in tok.merges:
        lines.append(
            "".join(spell[x] for x in tok.vocab[a]) + " " + "".join(spell[x] for x in tok.vocab[b])
        )
    folder = tmp_path / "gpt2-hf"
    folder.mkdir()
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ranks = N.read_ranks(folder)
    order = list(N._gpt2_byte_decoder().values())
    encoder = {"".join(spell[x] for x in t): r for t, r in ranks.items()}
    (folder / "vocab.json").write_text(json.dumps(encoder), encoding="utf-8")
    assert ranks == data_gym_to_mergeable_bpe_ranks(
        str(folder / "merges.txt"), str(folder / "vocab.json")
    )
    assert [ranks[bytes([b])] for b in order] == list(range(256))
    gpt2 = named_encoding("gpt2", folder, verify=False)
    text = "Once upon a time, a little red fox 😀 ran."
    assert gpt2.decode(gpt2.encode(text)) == text
    assert explain.encode(gpt2, text) == gpt2.encode(text)
    # tiktoken's own gpt2 cache entry (vocab.bpe under sha1 of its URL) is found too
    N._load.cache_clear()
    (folder / "merges.txt").replace(tiktoken_cache := N.candidates("gpt2")[-1])
    assert tiktoken_cache.is_file() and available_named_encodings()["gpt2"]
    assert named_encoding("gpt2", verify=False).encode(text) == gpt2.encode(text)
    with pytest.raises(TokenizerError, match="sha256"):
        N._load.cache_clear()
        named_encoding("gpt2")
