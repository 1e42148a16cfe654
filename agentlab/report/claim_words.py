"""Vocabularies of the claim checks (`agentlab.report.claims`), as data, and the small helpers over them and over
the LaTeX source (same-length views of it, environments, math, balance).

Words are matched case-insensitively unless a pattern says otherwise. See docs/integrity.md §2.
"""

from __future__ import annotations

import re

# ---- numbers written as words -------------------------------------------------------------------------------
CARDINALS = ("two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
             "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety").split()
MAGNITUDES = "hundreds? thousands? millions? billions? trillions? dozens?".split()
MULTIPLIERS = ("half halves halved halving twice thrice doubles? doubled doubling triples? tripled tripling "
               "quadruples? quadrupled quadrupling").split()
#: what may stand before "fold" in a multiplier word (twofold, ten-fold, n-fold, manyfold); manifold, unfold,
#: scaffold, blindfold do not match
FOLD_PREFIXES = [*CARDINALS, "one", "hundred", "thousand", "many", "several", "multi", "n", "k", "x"]
NUMBER_WORD_RE = re.compile(
    r"\b(?:" + "|".join(FOLD_PREFIXES) + r")[- ]?fold\b"
    r"|\b(?:" + "|".join(CARDINALS + MAGNITUDES + MULTIPLIERS) + r")\b"
    r"|\borders?\s+of\s+magnitude\b|\bper\s*cent\b", re.IGNORECASE)
#: number-looking words that name a data type, not a quantity
NUMBER_WORD_OK_RE = re.compile(r"\b(?:half|double)[- ](?:precision|float)", re.IGNORECASE)
PERCENT_RE = re.compile(r"^per\s*cent", re.IGNORECASE)
MULTIPLIER_RE = re.compile(r"fold|half|halv|twice|thrice|doubl|tripl|quadrupl|magnitude", re.IGNORECASE)

# ---- sentences ----------------------------------------------------------------------------------------------
#: a period after these does not end a sentence
ABBREVIATIONS = ["e.g", "i.e", "et al", "vs", "cf", "fig", "figs", "sec", "secs", "eq", "eqs", "tab", "tabs", "resp",
                 "approx", "w.r.t", "ref", "refs", "app", "appx", "ch", "alg"]
ABBREV_RE = re.compile(r"(?:^|[^A-Za-z.])(?:" + "|".join(re.escape(a).replace(r"\ ", r"[\s~]+") for a in ABBREVIATIONS)
                       + r")\.$", re.IGNORECASE)
#: environments that are one unit each (a float, a table); display math never breaks a sentence
BLOCK_ENVS = {"figure", "figure*", "table", "table*", "tabular", "tabular*", "tabularx", "algorithm",
              "algorithmic", "wrapfigure", "verbatim"}
MATH_ENVS = {"equation", "equation*", "align", "align*", "gather", "gather*", "multline", "multline*",
             "eqnarray", "eqnarray*", "displaymath", "math", "split", "aligned", "gathered", "cases", "array",
             "matrix", "pmatrix", "bmatrix", "vmatrix", "Bmatrix", "Vmatrix", "smallmatrix", "flalign", "flalign*"}
LIST_ENVS = {"itemize", "enumerate", "description"}
HEADINGS = ("section", "subsection", "subsubsection", "paragraph", "subparagraph")
#: control sequences whose arguments are names or layout, never prose (digits there are fine)
NAME_ARGS = ("ref", "eqref", "autoref", "cref", "Cref", "pageref", "label", "nameref", "includegraphics", "url",
             "href", "hspace", "vspace", "begin", "end", "cmidrule", "cline", "multicolumn", "setlength",
             "resizebox")

# ---- claim words --------------------------------------------------------------------------------------------
SIGNIFICANCE_RE = re.compile(
    r"\b(?:in|non-?)?significan(?:t|tly|ce)\b|\bstatistically\b|\bp-?values?\b|\bp\s*(?:<|=|\\le|\\leq|≤)"
    r"|\bt-?tests?\b|\bconfidence\s+intervals?\b", re.IGNORECASE)
