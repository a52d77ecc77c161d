"""What one student does: about 20 interactions across the pages, and the teacher's training.

A step is (action, widget, value): "open" a page by its url path, "set" a widget (by key) to a
value, or "click" a button. Each student types their own text (the session number goes into the
prompt), so caches help only where students really do the same thing: open a page on the
default prompt, pick a layer, move a slider to a common value.
"""

from __future__ import annotations

import random

PAGES = ("tokenize", "attention", "sample", "embeddings", "activations", "architecture", "train")

STORIES = (
    "Lily saw a fox in the garden. Lily",
    "Once upon a time, a little bear found a red ball",
    "The cat sat on the warm mat and the dog",
    "Tom and Mia went to the park. Tom",
    "A tiny bird sang every morning near the river",
)


def student(i: int, seed: int = 0) -> list[tuple[str, str, object]]:
    """The interactions of student `i` (deterministic for a seed)."""
    rng = random.Random(seed * 1000 + i)
    story = f"{rng.choice(STORIES)} {i}"
    return [
        ("open", "tokenize", None),
        ("set", "tok_text", f"{story} and then they laughed."),
        ("set", "tok_ctx", [float(rng.choice((4, 8, 16)))]),
        ("open", "attention", None),
        ("set", "prompt", story),
        ("set", "att_layer", str(rng.randrange(1, 4))),  # never the default: a real change
        ("set", "att_head", str(rng.randrange(1, 4))),
        ("open", "sample", None),
        ("set", "smp_temp", [rng.choice((0.5, 0.7, 1.2))]),
        ("set", "smp_topk", [float(rng.choice((10, 40)))]),
        ("click", "smp_go", None),
        ("open", "embeddings", None),
        ("set", "emb_colour", rng.choice(("frequency", "token length"))),
        ("open", "activations", None),
        ("set", "act_layer", str(rng.randrange(1, 4))),
        ("open", "architecture", None),
        ("set", "arch_L", [float(rng.choice((2, 6, 8)))]),
        ("set", "arch_act", rng.choice(("relu", "swiglu"))),
        ("open", "train", None),
        ("open", "sample", None),
        ("set", "smp_seed", float(rng.randrange(1, 1000))),
        ("click", "smp_go", None),
    ]


# The teacher's training: the Train page's defaults (2 layers, C=64, T=64, batch 16) on a small
# TinyTales corpus with the character tokenizer (it starts at once), with enough steps to keep
# training through the whole measurement.
TRAINING = [
    ("open", "train", None),
    ("set", "train_tokenizer", "Characters"),
    ("set", "train_corpus_kb", [100.0]),
    ("set", "train_max_steps", 1_000_000.0),
    ("set", "train_label", "load-training"),
    ("click", "train_start", None),
]
TRAINING_RUN = "load-training"


def kind(step: tuple[str, str, object]) -> str:
    """The interaction type a step is reported under."""
    action, what, _ = step
    return f"{action}:{what}"
