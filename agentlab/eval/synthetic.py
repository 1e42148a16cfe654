"""A seeded synthetic long-context set with gold chunk ids.

Three kinds of items, each hidden in filler prose of a target length (8k-128k tokens) with
distractors that share the question's words:
- needle: one fact ("The access code of the amber falcon is 4821.") among other access codes;
- multikey: the asked key has near-duplicate keys (same animal, other colours) with other codes;
- twohop: "The brass compass belongs to Mira Okafor." ... "Mira Okafor lives in Tallinn." -- the
  question names only the object, so the owner is a bridge; other owners live in other cities.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from agentlab.literature.pdftext import chunk_text, estimate_tokens

COLOURS = ["amber", "azure", "crimson", "cobalt", "golden", "ivory", "jade", "scarlet", "silver", "violet",
           "olive", "coral", "indigo", "copper", "teal", "umber"]
ANIMALS = ["falcon", "otter", "heron", "lynx", "badger", "marten", "ibis", "gecko", "bison", "crane"]
OBJECTS = ["brass compass", "glass lantern", "oak chest", "silk banner", "iron kettle", "clay urn",
           "paper kite", "bronze bell", "wool cloak", "stone idol", "tin whistle", "ebony flute"]
FIRST = ["Mira", "Tomas", "Ines", "Kofi", "Lena", "Ravi", "Sana", "Oskar", "Yuki", "Dario", "Amara", "Emil"]
LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Haddad", "Kowalski", "Ferreira", "Nakamura", "Quinn", "Abara"]
CITIES = ["Tallinn", "Porto", "Kraków", "Nairobi", "Hobart", "Valparaíso", "Tromsø", "Cusco", "Plovdiv", "Halifax",
          "Ghent", "Izmir"]
_SUBJ = ["The committee", "A regional survey", "The maintenance crew", "An early report", "The archive",
         "A visiting scholar", "The harbour office", "Local historians", "The weather service", "A small team"]
_VERB = ["reviewed", "described", "compared", "summarised", "questioned", "recorded", "catalogued", "revisited"]
_OBJ = ["the seasonal timetable", "the drainage plans", "several old ledgers", "the ferry schedule",
        "the annual rainfall figures", "a set of faded maps", "the market regulations", "the bridge repairs",
        "the lighthouse logs", "the school enrolment numbers", "the grain prices", "the road surveys"]
_TAIL = ["in considerable detail", "without reaching a conclusion", "over several weeks", "for the council",
         "with some reluctance", "before the winter", "at the request of residents", "in a brief memo"]
KINDS = ("needle", "multikey", "twohop")


@dataclass
class Item:
    id: str
    kind: str
    length: int  # target tokens
    question: str
    answer: str
    gold_chunks: list[int]
    text: str = field(repr=False)

    def to_dict(self, with_text: bool = False) -> dict:
        d = asdict(self)
        if not with_text:
            d.pop("text")
        return d


def _filler_para(rng: random.Random) -> str:
    return " ".join(f"{rng.choice(_SUBJ)} {rng.choice(_VERB)} {rng.choice(_OBJ)} {rng.choice(_TAIL)}."
                    for _ in range(rng.randint(4, 8)))


def _code(rng: random.Random) -> str:
    return str(rng.randint(1000, 9999))


def _facts(kind: str, rng: random.Random) -> tuple[str, str, list[str], list[str]]:
    """(question, answer, gold fact sentences, distractor sentences)."""
    if kind == "needle":
        keys = rng.sample([(c, a) for c in COLOURS for a in ANIMALS], 6)
        codes = rng.sample(range(1000, 9999), 6)
        sents = [f"The access code of the {c} {a} is {k}." for (c, a), k in zip(keys, codes)]
        c, a = keys[0]
        return f"What is the access code of the {c} {a}?", str(codes[0]), sents[:1], sents[1:]
    if kind == "multikey":
        animal = rng.choice(ANIMALS)
        colours = rng.sample(COLOURS, 5)
        codes = rng.sample(range(1000, 9999), 5)
        sents = [f"The access code of the {c} {animal} is {k}." for c, k in zip(colours, codes)]
        return f"What is the access code of the {colours[0]} {animal}?", str(codes[0]), sents[:1], sents[1:]
    if kind == "twohop":
        objs = rng.sample(OBJECTS, 4)
        people = [f"{f} {l}" for f, l in zip(rng.sample(FIRST, 4), rng.sample(LAST, 4))]
        cities = rng.sample(CITIES, 4)
        own = [f"The {o} belongs to {p}." for o, p in zip(objs, people)]
        live = [f"{p} lives in {c}." for p, c in zip(people, cities)]
        q = f"In which city does the owner of the {objs[0]} live?"
        return q, cities[0], [own[0], live[0]], own[1:] + live[1:]
    raise ValueError(f"unknown kind {kind!r} (use {', '.join(KINDS)})")


def make_item(kind: str, length: int, seed: int, chunk_tokens: int = 256) -> Item:
    rng = random.Random(f"{kind}-{length}-{seed}")
    question, answer, gold, distractors = _facts(kind, rng)
    paras: list[str] = []
    total = 0
    while total < length:
        p = _filler_para(rng)
        paras.append(p)
        total += estimate_tokens(p)
    # facts go into distinct paragraphs at random depths; a two-hop pair is kept far apart
    slots = rng.sample(range(len(paras)), min(len(paras), len(gold) + len(distractors)))
    if kind == "twohop" and len(slots) >= 2:
        slots[0], slots[1] = min(slots[:2]), max(slots[:2])
    for sent, slot in zip(gold + distractors, slots):
        words = paras[slot].split(". ")
        pos = rng.randint(0, len(words) - 1)
        words.insert(pos, sent.rstrip("."))
        paras[slot] = ". ".join(words)
    text = "\n\n".join(paras)
    chunks = chunk_text(text, chunk_tokens)
    gold_ids = sorted({c.id for c in chunks for s in gold if s.rstrip(".") in c.text})
    return Item(f"{kind}-{length}-{seed}", kind, length, question, answer, gold_ids, text)


def make_set(lengths: list[int], n: int, seed: int, kinds: tuple[str, ...] = KINDS,
             chunk_tokens: int = 256) -> list[Item]:
    return [make_item(k, L, seed * 1000 + i, chunk_tokens) for L in lengths for k in kinds for i in range(n)]