#: statistical words that describe the method, not a finding, when the sentence gives the interval or alpha value
DESCRIPTIVE_RE = re.compile(r"confidence\s+intervals?\b|significance\s+(?:level|threshold)\b", re.IGNORECASE)
SIG_CLAIM_RE = re.compile(r"\b(?:in|non-?)?significan(?:t|tly|ce)\b|\bstatistically\b", re.IGNORECASE)
NEGATION_RE = re.compile(r"\b(?:not|no|never|neither|nor|without|insignificant(?:ly)?|non-?significant(?:ly)?"
                         r"|indistinguishable"
                         r"|cannot|fails?\s+to|failed\s+to|failing\s+to)\b|n't\b", re.IGNORECASE)
COMPARISON_RE = re.compile(r"\b(?:than|outperform\w*|beats?|beating|versus|vs\.|compared?|comparing|comparison"
                           r"|against|over|baselines?|surpass\w*|exceed\w*|better|worse|unlike|relative\s+to"
                           r"|improv\w*|superior|inferior|ahead\s+of|match(?:es|ing)?|rivals?|competitive|behind"
                           r"|lag(?:s|ging)?|trail(?:s|ing)?|wins?|loses?|dominat\w*|falls?\s+short)\b",
                           re.IGNORECASE)
FIRST_PERSON_RE = re.compile(r"\b(?:we|our|ours|us|this\s+work|this\s+paper|this\s+report|here|in\s+this\s+run)\b",
                             re.IGNORECASE)
#: clause separators (a method or metric word names what follows it up to the next one)
CLAUSE_SEP_RE = re.compile(r"[,;:]|\b(?:but|whereas|while|although|though)\b", re.IGNORECASE)
#: well-known methods of the field (besides the toolkit's registry, `Evidence.known_methods`), matched in any case
FIELD_METHODS = set("""
h2o snapkv streamingllm streaming_llm tova scissorhands pyramidkv pyramidinfer adakv ada-kv kivi kvquant fastgen
keyformer infllm minference duoattention razorattention cachegen lm-infinite quest-kv sparsegpt wanda llm-pruner
slicegpt gptq awq smoothquant squeezellm omniquant spqr llm.int8 flashattention longformer bigbird linformer
specinfer lookahead-decoding
""".split())
#: names that are also English words: matched only as the method writes them
FIELD_METHODS_CASED = {"Quest", "EAGLE", "EAGLE-2", "Medusa", "REST", "GEAR", "Hydra", "OWL", "FLAP", "Sequoia",
                       "QuIP", "Performer", "Reformer"}
#: method names that are ordinary words: a mention only when a method noun follows ("the full cache")
AMBIGUOUS_METHODS = {"full", "dense", "random", "none", "window", "local", "recent", "greedy", "uniform", "vanilla",
                     "exact", "oracle", "magnitude", "sparse", "baseline", "default", "standard", "static", "dynamic",
                     "naive", "simple", "fixed", "base", "sink", "sinks", "topk", "top", "all", "mean", "max", "min"}
METHOD_NOUN = r"(?=[\s~-]+(?:KV[\s~-]+)?(?:cache|attention|kv|baseline|method|eviction|policy|pruning|decoding)\b)"
PROPOSED_RE = re.compile(r"\b(?:our|ours|proposed)\b", re.IGNORECASE)
WE_RE = re.compile(r"\bwe\b", re.IGNORECASE)

# ---- seeds --------------------------------------------------------------------------------------------------
SEED_WORDS = r"(?:random\s+|different\s+|independent\s+|training\s+)?(?:seeds?|runs?|repetitions?|trials?)\b"
SINGLE_SEED_RE = re.compile(r"\b(?:one|a\s+single|single|only\s+one)\s+(?:random\s+)?seed\b", re.IGNORECASE)
MANY_SEEDS_RE = re.compile(r"\b(?:across|multiple|several|many|different|various|independent|over|all|per)"
                           r"\s+(?:\w+\s+)?seeds\b|\bseed-to-seed\b|\bacross\s+runs\b", re.IGNORECASE)
