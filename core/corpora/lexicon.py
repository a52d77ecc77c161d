"""The TinyTales lexicon: every content word the story generator can use, by category.

Because each word's category is known, an embedding map of a model trained on TinyTales has
ground truth: colours should gather with colours, animals with animals. The app colours
tokens by these categories (`category_of`).

About 900 words (760 entries plus verb forms): enough that a byte-level BPE trained on a few
MB of TinyTales learns 2,048 tokens from real words (with 540 it ran out of merges at 1,416).
A word that could belong to two categories is listed under the first one only ("orange" is a
colour first, then a food); names avoid common words ("Drew", "Holly") so a token's category
is never a surprise.
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    """A word list written as whitespace-separated text (one word per entry)."""
    return text.split()


GIRLS = _words("""
Lily Mia Anna Sara Emma Zoe Lucy Ruby Ella Nora Ivy Rosa Maya Hana Amara Priya Leila Chloe Grace
Alice Daisy Fatima Sofia Yuki Olivia Ava Isla Freya Millie Rosie Evie Hannah Julia Clara Stella
Luna Hazel Nina Lena Mila Aisha Zara Noor Mei Lin Sakura Ines Elena Carmen Lucia Paula Greta Heidi
Astrid Molly Tessa Bella Julie Kate Jane Amy Beth Laura Esme Tilly Nadia Rania Selma Olga Vera
Dina Kira Asha Lola Martha Edith Helen Maria Sophie Alma Thea
""")
BOYS = _words("""
Tom Ben Max Sam Leo Jack Omar Finn Noah Luca Kai Theo Hugo Ravi Felix Oscar Arlo Jamal Pedro Kenji
Tariq Eli Milo Ezra Adam Ali Aaron Arthur Carlos Daniel David Dylan Edward Ethan George Harry
Henry Isaac Ivan Jacob James Joe Jonas Karl Liam Lucas Marco Mateo Nico Oliver Otto Paul Peter
Rafael Ryan Sami Simon Timo Victor Walter Yusuf Zane Hiro Arjun Kofi Emil Lars Bruno Diego Malik
""")
THEY = _words("""
Alex Robin Sky Jules Quinn Rowan Sage Remy Ari Bailey Charlie Frankie Jamie Jordan Morgan Parker
Riley Taylor Casey Eden
""")

GENDER: dict[str, str] = (
    {n: "she" for n in GIRLS} | {n: "he" for n in BOYS} | {n: "they" for n in THEY}
)

# subject, object, possessive, reflexive; "they" takes plural verbs ("they were")
PRONOUNS = {
    "she": ("she", "her", "her", "herself"),
    "he": ("he", "him", "his", "himself"),
    "they": ("they", "them", "their", "themselves"),
}

# action: base, past, -ing (irregulars spelled out); every one reads after "liked to", "and
# <past>", "was good at <-ing>"
_ACTIONS = """
run ran running|jump jumped jumping|sing sang singing|dance danced dancing|swim swam swimming
climb climbed climbing|read read reading|draw drew drawing|play played playing|hop hopped hopping
skip skipped skipping|paint painted painting|bake baked baking|dig dug digging|build built building
hide hid hiding|look looked looking|laugh laughed laughing|walk walked walking|fly flew flying
crawl crawled crawling|roll rolled rolling|spin spun spinning|slide slid sliding
splash splashed splashing|clap clapped clapping|march marched marching|wiggle wiggled wiggling
giggle giggled giggling|whistle whistled whistling|skate skated skating|sail sailed sailing
row rowed rowing|stretch stretched stretching|bounce bounced bouncing|twirl twirled twirling
tiptoe tiptoed tiptoeing|wander wandered wandering|explore explored exploring|shout shouted shouting
cheer cheered cheering|nap napped napping|rest rested resting|stomp stomped stomping
wave waved waving|paddle paddled paddling|race raced racing|leap leapt leaping|knit knitted knitting
sew sewed sewing|cook cooked cooking|write wrote writing|count counted counting|hum hummed humming
yawn yawned yawning|wobble wobbled wobbling|dive dived diving|float floated floating
glide glided gliding|gallop galloped galloping|waddle waddled waddling|juggle juggled juggling
sketch sketched sketching|swing swung swinging|sleep slept sleeping|ride rode riding
tumble tumbled tumbling|scurry scurried scurrying|flutter fluttered fluttering|sniff sniffed sniffing
peek peeked peeking|chat chatted chatting|whisper whispered whispering|stamp stamped stamping
"""
_FORMS = [line.split() for line in _ACTIONS.replace("\n", "|").split("|") if line.strip()]

LEXICON: dict[str, list[str]] = {
    "names": GIRLS + BOYS + THEY,
    "animals": _words("""
cat dog bird fox rabbit bear duck frog mouse owl pig cow horse sheep goat lion tiger turtle fish
bee hen puppy kitten squirrel hedgehog deer whale monkey elephant snail butterfly penguin zebra
giraffe panda koala kangaroo camel donkey chicken goose swan crab octopus seal otter beaver badger
mole wolf bat parrot ant ladybird spider worm dolphin shark jellyfish crocodile hippo rhino
flamingo pony lamb calf chick raccoon lizard caterpillar dragonfly beetle goldfish puffin peacock
llama hamster duckling piglet bunny fawn seagull crow sparrow pigeon hare toad walrus tortoise
"""),
    "colours": _words("""
