"""TinyTales: a deterministic generator of simple English children's stories.

The default training corpus. In the spirit of TinyStories (Eldan & Li 2023) but written here,
with no download: a lexicon of about 900 words (lexicon.py) and story templates with pronoun agreement
(she / he / they follow the name), dialogue, counting, cause and effect, and characters, pets
and objects whose full names ("the little red fox") recur through a story, so that a model
can learn to copy what it saw earlier in the context (induction heads).

Same seed => same text; a bigger n_bytes extends the same stream of stories. ASCII only, so
a byte is a character. Stories are separated by <|endoftext|>.
"""

from __future__ import annotations

import random

from .lexicon import GENDER, ING, LEXICON, PAST, PRONOUNS, SOUNDS, _words, category_of  # noqa: F401

EOT = "<|endoftext|>"

_IRREGULAR = {
    "mouse": "mice",
    "sheep": "sheep",
    "fish": "fish",
    "deer": "deer",
    "leaf": "leaves",
    "goose": "geese",
    "wolf": "wolves",
    "calf": "calves",
    "scarf": "scarves",
    "jellyfish": "jellyfish",
    "goldfish": "goldfish",
    "cactus": "cacti",
    "potato": "potatoes",
    "tomato": "tomatoes",
    "mango": "mangoes",
}
NAMES = LEXICON["names"]
ANIMALS = LEXICON["animals"]
COLOURS = LEXICON["colours"]
NUMBERS = LEXICON["numbers"]
FOODS = LEXICON["foods"]
PLACES = LEXICON["places"]
FEELINGS = LEXICON["feelings"]
GOOD_FEELINGS = _words("""
happy proud excited calm brave cheerful surprised joyful glad jolly merry delighted thankful
hopeful relaxed peaceful playful
""")
BAD_FEELINGS = _words("""
sad angry scared tired lonely worried grumpy shy bored nervous upset cross gloomy confused
frightened unhappy
""")
ACTIONS = LEXICON["actions"]
OBJECTS = LEXICON["objects"]
SIZES = LEXICON["sizes"]
FAMILY = LEXICON["family"]
WEATHER = LEXICON["weather"]
TIMES = LEXICON["times"]
CLOTHES = LEXICON["clothes"]
PLANTS = LEXICON["plants"]
VEHICLES = LEXICON["vehicles"]
WET = {"rainy", "snowy", "cold", "windy", "foggy", "stormy", "frosty", "misty", "chilly"}
KID_WORDS = _words("""
little small tall kind funny clever gentle young brave curious friendly busy quiet helpful silly
""")
SOUNDING = [a for a in ANIMALS if a in SOUNDS]