COUNT_BEFORE_SEEDS_RE = re.compile(r"\s*~?\s*" + SEED_WORDS, re.IGNORECASE)

# ---- hardware -----------------------------------------------------------------------------------------------
#: (pattern, the device substrings one of which must be recorded); None: the name itself must be recorded
GPU_DEVICES = ("cuda", "gpu", "nvidia", "rocm", "amd instinct", "mps")
CPU_DEVICES = ("cpu", "x86", "amd64", "arm", "aarch64", "xeon", "epyc", "ryzen", "intel", "apple", "core")
HARDWARE = [
    (re.compile(r"\bGPUs?\b|\bgraphics\s+cards?\b", re.IGNORECASE), GPU_DEVICES),
    (re.compile(r"\bCUDA\b", re.IGNORECASE), ("cuda", "nvidia")),
    (re.compile(r"\bTPUs?\b", re.IGNORECASE), ("tpu", "xla")),
    (re.compile(r"\bCPUs?\b|\bprocessor\s+cores?\b", re.IGNORECASE), CPU_DEVICES),
    (re.compile(r"\b(?:[AHVB]\d{2,3}|A10G?|T4|L4|L40S?|P100|K80|GH200|GB200)\b"), None),
    (re.compile(r"\b(?:RTX|GTX|Titan|Quadro)(?:\s*[A-Z]?\d{3,4}(?:\s*Ti)?)?\b", re.IGNORECASE), None),
    (re.compile(r"\bMI\d{2,3}X?\b"), None),
    (re.compile(r"\bApple\s+M[1-4](?:\s+(?:Pro|Max|Ultra))?\b|\bM[1-4](?:\s+(?:Pro|Max|Ultra))?\s+(?:chip|SoC)\b"
                r"|\bApple\s+[Ss]ilicon\b"), None),
    (re.compile(r"\b(?:Xeon|EPYC|Ryzen|Threadripper|Graviton|Gaudi|Jetson)\b", re.IGNORECASE), None),
    (re.compile(r"\b(?:Intel\s+)?Core\s+i[3579]\b", re.IGNORECASE), None),
]

#: words dropped from a device name before it is looked up in the recorded devices ("Apple M2 chip" -> "m2")
HW_FILLER = {"apple", "chip", "soc", "intel", "core", "mac", "macs", "macbook", "nvidia", "amd", "geforce", "silicon"}

# ---- models -------------------------------------------------------------------------------------------------
#: a model identifier with a size token (Llama-2-7B, OPT-6.7B, SmolLM2-135M, Qwen2.5-0.5B-Instruct, pythia-70m)
MODEL_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*?[-_]\d+(?:\.\d+)?[BMbm]\b(?:-[A-Za-z]+)*")
#: a bare size next to the word model/parameters ("7B model", "135M-parameter")
MODEL_SIZE_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?[BM])(?=[\s~-]*(?:param\w*|models?|LLMs?|language\s+model))")
#: model families named without a size (GPT-4, Llama-3, Mistral); short or word-like names are case-sensitive
MODEL_FAMILY_RE = re.compile(
    r"(?<![\w-])(?:(?i:llama|mistral|mixtral|pythia|falcon|qwen|gemma|vicuna|alpaca|tinyllama|smollm|olmo|deepseek"
    r"|baichuan|chatglm|gpt-?neox?|gpt-?j|gpt-?[1-4]o?)|OPT|BLOOM|MPT|Phi|BERT|RoBERTa|T5)"
    r"(?:[-.]?[A-Za-z0-9]+)*(?![\w-])")

