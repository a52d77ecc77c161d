"""Built-in corpora and user text: deterministic, sized, varied, and checked with clear errors."""

import io
import re

import pytest

from core.corpora import (
    LEXICON,
    CorpusError,
    category_of,
    load_corpus,
    pyprose,
    read_user_text,
    tinytales,
)
from core.corpora.lexicon import GENDER
from core.corpora.stats import corpus_stats

EOT = "<|endoftext|>"
GOLDEN_200K = "79b6aec1255cfb347e41111c7e9ed8133da99e6046187c2ac5a0e5e800de3bab"  # tinytales.generate(200_000, seed=0)


def test_same_seed_same_text_and_prefix_stable():
    a = tinytales.generate(100_000, seed=7)
    assert a == tinytales.generate(100_000, seed=7)
    assert a != tinytales.generate(100_000, seed=8)
    longer = tinytales.generate(200_000, seed=7)
    assert longer.startswith(a)


@pytest.mark.parametrize("n", [1_000, 100_000, 1_234_567])
def test_size(n):
    text = tinytales.generate(n)
    assert n - 2000 < len(text.encode()) <= n  # whole stories: at most one story short
    assert text.isascii()


def test_tiny_request_still_gives_text():
    assert 0 < len(tinytales.generate(50)) <= 50


def test_stories_are_separated_and_complete():
    stories = tinytales.generate(50_000, seed=1).split(EOT)
    assert len(stories) > 20
    for s in stories:
        assert s[0].isupper() and s.rstrip().endswith((".", '"', "!"))
        assert "  " not in s and "{" not in s


def test_pronouns_agree_with_the_hero():
    """In a story opening 'there was a ... girl/boy named X', later pronouns follow X."""
    text = tinytales.generate(300_000, seed=2)
    checked = 0
    for story in text.split(EOT):
        m = re.match(r"Once upon a time, there was a \w+ (girl|boy|kid) named (\w+)\.", story)
        if not m:
            continue
        kind, name = m.groups()
        assert {"girl": "she", "boy": "he", "kid": "they"}[kind] == GENDER[name]
        wrong = {"she": [" He ", " his "], "he": [" She ", " her "], "they": [" They was"]}[
            GENDER[name]
        ]
        if name in story.split(".")[1]:  # the next sentence is about the hero, if it names them
            assert not any(w in story.split(".")[1] for w in wrong)
        checked += 1
    assert checked > 50
    assert " they was " not in text.lower() and " she were " not in text.lower()


def test_names_and_spans_recur_within_a_story():
    """Induction needs repetition: multi-word spans (the pet's full name) come back."""
    stories = tinytales.generate(200_000, seed=3).split(EOT)
    repeats = 0
    for s in stories:
        words = s.split()
        trigrams = [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]
        if len(set(trigrams)) < len(trigrams):
            repeats += 1
    assert repeats / len(stories) > 0.9


def test_counting_is_consistent():
    text = tinytales.generate(300_000, seed=4)
    for m in re.finditer(r"saw (\w+) (\w+) (\w+)\. \w+ counted them: ([a-z, ]+)\.", text):
        number, counted = m.group(1), m.group(4).split(", ")
        assert counted[-1] == number and counted[0] == "one"


def test_lexicon():
    for cat in (
        "names",
        "animals",
        "colours",
        "numbers",
        "foods",
        "places",
        "feelings",
        "actions",
        "objects",
    ):
        assert len(LEXICON[cat]) >= 8, cat
    assert set(LEXICON["names"]) == set(GENDER)
    assert category_of(" Red") == "colours" and category_of("fox") == "animals"
    assert category_of("jumped") == "actions" and category_of("zebra-crossing") is None
    text = tinytales.generate(500_000)
    used = set(re.findall(r"[a-z]+", text.lower()))
    for cat in ("animals", "colours", "numbers", "feelings", "objects", "places"):
        single = [w for w in LEXICON[cat] if " " not in w]
        assert sum(w in used for w in single) / len(single) > 0.9, cat


def test_variety_figures():
    # measured (300 kB, seed 0): 0.90 distinct sentences, 1260 words, H2|1 3.6, H3|2 1.75 bits
    s = corpus_stats(tinytales.generate(300_000, seed=0))
    assert s["distinct_sentence_ratio"] > 0.8
    assert s["vocabulary"] > 1100
    assert s["H2_given_1_bits"] > 3.0 and s["H3_given_2_bits"] > 1.5


def test_bpe_vocabulary_reaches_2048():
    """The shipped model's BPE (trained on the first 2 MB, the CLI's --bpe-bytes default)
    asks for 2048 tokens; the lexicon must be rich enough that merges do not run out first."""
    from core.tokenizer import train_bpe

    tok = train_bpe(tinytales.generate(2_000_000, seed=0), 2048)
    assert tok.vocab_size == 2048
    ids = tok.encode(" the little red fox")
    assert tok.decode(ids) == " the little red fox" and len(ids) == 4  # whole words by then


def test_articles_and_plurals_agree():
    text = tinytales.generate(500_000, seed=5)
    assert not re.search(r"\ba [aeiou]", text), re.search(r".{30}\ba [aeiou].{30}", text)
    assert not re.search(r"\ban [^aeiou\s]", text)
    for bad in ("wolfs", "gooses", "mouses", "cactuses", "potatos", "scarfs", "fishs"):
        assert bad not in text
    for opening in ("who loved to", "there lived", "planted", "by ", "put on", "made"):
        assert opening in text


def test_pyprose():
    topics = load_corpus("pyprose")
    assert "assert" in topics and topics.count(EOT) > 50
    assert pyprose.generate() == topics
    sized = load_corpus("pyprose", n_bytes=100_000)
    assert 90_000 < len(sized.encode()) <= 100_000
    with pytest.raises(CorpusError, match="only"):
        load_corpus("pyprose", n_bytes=10**9)


def test_load_corpus():
    assert load_corpus("tinytales", 5000, seed=3) == tinytales.generate(5000, seed=3)
    with pytest.raises(CorpusError, match="unknown corpus"):
        load_corpus("shakespeare")
    for name in ("tinytales", "pyprose"):  # pyprose gave "" (found by a review)
        for n in (0, -5):
            with pytest.raises(CorpusError, match="positive"):
                load_corpus(name, n)


def test_read_user_text(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeffline one\r\nline two é\n".encode())
    assert read_user_text(p) == "line one\nline two é\n"
    assert read_user_text(b"hello") == "hello"
    assert read_user_text(io.BytesIO("héllo".encode())) == "héllo"
    cases = [
        (b"", "empty"),
        (b" \n\t ", "only whitespace"),
        (b"abc\x00def", "binary"),
        (b"caf\xe9 latin-1", "not UTF-8"),
        (b"x" * 101, "limit"),
    ]
    for data, message in cases:
        with pytest.raises(CorpusError, match=message):
            read_user_text(data, max_bytes=100)
    with pytest.raises(CorpusError, match="does not exist"):
        read_user_text(tmp_path / "missing.txt")
    big = tmp_path / "big.txt"
    big.write_bytes(b"y" * 2000)
    with pytest.raises(CorpusError, match="limit"):
        read_user_text(big, max_bytes=1000)
    with pytest.raises(CorpusError, match="not a file"):
        read_user_text(tmp_path)


def test_tinytales_text_is_pinned():
    """The shipped model's run.json records the sha256 of its TinyTales corpus; any change to
    the generator's output for a seed breaks that record. Change it only on purpose."""
    import hashlib

    text = tinytales.generate(200_000, seed=0)
    assert hashlib.sha256(text.encode()).hexdigest() == GOLDEN_200K