def plural(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


class _Person:
    """A character: name plus the pronouns and verb forms that agree with it."""

    __slots__ = ("name", "s", "o", "pos", "refl", "was", "kind", "S", "Pos")

    def __init__(self, name: str):
        g = GENDER[name]
        self.name = name
        self.s, self.o, self.pos, self.refl = PRONOUNS[g]
        self.S, self.Pos = _cap(self.s), _cap(self.pos)
        self.was = "were" if g == "they" else "was"
        self.kind = {"she": "girl", "he": "boy", "they": "kid"}[g]


def _story(rng: random.Random) -> str:
    c = rng.choice
    h = _Person(c(NAMES))
    other = c(NAMES)
    while other == h.name:
        other = c(NAMES)
    f = _Person(other)
    animal = c(ANIMALS)
    pet = f"{c(SIZES)} {c(COLOURS)} {animal}"  # a multi-word span that recurs verbatim
    obj = f"{c(COLOURS)} {c(OBJECTS)}"
    place = c(PLACES)
    out: list[str] = []
    w = out.append

    # opening
    k = rng.randrange(6)
    if k == 0:
        w(f"Once upon a time, there was a {c(KID_WORDS)} {h.kind} named {h.name}.")
    elif k == 1:
        w(f"One {c(WEATHER)} {c(TIMES)}, {h.name} went to the {place}.")
    elif k == 2:
        w(f"{h.name} lived in {_a(c(SIZES))} house near the {place} with {h.pos} {c(FAMILY)}.")
    elif k == 3:
        w(f"There was once {_a(c(FEELINGS))} {h.kind}. {h.S} {h.was} called {h.name}.")
    elif k == 4:
        w(f"{h.name} was {_a(c(KID_WORDS))} {h.kind} who loved to {c(ACTIONS)}.")
    else:
        home = c(["village", "town", "city", "cottage", "house"])
        w(f"In {_a(c(SIZES))} {home} by the {place}, there lived {_a(c(KID_WORDS))} {h.kind}.")
        w(f"The {h.kind} was called {h.name}.")
    w(
        c(
            [
                f"{h.name} had {_a(pet)}.",
                f"{h.S} had a pet. It was {_a(pet)}.",
                f"{h.name} loved {h.pos} {pet} very much.",
            ]
        )
    )
    w(
        c(
            [
                f"{h.S} also had {_a(obj)}.",
                f"{h.Pos} favourite toy was {_a(obj)}.",
                f"Every day {h.name} played with {h.pos} {obj}.",
            ]
        )
    )
    w(
        c(
            [
                f"One day, {h.name} met {f.name} at the {place}.",
                f"{h.name} had a friend named {f.name}.",
                f"{f.name} lived next door to {h.name}.",
            ]
        )
    )

    episodes = [_count, _talk, _lost, _weather, _share, _song, _feel, _game]
    episodes += [_garden, _trip, _help, _bake, _dress]
    rng.shuffle(episodes)
    for ep in episodes[: 2 + rng.randrange(4)]:
        ep(rng, w, h, f, pet, obj, animal, place)

    w(
        c(
            [
                f"At the end of the day, {h.name} and {f.name} went home.",
                f"When it was time to go home, {h.name} said goodbye to {f.name}.",
                f"That night, {h.name} went to sleep with the {pet} close by.",
                f'{h.name} hugged the {pet} and said, "This was the best day ever!"',
            ]
        )
    )
    w(
        c(
            [
                f"{h.S} felt {c(GOOD_FEELINGS)}.",
                f"{h.name} learned that friends help each other.",
                f"{h.name} learned that sharing makes everyone happy.",
                f"{h.name} and the {pet} lived happily ever after.",
                f"The next day, {h.name} and {f.name} played again.",
                f"From that day on, {h.name} and {f.name} were best friends.",
            ]
        )
    )
    return " ".join(out)


def _count(rng, w, h, f, pet, obj, animal, place):
    n = 2 + rng.randrange(11)
    thing = rng.choice([rng.choice(ANIMALS), rng.choice(OBJECTS), rng.choice(FOODS)])
    col = rng.choice(COLOURS)
    things = plural(thing)
    w(f"At the {rng.choice(PLACES)}, {h.name} saw {NUMBERS[n - 1]} {col} {things}.")
    w(f"{h.S} counted them: {', '.join(NUMBERS[:n])}.")
    w(f'"There are {NUMBERS[n - 1]} {col} {things}!" said {h.name}.')
    if rng.random() < 0.5:
        w(f"Then one {col} {thing} went away, and there were {NUMBERS[n - 2]} {col} {things}.")


def _talk(rng, w, h, f, pet, obj, animal, place):
    if rng.random() < 0.5:
        w(f'"Can I play with your {obj}?" asked {f.name}.')
        if rng.random() < 0.7:
            w(f'"Yes, you can," said {h.name}. {f.name} was {rng.choice(GOOD_FEELINGS)}.')
        else:
            w(f'"No, it is mine," said {h.name}. {f.name} felt {rng.choice(BAD_FEELINGS)}.')
            w(f"Later {h.name} said sorry and gave the {obj} to {f.name}.")
    else:
        feel = rng.choice(FEELINGS)
        w(f'"How do you feel, {h.name}?" asked {f.name}. "I feel {feel}," said {h.name}.')
        w(f'"Why do you feel {feel}?" asked {f.name}.')
        w(f'"Because the {pet} {PAST[rng.choice(ACTIONS)]} away," said {h.name}.')


def _lost(rng, w, h, f, pet, obj, animal, place):
    p1, p2 = rng.sample(PLACES, 2)
    w(f"One {rng.choice(TIMES)}, {h.name} lost {h.pos} {obj}.")
    w(f"{h.S} looked in the {p1}. {h.S} looked in the {p2}.")
    hider = rng.choice([f"the {pet}", f.name])
    w(f"Then {hider} found the {obj} under {_a(rng.choice(OBJECTS))}.")
    w(f"{h.name} was so {rng.choice(GOOD_FEELINGS)} to have the {obj} back.")


def _weather(rng, w, h, f, pet, obj, animal, place):
    wx = rng.choice(WEATHER)
    act = rng.choice(ACTIONS)
    if wx in WET:
        w(f"It was {wx} outside, so {h.name} and {f.name} stayed inside and {PAST[act]}.")
        w(f"Because it was {wx}, the {pet} stayed inside too.")
    else:
        w(f"It was {wx}, so {h.name} and {f.name} went to the {rng.choice(PLACES)} to {act}.")
        w(f"{h.S} liked to {act} because it made {h.o} feel {rng.choice(GOOD_FEELINGS)}.")


def _share(rng, w, h, f, pet, obj, animal, place):
    n = 2 + rng.randrange(6)
    food = rng.choice(FOODS)
    w(f"{h.name} had {NUMBERS[n - 1]} {plural(food)}. {f.name} had none.")
    w(f"{h.S} gave one {food} to {f.name}.")
    w(
        f"Now {h.name} had {NUMBERS[n - 2]} {plural(food) if n > 2 else food} and {f.name} had one {food}."
    )
    w(f'"Thank you, {h.name}!" said {f.name}.')


def _song(rng, w, h, f, pet, obj, animal, place):
    a = rng.choice(SOUNDING)
    s = SOUNDS[a]
    w(f"In the {rng.choice(PLACES)} there was {_a(a)}. The {a} said {s}, {s}.")
    w(f'{h.name} sang a song: "{_cap(s)}, {s}, little {a}, {s}, {s}, all day long."')
    w(f'The {a} said "{s}" back, and the {pet} wanted to {rng.choice(ACTIONS)}.')


def _feel(rng, w, h, f, pet, obj, animal, place):
    bad = rng.choice(BAD_FEELINGS)
    cause = rng.choice(
        [
            f"the {obj} broke",
            f"the {pet} ran away",
            f"{f.name} did not want to play",
            "it started to rain",
        ]
    )
    w(f"{h.name} felt {bad} because {cause}.")
    fix = rng.choice(
        [
            f"{f.name} gave {h.o} a big hug.",
            f"{h.pos} {rng.choice(FAMILY)} helped {h.o}.",
            f"{h.s} took a deep breath and felt better.",
        ]
    )
    w(f"Then {fix} {h.name} was not {bad} any more.")


def _game(rng, w, h, f, pet, obj, animal, place):
    act = rng.choice(ACTIONS)
    w(f"{h.name} and {f.name} played a game at the {place}.")
    w(f"They had to {act} like {_a(rng.choice(ANIMALS))}.")
    w(f"{f.name} was good at {_ing(act)}, and {h.name} was good at {_ing(rng.choice(ACTIONS))}.")
    w(f"The {pet} watched them and {PAST[rng.choice(ACTIONS)]}.")


def _garden(rng, w, h, f, pet, obj, animal, place):
    c = rng.choice
    plant = c(PLANTS)
    w(f"{h.name} and {f.name} planted {_a(plant)} in the {c(['garden', 'backyard', 'meadow'])}.")
    w(f"Every {c(TIMES)}, {h.s} watered the {plant} with {_a(c(COLOURS))} watering can.")
    w(f"The {plant} grew and grew until it was taller than the {pet}.")
    w(f'"Look, {f.name}!" said {h.name}. "Our {plant} is so {c(["tall", "big", "pretty"])} now!"')


def _trip(rng, w, h, f, pet, obj, animal, place):
    c = rng.choice
    fam, dest = c(FAMILY), c(PLACES)
    act, act2 = rng.sample(ACTIONS, 2)
    n = 2 + rng.randrange(11)
    seen = f"{c(SIZES)} {c(COLOURS)} {c(VEHICLES)}"
    w(f"One {c(TIMES)}, {h.name} and {h.pos} {fam} went to the {dest} by {c(VEHICLES)}.")
    w(f"On the way, {h.s} saw {_a(seen)} and {NUMBERS[n - 1]} {plural(c(ANIMALS))}.")
    w(f"At the {dest}, they {PAST[act]} and {PAST[act2]} all day.")
    w(f'"Can we come back soon?" asked {h.name}. "Yes, we can," said {h.pos} {fam}.')


def _help(rng, w, h, f, pet, obj, animal, place):
    c = rng.choice
    a = c(ANIMALS)
    spot = c(["under a bush", "in a puddle", "up a tree", "behind a rock", "in the mud"])
    w(f"At the {c(PLACES)}, {h.name} found {_a(c(SIZES))} {a} {spot}.")
    w(f"The {a} was {c(['stuck', 'lost', 'cold', 'hungry', 'scared'])}.")
    w(f"{h.name} and {f.name} helped the {a}. They gave it {_a(c(FOODS))}.")
    w(f"The {a} was {c(GOOD_FEELINGS)} and went home, and {h.name} smiled.")


def _bake(rng, w, h, f, pet, obj, animal, place):
    c = rng.choice
    food, fruit = rng.sample(FOODS, 2)
    n = 2 + rng.randrange(5)
    w(f"{h.name} and {h.pos} {c(FAMILY)} made {plural(food)} for {f.name}.")
    w(f"First they put in {NUMBERS[n - 1]} {plural(fruit)}.")
    w(f"Then they put in some {c(['milk', 'flour', 'sugar', 'butter', 'honey', 'jam'])}.")
    w(
        f'The {plural(food)} smelled {c(["yummy", "sweet", "good", "lovely"])}. "Yum!" said {f.name}.'
    )


def _dress(rng, w, h, f, pet, obj, animal, place):
    c = rng.choice
    wx, cl = c(WEATHER), c(CLOTHES)
    if wx in WET:
        w(f"It was {wx}, so {h.name} put on {h.pos} {c(COLOURS)} {cl}.")
    else:
        w(f"It was {wx}, so {h.name} took off {h.pos} {c(COLOURS)} {cl}.")
    w(f'"I like your {cl}," said {f.name}. "Thank you," said {h.name}.')
    w(f'"My {c(FAMILY)} gave it to me."')


def _ing(verb: str) -> str:
    return ING[verb]


def stories(seed: int = 0):
    """An endless, deterministic stream of stories."""
    rng = random.Random(seed)
    while True:
        yield _story(rng)


def generate(n_bytes: int, seed: int = 0) -> str:
    """About `n_bytes` of stories (complete stories, never more than n_bytes), joined by <|endoftext|>.

    Same seed => same text, and a larger n_bytes gives a longer text with the same start.
    """
    if n_bytes <= 0:
        raise ValueError("n_bytes must be positive")
    parts: list[str] = []
    total = 0
    sep = len(EOT)
    for story in stories(seed):
        cost = len(story) + (sep if parts else 0)
        if total + cost > n_bytes:
            if not parts:  # asked for less than one story: cut the first one
                parts.append(story[:n_bytes])
            break
        parts.append(story)
        total += cost
    return EOT.join(parts)