# ---- metrics and units --------------------------------------------------------------------------------------
#: metric-name part -> family (a metric name is split at "_" and "-": "kv_bytes" -> memory)
METRIC_FAMILY = {
    "ppl": "ppl", "perplexity": "ppl", "loss": "loss", "nll": "loss", "acc": "accuracy", "accuracy": "accuracy",
    "em": "accuracy", "bytes": "memory", "mem": "memory", "memory": "memory", "mib": "memory", "mb": "memory",
    "gb": "memory", "footprint": "memory", "latency": "speed", "time": "speed", "ms": "speed", "sec": "speed",
    "seconds": "speed", "throughput": "speed", "tps": "speed", "tokens/s": "speed", "speed": "speed",
    "speedup": "speed", "runtime": "speed", "compression": "compression", "cr": "compression",
}
#: metric word in prose -> the families it may describe
METRIC_WORDS = [
    (re.compile(r"\bperplexit(?:y|ies)\b|\bppl\b", re.IGNORECASE), {"ppl", "loss"}),
    (re.compile(r"\b(?:loss|nll|negative\s+log-likelihood)\b", re.IGNORECASE), {"loss", "ppl"}),
    (re.compile(r"\b(?:latenc(?:y|ies)|runtime|wall-?clock|speeds?|speedups?|speeding|throughput|tokens\s+per\s+second"
                r"|tokens/s|faster|slower|quicker|accelerat\w+|(?:decoding|inference|generation|running|wall|compute"
                r"|prefill)[\s-]+times?)\b", re.IGNORECASE), {"speed"}),
    (re.compile(r"\b(?:memory|bytes|cache\s+size|footprint|storage)\b", re.IGNORECASE), {"memory", "compression"}),
    (re.compile(r"\baccurac(?:y|ies)\b|\bexact\s+match\b", re.IGNORECASE), {"accuracy"}),
    (re.compile(r"\bcompress(?:ion|es|ed)?\b", re.IGNORECASE), {"compression", "memory"}),
]
#: what may stand between a value and the method named right after it: "X for H2O" / "X (H2O)" say whose value
#: it is (group attr); "X below SnapKV" / "X over the full cache" name what a comparison is against
POST_NAME_RE = re.compile(
    r"[\s~(]*(?:(?:increase|decrease|gain|drop|reduction|improvement|lower|higher|better|worse|less|more|smaller"
    r"|larger|fewer)[\s~]+)?(?:(?P<attr>for|of|from)|below|above|over|under|than|against|versus|vs\.|relative\s+to"
    r"|compared\s+(?:with|to)|ahead\s+of|behind)?[\s~]*(?:the[\s~]+)?", re.IGNORECASE)
#: what joins the names of a list of methods ("H2O, SnapKV and the full cache")
LIST_SEP_RE = re.compile(r"[\s~]*(?:,[\s~]*)?(?:(?:and|or|&)[\s~]+)?(?:the[\s~]+)?", re.IGNORECASE)
#: a count used as a measured change: "by N", "a factor of N" before it
COUNT_AS_CHANGE_RE = re.compile(r"\b(?:by|factor\s+of|(?:gain|improvement|reduction|speedup|drop|increase|decrease"
                                r"|saving|compression)\s+of)[\s~]*$", re.IGNORECASE)
#: what may stand between a value and the metric word it is about ("N lower perplexity", "N of memory")
NEXT_TO_RE = re.compile(r"[\s~\x01]*(?:(?:of|in|the|lower|higher|better|worse|less|more|smaller|larger|fewer)"
                        r"[\s~\x01]+)*", re.IGNORECASE)
#: a comparative claim about a metric (it needs a value of that metric somewhere in the run)
COMPARATIVE_RE = re.compile(r"\b(?:faster|slower|quicker|speeds?\s+up|speedups?|accelerat\w+|lower|higher|low|high"
                            r"|shorter|less|more|fewer|differences?|gaps?"
                            r"|reduc\w+|improv\w+|sav(?:e|es|ing|ings)|better|worse|smaller|larger|cuts?)\b",
                            re.IGNORECASE)
SPEED_CLAIM_RE = re.compile(r"\b(?:faster|slower|quicker|speeds|speeding|speedups?|accelerat\w+)\b", re.IGNORECASE)

