"""Pre-tokenisation patterns: the regexes that cut text into chunks before BPE.

BPE never merges across a chunk boundary, so the pattern decides what a token can be (a word
with its leading space, a run of digits, a run of punctuation, whitespace). These are the
patterns of OpenAI's tiktoken encodings, copied so that nothing needs `tiktoken_ext` (whose
constructors download). Reference: Radford et al. 2019 (GPT-2), tiktoken's openai_public.py.
"""

# GPT-2 / r50k_base (the original pattern, written with possessive quantifiers as tiktoken does).
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)

# GPT-4 / cl100k_base: case-insensitive contractions, digits in groups of at most three,
# a letter run may take one leading non-letter (e.g. a space or a quote).
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)

# GPT-4o / o200k_base.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "o200k": O200K_PATTERN}

ENDOFTEXT = "<|endoftext|>"


def resolve_pattern(pattern: str) -> str:
    """Accept a pattern name ("gpt2", "gpt4", "o200k") or a regex string."""
    return PATTERNS.get(pattern, pattern)
