"""A scripted clarifier for tests and the CI run of `agentlab eval coc`: a rule-based reader that
computes every CoC reply from the prompt it receives (never from the gold answers).

It knows the synthetic set's sentence templates ("The access code of the X is N.", "The X belongs
to P.", "P lives in C.") and otherwise falls back to word overlap. It is a test fixture, served
through `ScriptedLLM` over real HTTP; the product never uses it.
"""

from __future__ import annotations

import re

from tests.fakes.openai_server import ScriptedLLM

PARA = re.compile(r"<para (\d+) paper=\"[^\"]*\">\n(.*?)\n</para>", re.DOTALL)
NOTE = re.compile(r"^- Q: (.*?) -> A: (.*?) \(paras ([\d, ]*)\)$", re.MULTILINE)
_STOP = set("the a an of and or to in on for is are was were be by with that this it as at from which what who "
            "where when how does do did whom whose".split())


def user_text(body: dict) -> str:
    return "\n".join(m.get("content") or "" for m in body["messages"] if m["role"] == "user")


def field(text: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*\n?(.+)$", text, re.MULTILINE)
    return m.group(1).strip() if m else ""


def passages(text: str) -> list[tuple[int, str]]:
    return [(int(i), t) for i, t in PARA.findall(text)]


def notes(text: str) -> list[tuple[str, str, list[int]]]:
    return [(q, a, [int(x) for x in ids.split(",") if x.strip()]) for q, a, ids in NOTE.findall(text)]


def words(s: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", s.lower()) if w not in _STOP}


def _first_match(pattern: str, paras: list[tuple[int, str]]) -> tuple[str, list[int]]:
    """The first group of `pattern` in the first paragraph it matches: (answer, [that paragraph's id])."""
    for i, t in paras:
        hit = re.search(pattern, t)
        if hit:
            return hit.group(1), [i]
    return "", []


def _best_overlap(question: str, paras: list[tuple[int, str]]) -> tuple[str, list[int]]:
    """The sentence sharing most words with the question, if it shares at least half of them."""
    q = words(question)
    best = (0, "", -1)
    for i, t in paras:
        for sent in re.split(r"(?<=[.!?])\s+", t):
            score = len(q & words(sent))
            if score > best[0]:
                best = (score, sent, i)
    return (best[1], [best[2]]) if best[0] >= max(1, len(q) // 2) else ("", [])


def find(question: str, paras: list[tuple[int, str]]) -> tuple[str, list[int]]:
    """Answer one simple question from paragraphs: (answer, ids of paragraphs used)."""
    m = re.search(r"access code of the (\w+ \w+)", question)
    if m:
        return _first_match(rf"access code of the {m.group(1)} is (\d+)", paras)
    m = re.search(r"owner of the (\w+ \w+) live", question)
    if m:  # two hops inside the given paragraphs
        owner, ids = find(f"Who does the {m.group(1)} belong to?", paras)
        city, ids2 = find(f"Where does {owner} live?", paras) if owner else ("", [])
        return (city, ids + ids2) if city else ("", [])
    m = re.search(r"does the (\w+ \w+) belong to", question)
    if m:
        return _first_match(rf"The {m.group(1)} belongs to (\w+ \w+)", paras)
    m = re.search(r"Where does (\w+ \w+) live", question)
    if m:
        return _first_match(rf"{m.group(1)} lives in ([^\W\d_]+)", paras)
    return _best_overlap(question, paras)  # generic: the sentence sharing most words with the question


def clarify(body: dict) -> dict:
    text = user_text(body)
    q = field(text, "Main question")
    done = notes(text)
    m = re.search(r"owner of the (\w+ \w+) live", q)
    if m:
        if not done:
            cl = [f"Who does the {m.group(1)} belong to?"]
        elif len(done) == 1 and done[0][1] and "not found" not in done[0][1]:
            cl = [f"Where does {done[0][1]} live?"]
        else:
            return {"clarifications": [], "done": True}
    else:
        if done:
            return {"clarifications": [], "done": True}
        cl = [q]
    m = re.search(r"Ask up to (\d+) clarifying", text)
    n = int(m.group(1)) if m else 1
    return {"clarifications": cl + [f"What else is said near: {q}"] * (n - 1), "done": False}


def pointback(body: dict) -> dict:
    text = user_text(body)
    _, ids = find(field(text, "Clarifying question"), passages(text))
    return {"para_ids": ids}


def answer(body: dict) -> dict:
    text = user_text(body)
    ans, ids = find(field(text, "Clarifying question"), passages(text))
    return {"answer": ans or "not found in the paragraphs", "sufficient": bool(ids)}


def final(body: dict) -> dict:
    text = user_text(body)
    q = field(text, "Question")
    paras = passages(text)
    ans, ids = find(q, paras)
    if not ans and notes(text):
        last_q, last_a, last_ids = notes(text)[-1]
        shown = {i for i, _ in paras}
        ans, ids = last_a, [i for n in notes(text) for i in n[2] if i in shown]
    return {"answer": ans or "not found", "para_ids": ids if ans else []}


def grounded_note(body: dict) -> dict:
    """A note that cites the first shown paragraphs (claims are copied sentences)."""
    paras = passages(user_text(body))
    first = lambda i: re.split(r"(?<=[.!?])\s+", paras[i][1])[0][:200]  # noqa: E731
    k = len(paras)
    claim = lambda i: {"text": first(i % k), "para_ids": [paras[i % k][0]]}  # noqa: E731
    return {"problem": [claim(0)], "method": [claim(1)], "datasets": [claim(2)], "metrics": [claim(3)],
            "key_numbers": [claim(4)], "limitations": [claim(5)], "relevance": "related to the idea"}


def install(srv: ScriptedLLM) -> ScriptedLLM:
    srv.on("CocClarify", clarify).on("CocPointback", pointback).on("CocAnswer", answer).on("CocFinal", final)
    srv.on("GroundedNote", grounded_note)
    return srv