#: unit typed after a \val -> unit class (what Value.unit / the metric family it fits)
UNIT_AFTER_RE = re.compile(
    r"^(?:\s|~|\\,|\\ )*(?P<u>\\%|%|\$\s*\\times\s*\$|\\times|×|\bx\b|\bX\b|times\b|"
    r"(?:[KMGT]i?B|kB|bytes?)\b|ms\b|s\b|sec(?:onds?)?\b|milliseconds?\b|minutes?\b|"
    r"tokens?\s*/\s*s\b|tok/s\b|tokens\s+per\s+second\b|percentage\s+points?\b|points?\b|pp\b|"
    r"per\s*cent\b|percent\b)")
UNIT_CLASS = [
    (re.compile(r"%|per\s*cent|percent|points?|pp", re.IGNORECASE), "%"),
    (re.compile(r"times|×|x|X"), "x"),
    (re.compile(r"[KMGT]i?B|kB|bytes?"), "memory"),
    (re.compile(r"tok"), "speed"),
    (re.compile(r"ms|s|sec|milli|minute"), "speed"),
]
#: Value.unit -> unit class
VALUE_UNIT_CLASS = {"%": "%", "x": "x", "bytes": "memory", "KiB": "memory", "MiB": "memory", "GiB": "memory",
                    "tokens/s": "speed", "s": "speed", "ms": "speed"}
#: metric family -> the unit class a unit word after its value must have ("" : none fits)
FAMILY_UNIT = {"p": "", "ppl": "", "loss": "", "accuracy": "", "memory": "memory", "speed": "speed", "compression": "x"}


def metric_family(metric: str) -> str:
    """The family of a metric column name ("" when unknown)."""
    parts = [p for p in re.split(r"[_\-\s.]+", metric.lower()) if p]
    return next((METRIC_FAMILY[p] for p in parts if p in METRIC_FAMILY), "")


def unit_class(word: str) -> str:
    word = word.strip("$\\ ")
    return next((c for rx, c in UNIT_CLASS if rx.match(word)), "")


def normalise_quote(text: str) -> str:
    """Compare a quoted paper number with the paper's text: LaTeX escapes undone, whitespace collapsed."""
    for a, b in ((r"\%", "%"), (r"\&", "&"), (r"\_", "_"), (r"\#", "#"), (r"\$", "$"), ("~", " "), (r"\,", " "),
                 ("$\\times$", "×"), ("\u00a0", " "), ("\u2009", " "), ("\u2212", "-"), ("–", "-")):
        text = text.replace(a, b)
    return " ".join(text.split())


# ---- the source's structure, tokens and typed citations ----------------------------------------------------
CITE_RE = re.compile(r"\\([A-Za-z]*[Cc]ite[A-Za-z]*)\*?\s*((?:\[[^\]]*\]\s*){0,2})\{([^{}]*)\}")
ITEM_RE = re.compile(r"\\item(?![A-Za-z])")
HEADING_RE = re.compile(r"\\(?:" + "|".join(HEADINGS) + r")\*?(?![A-Za-z])")
BLANK_RE = re.compile(r"\n[ \t]*\n")
END_RE = re.compile(r"[.!?][)}'\"]*(?=\s+[A-Z0-9\\(`\"'\[]|\s*$)")
TEXT_END_RE = re.compile(r"[.!?][)\]'\"”’]*(?=\s+[A-Z0-9(\"“‘\[]|\s*$)|\n[ \t]*\n")
_NUM = r"(?P<num>(?:\d|\.\d)(?:[0-9A-Za-z]|[.,:/](?=\d)|[-+](?=[0-9A-Za-z]))*)"
TOKEN_RE = re.compile(r"(?P<id>[A-Za-z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*)|" + _NUM)
TEXT_TOKEN_RE = re.compile(r"(?P<id>[A-Za-z][A-Za-z0-9]*(?:(?:-[ \t]*\n\s*|[-.])[A-Za-z0-9]+)*)|" + _NUM)
DERIVED_RE = re.compile(r"^\s*(?:pct|ratio|diff)\s*\((.*)\)\s*$", re.S)
SEED_N_RE = re.compile(r"(?<![\w.])(\d[\d,.]*|" + "|".join(CARDINALS) + r")\s*~?\s*" + SEED_WORDS, re.I)
_YEAR = r"(?:19|20)\d{2}[a-z]?"
_NAME = r"[A-Z][\w'-]+(?:\s+et\s+al\.?|\s+(?:and|&)\s+[A-Z][\w'-]+)"
TEXT_CITE_RES = [re.compile(_NAME + r"\s*,?\s*\(?" + _YEAR + r"\)?"),
                  re.compile(r"\(\s*" + _NAME + r"?\s*,?\s+" + _YEAR + r"(?:\s*;[^()]*)?\)"),
                  re.compile(r"[A-Z][\w'-]+\s+\(" + _YEAR + r"\)"),
                  re.compile(r"(?<!\\)\[\s*\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\s*\]")]