red blue green yellow pink purple orange brown black white gold silver grey violet teal navy cream
tan lilac turquoise crimson scarlet amber indigo coral
"""),
    "numbers": _words("one two three four five six seven eight nine ten eleven twelve"),
    "foods": _words("""
apple cake cookie bread banana carrot cheese soup pie pear plum sandwich muffin berry peach egg
noodle pancake grape melon pizza potato tomato strawberry cherry lemon mango cucumber pea bean
biscuit cupcake donut waffle pretzel bagel tart lollipop cracker dumpling taco sausage meatball
coconut pineapple kiwi lime apricot fig pumpkin pepper radish turnip pudding blueberry raspberry
watermelon walnut acorn marshmallow scone crumpet croissant brownie pickle
""")
    + ["honey bun", "jam tart", "cinnamon roll"],
    "places": _words("""
park garden forest beach farm river lake hill school house kitchen market library zoo meadow barn
pond castle village playground cave island bakery field mountain valley shop station harbour pool
museum bridge tower lighthouse jungle desert orchard treehouse attic bedroom backyard street town
city camp seaside shore woods cafe circus farmhouse stable pier windmill fountain playroom
classroom hallway porch cottage palace tunnel waterfall stream cliff
""")
    + ["toy shop", "post office", "bus stop", "ice rink"],
    "feelings": _words("""
happy sad angry scared proud tired excited surprised lonely calm brave worried shy cheerful grumpy
curious joyful glad jolly merry delighted thankful hopeful relaxed peaceful playful eager bored
nervous upset cross gloomy confused frightened unhappy sleepy hungry
"""),
    "actions": [f[0] for f in _FORMS],
    "objects": _words("""
ball kite book hat box cup drum boat car doll shoe key bell star rock stick leaf flower blanket
basket shell feather lamp map spoon sock bucket train robot umbrella crayon button puzzle marble
trumpet guitar piano flute jar bottle bowl plate brush comb mirror clock pillow candle ribbon
necklace ring crown wand balloon teapot kettle ladder rope wheel sled wagon rocket block pencil
notebook backpack lunchbox torch pebble pinecone tent shovel rake net hammer envelope letter card
picture poster flag bubble
""")
    + ["teddy bear", "watering can", "toy car", "music box"],
    "clothes": _words("""
coat scarf boot mitten glove sweater jumper dress skirt shirt jacket raincoat cap slipper sandal
belt apron cape hoodie cardigan bonnet beanie tutu
""")
    + ["sun hat"],
    "plants": _words("""
tree bush rose tulip sunflower daffodil mushroom cactus fern clover dandelion bluebell buttercup
poppy vine snowdrop
""")
    + ["pine tree", "oak tree", "apple tree", "willow tree"],
    "vehicles": _words("""
bus bike van truck tractor ship plane tram ferry scooter canoe taxi helicopter submarine digger
""")
    + ["fire engine"],
    "sizes": _words("""
big little tiny huge small tall long round soft shiny fluffy old new fuzzy bumpy spotty stripy
sparkly muddy wobbly squeaky smooth fast slow noisy quiet bouncy curly
"""),
    "family": ["mom", "dad", "grandma", "grandpa", "sister", "brother", "aunt", "uncle"]
    + ["cousin", "granny", "grandad", "nana", "baby brother", "baby sister"],
    "weather": _words("""
sunny rainy windy snowy cloudy warm cold foggy stormy breezy frosty misty hot chilly bright
"""),
    "times": ["morning", "afternoon", "evening", "night", "day"]
    + ["spring day", "summer day", "autumn day", "winter day"]
    + _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday"),
}

# past tense of each action, and the -ing form, for templates
PAST = {f[0]: f[1] for f in _FORMS}
ING = {f[0]: f[2] for f in _FORMS}
SOUNDS = {
    "cat": "meow",
    "dog": "woof",
    "bird": "tweet",
    "duck": "quack",
    "frog": "ribbit",
    "mouse": "squeak",
    "owl": "hoot",
    "pig": "oink",
    "cow": "moo",
    "horse": "neigh",
    "sheep": "baa",
    "goat": "maa",
    "lion": "roar",
    "bee": "buzz",
    "hen": "cluck",
    "puppy": "yip",
    "kitten": "mew",
    "monkey": "ooh ooh",
    "elephant": "toot",
    "donkey": "hee haw",
    "chicken": "cluck",
    "goose": "honk",
    "seal": "arf",
    "wolf": "awoo",
    "parrot": "squawk",
    "crow": "caw",
    "lamb": "baa",
    "chick": "cheep",
    "pony": "neigh",
    "seagull": "squawk",
    "toad": "croak",
    "pigeon": "coo",
    "tiger": "grr",
    "bear": "growl",
}


def _build_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for cat, words in LEXICON.items():
        for w in words:
            index.setdefault(w.lower(), cat)  # "orange" is a colour first, then a food
    for forms in (PAST, ING):
        for form in forms.values():
            index.setdefault(form, "actions")
    return index


WORD_CATEGORY: dict[str, str] = _build_index()


def category_of(word: str) -> str | None:
    """The lexicon category of a word or token text (case and surrounding space ignored)."""
    return WORD_CATEGORY.get(word.strip().lower())
