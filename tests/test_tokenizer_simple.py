"""The book's tokenizers: characters, and Raschka's ch. 2 word tokenizer with <|unk|>."""

import pytest

from core.tokenizer import (
    ENDOFTEXT,
    UNK,
    CharTokenizer,
    SimpleWordTokenizer,
    TokenizerError,
    load_tokenizer,
)

VERDICT = "I HAD always thought Jack Gisburn rather a cheap genius--though a good fellow enough--so it was no great surprise to me to hear that, in the height of his glory, he had dropped his painting."


def test_word_tokenizer_like_the_book():
    tok = SimpleWordTokenizer(VERDICT)
    assert tok.tokens[-2:] == [ENDOFTEXT, UNK]
    assert SimpleWordTokenizer.split("Hello, world. Is this-- a test?") == [
        "Hello", ",", "world", ".", "Is", "this", "--", "a", "test", "?"
    ]  # fmt: skip
    text = "Hello, do you like tea? <|endoftext|> In the height of his glory."
    ids = tok.encode(text)
    assert ids[0] == tok.unk_id  # "Hello" is not in the vocabulary
    assert tok.eot_id in ids
    # "?" never occurs in the training text either
    assert tok.decode(ids) == (
        "<|unk|>, <|unk|> <|unk|> <|unk|> <|unk|> <|unk|> <|endoftext|> <|unk|> the height of his glory."
    )
    known = "he had dropped his painting."
    assert tok.decode(tok.encode(known)) == known


def test_char_tokenizer():
    tok = CharTokenizer("hello world")
    assert tok.vocab_size == len(set("hello world")) + 2
    assert tok.decode(tok.encode("hello")) == "hello"
    ids = tok.encode("hex<|endoftext|>o")
    assert ids[2] == tok.unk_id and ids[3] == tok.eot_id and len(ids) == 5
    assert tok.token_label(tok.encode("h")[0]) == "h"
    with pytest.raises(TokenizerError):
        tok.decode([tok.vocab_size])


@pytest.mark.parametrize("cls", [CharTokenizer, SimpleWordTokenizer])
def test_save_load(cls, tmp_path):
    tok = cls(VERDICT)
    back = load_tokenizer(tok.save(tmp_path / "t.json"))
    assert type(back) is cls
    assert back.tokens == tok.tokens and back.content_hash == tok.content_hash
    assert back.encode(VERDICT) == tok.encode(VERDICT)
    assert cls("other text").content_hash != tok.content_hash