ET_AL_RE = re.compile(r"\bet[\s~]+al\b\.?")
CITED_TEXT_RE = re.compile(r"et al\.|\[(?:NUM|\d+)(?:\s*[,;–-]\s*(?:NUM|\d+))*\]|\([A-Z][^()]*?(?:NUM|\d{4})[a-z]?\)")


def hardware_ok(name: str, need: tuple[str, ...] | None, devices: list[str]) -> bool:
    """Whether a device named in prose is one the results recorded."""
    devs = [d.lower() for d in devices]
    if need:
        return any(n in d for n in need for d in devs)
    words = re.findall(r"[a-z0-9]+", name.lower())
    key = "".join(x for x in words if x not in HW_FILLER) or "".join(words[:1])
    return bool(key) and any(key in re.sub(r"[^a-z0-9]", "", d) for d in devs)


def model_ok(name: str, models: list[str]) -> bool:
    """Whether a model named in prose (or a bare size such as 7B) is one the run used (separators ignored)."""
    t = re.sub(r"[-_.\s]+", "", name.lower())
    ms = [re.sub(r"[-_.\s]+", "", m.lower()) for m in models if m]
    return any(t in m or m.split("/")[-1] in t for m in ms)


def name_pattern(name: str) -> str:
    """A method name as a regex: separators optional (streaming_llm matches StreamingLLM and streaming-LLM)."""
    parts = [re.escape(p) for p in re.split(r"[-_\s]+", name) if p]
    return r"(?<![A-Za-z0-9])" + r"[-_\s]?".join(parts) + r"(?![A-Za-z0-9])"


def norm_name(text: str) -> str:
    return re.sub(r"[-_\s]+", "", re.sub(r"\[.*", "", text.lower()))


def split_operands(s: str) -> list[str]:
    """The operands of pct(A, B): commas inside [] and () (cell ids) do not split."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        depth += 1 if ch in "[(" else -1 if ch in "])" else 0
        if ch == "," and depth == 0:
            parts, cur = [*parts, cur], ""
        else:
            cur += ch
    return [p.strip() for p in [*parts, cur]]


def quote_hint(norm: str, chunks: list[tuple[int, str]]) -> str:
    """Where a number of a wrong quote does occur in the paper's text, for the message."""
    for tok in re.findall(r"\d+(?:\.\d+)?", norm):
        for cid, t in chunks:
            t = normalise_quote(t)
            i = t.find(tok)
            if i >= 0:
                return f" (chunk {cid} has: \"...{t[max(0, i - 60): i + 60]}...\")"
    return ""


# ---- checks shared by the source and the PDF text (make(kind, message, start, end) builds the Issue) -------
def number_word_issues(text: str, val_before, make):
    for m in NUMBER_WORD_RE.finditer(text):
        word = m.group(0)
        if NUMBER_WORD_OK_RE.match(text, m.start()) or (PERCENT_RE.match(word) and val_before(m.start())):
            continue
        if PERCENT_RE.match(word):
            how = "a percent is a value: write \\val{pct(A, B)} (it renders \\%) or a value whose unit is \\%"
        elif MULTIPLIER_RE.search(word):
            how = "a multiplier is a value: write \\val{ratio(A, B)} (it renders N$\\times$) or \\val{pct(A, B)}"
        else:
            how = "write the quantity as \\val{count:...} or another name from the value list, or leave it out"
        yield make("number_word", f"number word '{word}' states a quantity in words; {how}", m.start(), m.end())


def hardware_issues(text: str, devices: list[str], offset: int, make):
    for rx, need in HARDWARE:
        for m in rx.finditer(text):
            if not hardware_ok(m.group(0), need, devices):
                yield make("hardware", f"'{m.group(0)}': the results record the device(s) "
                           f"{', '.join(devices) or 'none'}; name only a recorded device (\\val{{env:device}}), "
                           "or cite the work the hardware belongs to", offset + m.start(), offset + m.end())


def model_issues(text: str, models: list[str], offset: int, make):
    found = [(m, m.group(0)) for m in MODEL_RE.finditer(text)] + [(m, m.group(1)) for m in
                                                                     MODEL_SIZE_RE.finditer(text)]
    found += [(m, m.group(0)) for m in MODEL_FAMILY_RE.finditer(text) if not any(
        a.start() <= m.start() < a.end() for a, _ in found)]
    for m, name in found:
        if not model_ok(name, models):
            yield make("model", f"'{name}' is not a model this run used ({', '.join(models) or 'none recorded'}); "
                       "name the model as \\val{env:model}, or cite the paper that used it",
                       offset + m.start(), offset + m.end())


def text_citation_issues(text: str, offset: int, make, seen: list[tuple[int, int]] | None = None):
    seen = [] if seen is None else seen
    for rx in TEXT_CITE_RES:
        for m in rx.finditer(text):
            if not any(s <= m.start() < e for s, e in seen):
                seen.append(m.span())
                yield make("text_citation", f"'{m.group(0)}' is a typed citation; cite with \\cite{{KEY}} / "
                           "\\citet{KEY} and a key of the run's bibliography", offset + m.start(), offset + m.end())


def mentions(text: str, methods: set[str], cased: set[str] = FIELD_METHODS_CASED) -> list[tuple[int, int, str]]:
    """(start, end, normalised method name) of every method named in the text; our/ours/proposed are "proposed",
    we is "we"; a method named by an ordinary word counts only before a method noun (the full cache)."""
    names = sorted({m for m in methods if len(m) > 1}, key=len, reverse=True)
    pats = [name_pattern(n) + (METHOD_NOUN if n in AMBIGUOUS_METHODS else "") for n in names]
    found = [(m.start(), m.end(), "proposed") for m in PROPOSED_RE.finditer(text)]
    found += [(m.start(), m.end(), "we") for m in WE_RE.finditer(text)]
    if pats:
        found += [(m.start(), m.end(), norm_name(m.group(0))) for m in re.compile("|".join(pats), re.I).finditer(text)]
    taken = {s for s, _, _ in found}
    found += [(m.start(), m.end(), norm_name(m.group(0))) for m in re.finditer(
        "|".join(name_pattern(n) for n in sorted(cased, key=len, reverse=True)), text) if m.start() not in taken]
    return sorted(found)


def metric_words(text: str, a: int, b: int) -> list[tuple[int, str, set[str]]]:
    """(position, word, the metric families it may describe) of the metric words in text[a:b], in order."""
    return sorted((m.start(), m.group(0), fams) for rx, fams in METRIC_WORDS for m in rx.finditer(text, a, b))


def unique(issues: list) -> list:
    """Issues in source order, each (kind, place, message) once."""
    seen, out = set(), []
    for i in sorted(issues, key=lambda i: (i.start, i.end, i.kind)):
        if (i.kind, i.start, i.end, i.message) not in seen:
            seen.add((i.kind, i.start, i.end, i.message))
            out.append(i)
    return out


