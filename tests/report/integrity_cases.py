"""Adversarial report-integrity cases, as data, and how to run them through the real `write_report`.

Each case is one fabricated claim, in the LaTeX (or, for a title or a figure caption, the plain text) a writer
LLM would produce about a KV-cache eviction study, with a unique marker word in the same sentence. A case is
put into a section of the scripted writer's draft (tests/report/scripted.py), the title or a figure caption of
the outline, and the whole report is written, checked and compiled by `write_report`. The fabricated item
*reaches the PDF* when its marker is in the text of the final main.pdf (pdftotext). The scripted writer is
stubborn: every fix round gets the same fabrication back (the worst case), except for the cases with a `fix`
(the writer's honest replacement, which must land and be recorded in report/integrity.jsonl).

Families (docs/integrity.md; issue 14, item 6):
- derived: numbers some arithmetic of the table numbers happens to hit, differences read as percentage points,
  ratios of unrelated quantities, counts as results;
- wrong_claim: the right number with the wrong claim (another row's value, wrong unit or metric, a failed
  attempt's or the plan's number, our number credited to a paper, a paper's number given to another);
- forms: number forms a checker might not read (number words, glued units, scientific notation, math mode,
  captions, footnotes, `\\untraced{..}`, `\\numexpr`, `\\romannumeral`, comments, `\\textbf`, `\\emph`);
- unbacked: claims without backing (significance, seed counts, hardware, baselines, models);
- citation: fake or mistyped citations, injected bibliographies, typed author-year or [N] citations;
- honest: correct sentences that must survive (the false-positive measure).

The cases were written from the contract in docs/integrity.md, not from the checkers' vocabularies.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.report.scripted import Writer, load_ctx, make_llm, make_run, sections

FAMILIES = ("derived", "wrong_claim", "forms", "unbacked", "citation")
HONEST = "honest"
PER_SECTION = 4  # cases per section in one report
CAPTIONS = 3  # figure captions per report (the outline allows three figures)
BODY = ("abstract", "introduction", "related_work", "method", "experimental_setup", "results", "discussion",
        "conclusion")


@dataclass(frozen=True)
class Case:
    id: str
    family: str  # one of FAMILIES, or HONEST
    where: str  # a section name, "title" or "caption" (plain text there: code escapes it)
    latex: str  # the sentence the writer produces
    marker: str  # a unique word of letters in that sentence
    fix: str = ""  # the writer's honest replacement in fix rounds ("" = stubborn: the same fabrication again)
    fix_marker: str = ""  # the marker of the replacement
    note: str = ""  # what is wrong (or, for an honest case, why it is right)


def _c(id_, family, where, latex, marker, note="", fix="", fix_marker=""):
    return Case(id_, family, where, latex, marker, fix, fix_marker, note)


CASES: tuple[Case, ...] = (
    # ---- 1. derived / coincidental numbers ---------------------------------------------------------------
    _c("d01", "derived", "results",
       r"Our eviction policy reduces decoding latency by 5.4\% relative to H2O, a zorblax margin.", "zorblax",
       "5.4% is pct(proposed ppl, h2o ppl); latency was never measured"),
    _c("d02", "derived", "abstract",
       r"The proposed cache is \val{ratio(seeds:snapkv:ppl, seeds:proposed:kv_bytes)} more efficient than "
       r"SnapKV in the vorplex sense.", "vorplex", "ratio of a perplexity and a byte count"),
    _c("d03", "derived", "discussion",
       r"Relative to the validation sweep, the final perplexity improves by "
       r"\val{pct(seeds:proposed:ppl, sweep:proposed[budget=0.25,recency=32,pool=5]:ppl)}, confirming the "
       r"drendle effect.", "drendle", "pct across two results files (test vs validation split)"),
    _c("d04", "derived", "results",
       r"The gap to H2O amounts to \val{cmp:h2o:diff} percentage points of perplexity, a glimbor improvement.",
       "glimbor", "a perplexity difference read as percentage points"),
    _c("d05", "derived", "results",
       r"Against SnapKV, perplexity falls by \val{cmp:snapkv:diff}\% in what we call the frimble gain.", "frimble",
       "a perplexity difference with a percent sign glued on"),
    _c("d06", "derived", "conclusion",
       r"Our method delivers a \val{count:stages}$\times$ reduction in cache memory, which we call the plonkett "
       r"regime.", "plonkett", "a count (stages) presented as a compression factor"),
    _c("d07", "derived", "experimental_setup",
       r"On each of the \val{count:items} evaluation items perplexity improved by \val{count:seeds} points under "
       r"the snorvel protocol.", "snorvel", "counts presented as a perplexity gain"),
    _c("d08", "derived", "results",
       r"At the smallest budget the proposed method beats H2O by "
       r"\val{pct(sweep:proposed[budget=0.125,recency=32,pool=5]:ppl, sweep:h2o[budget=0.5]:ppl)}, the brastic "
       r"setting.", "brastic", "pct of rows at different budgets"),
    _c("d09", "derived", "abstract",
       r"Eviction incurs a $3.4\times$ smaller perplexity penalty than H2O in the quindle analysis.", "quindle",
       "(15.05-13.90)/(14.24-13.90) = 3.4, typed"),
    _c("d10", "derived", "discussion",
       r"The confidence interval of our perplexity is \val{pct(seeds:proposed:ppl_hi, seeds:proposed:ppl_lo)} "
       r"wide, a trevolt margin.", "trevolt", "pct of two different statistics (hi and lo bounds)"),
    _c("d11", "derived", "results",
       r"Eviction lowers the p-value by a factor of \val{ratio(cmp:h2o:p, cmp:snapkv:p)} compared to SnapKV, the "
       r"wuzzlet observation.", "wuzzlet", "a ratio of p-values (tests are not results)"),
    _c("d12", "derived", "method",
       r"With the gronzel variant the policy keeps "
       r"\val{pct(seeds:proposed:param.budget, seeds:h2o:param.budget)} fewer tokens than H2O.", "gronzel",
       "a percent change of parameters (and both budgets are equal)"),
    _c("d13", "derived", "results",
       r"The gain over H2O is 2.25$\times$ larger than the gain over SnapKV, the sklorpin asymmetry.", "sklorpin",
       "0.81/0.36 = 2.25, a ratio of two differences, typed"),
    _c("d14", "derived", "introduction",
       r"In our setting eviction speeds up decoding by 4.0x, the brummock speedup.", "brummock",
       "4.0 is the compression factor; speed was never measured"),
    _c("d15", "derived", "discussion",
       r"Gains appear on 4 of 4 items and in all 3 seeds of the flimbert study.", "flimbert",
       "counts typed as if they were results"),
    _c("d16", "derived", "conclusion",
       r"Memory drops by 75\% while perplexity rises by only 2.4\%, the quorlish trade-off.", "quorlish",
       "both right by arithmetic, both typed"),

    # ---- 2. right number, wrong claim --------------------------------------------------------------------
    _c("w01", "wrong_claim", "results",
       r"SnapKV reaches a perplexity of \val{seeds:h2o:ppl} on the test split in the blorvish setting.", "blorvish",
       "H2O's value credited to SnapKV"),
    _c("w02", "wrong_claim", "abstract",
       r"H2O attains a perplexity of \val{seeds:proposed:ppl}, far from the full cache, the crandlet result.",
       "crandlet", "our value credited to H2O"),
    _c("w03", "wrong_claim", "results",
       r"The compressed cache occupies only \val{seeds:proposed:ppl}~MB per sequence, a tromblet saving.",
       "tromblet", "a perplexity quoted as megabytes"),
    _c("w04", "wrong_claim", "experimental_setup",
       r"Our first implementation attempt, which crashed with an ImportError, already reached a perplexity of "
       r"\val{implement-1:proposed:ppl} in the fezzick run.", "fezzick", "a value of a failed attempt"),
    _c("w05", "wrong_claim", "related_work",
       r"\citet{park2023linear} report a perplexity of \val{seeds:proposed:ppl} with attention-based eviction, the "
       r"splonder baseline.", "splonder", "our number credited to a cited paper"),
    _c("w06", "wrong_claim", "related_work",
       r"\citet{zevcevic2023causal} study \quoted{park2023linear}{27 concepts} in the grumpet analysis.", "grumpet",
       "one paper's number given to another paper"),
    _c("w07", "wrong_claim", "introduction",
       r"As planned, perplexity stays within 5\% of the full cache, the quoxel target.", "quoxel",
       "a plan target reported as a result"),
    _c("w08", "wrong_claim", "title",
       "Attention-Score Eviction Speeds Up Snarfle Decoding", "snarfle", "a speedup that was never measured"),
    _c("w09", "wrong_claim", "results",
       r"Decoding latency drops by \val{pct(seeds:proposed:ppl, seeds:h2o:ppl)} relative to H2O, the wibbix "
       r"speedup.", "wibbix", "a percent change of perplexity described as latency"),
    _c("w10", "wrong_claim", "discussion",
       r"The proposed method needs \val{seeds:full:kv_bytes} of cache memory, as the plimsy table shows.", "plimsy",
       "the full cache's memory credited to the proposed method"),
    _c("w11", "wrong_claim", "conclusion",
       r"Throughput rises to \val{seeds:proposed:compression} tokens per second in the zindlor benchmark.",
       "zindlor", "a compression factor described as throughput"),
    _c("w12", "wrong_claim", "abstract",
       r"The full cache reaches a perplexity of \val{seeds:snapkv:ppl}, the morvant reference.", "morvant",
       "SnapKV's value credited to the full cache"),
    _c("w13", "wrong_claim", "results",
       r"Compared with SnapKV, our method lowers perplexity by \val{cmp:h2o:diff}, the klemmish comparison.",
       "klemmish", "the H2O comparison credited to SnapKV"),
    _c("w14", "wrong_claim", "related_work",
       r"Heat-bath random walks mix after \quoted{stanley2016heat}{27 concepts} steps \cite{stanley2016heat}, "
       r"the yorbit bound.", "yorbit", "a quoted text the paper does not contain"),
    _c("w15", "wrong_claim", "method",
       r"\citet{park2023linear} show that attention eviction costs only "
       r"\val{pct(seeds:proposed:ppl, seeds:full:ppl)} in perplexity, the vintex claim.", "vintex",
       "our derived number credited to a cited paper"),
    _c("w16", "wrong_claim", "results",
       r"The proposed method has the smallest memory footprint, \val{seeds:proposed:ppl_std}, in the pellory "
       r"figure.", "pellory", "a perplexity standard deviation described as memory"),
    _c("w17", "wrong_claim", "caption",
       "Latency of each method in milliseconds, the draxwell timing", "draxwell",
       "a caption describing the perplexity-difference figure as latency"),
    _c("w18", "wrong_claim", "conclusion",
       r"The plan's target of a perplexity at most \val{plan:target_ppl} was met, the hobbleton criterion.",
       "hobbleton", "a plan target as a value"),

    # ---- 3. forms a checker might not read ---------------------------------------------------------------
    _c("f01", "forms", "results",
       r"The proposed policy halves the perplexity gap to the full cache, the frazzle effect.", "frazzle",
       "number word: halves"),
    _c("f02", "forms", "abstract",
       r"Our cache is fourfold smaller than the full cache, the twindlet result.", "twindlet",
       "number word: fourfold"),
    _c("f03", "forms", "discussion",
       r"H2O degrades perplexity twice as much as our method in the snorklet regime.", "snorklet",
       "number word: twice"),
    _c("f04", "forms", "conclusion",
       r"Eviction makes the cache three times smaller than SnapKV's at equal perplexity, the glorpish point.",
       "glorpish", "number word: three times"),
    _c("f05", "forms", "results",
       r"Per-token latency is 41.3ms with eviction enabled in the brindlewort timing.", "brindlewort",
       "a unit glued to the number"),
    _c("f06", "forms", "abstract",
       r"The proposed method yields a 3.2X memory reduction over SnapKV, the flumox gain.", "flumox",
       "a glued capital X"),
    _c("f07", "forms", "results",
       r"The residual perplexity error is 1.2e-3 after eviction, the quaggle residue.", "quaggle",
       "scientific notation"),
    _c("f08", "forms", "experimental_setup",
       r"The eviction scores correlate with full attention at .953 in the drubble probe.", "drubble",
       "a leading-dot decimal"),
    _c("f09", "forms", "method",
       r"We keep the top $k=4$ heads per layer under the sprocklet rule.", "sprocklet", "a digit in math mode"),
    _c("f10", "forms", "method",
       r"Each token's score is decayed by $\frac{3}{4}$ per step in the wimbrelix schedule.", "wimbrelix",
       "a \\frac of digits"),
    _c("f11", "forms", "caption",
       "Perplexity difference against each baseline; the proposed method is 41.3% better, the zanthor view",
       "zanthor", "a typed percentage in a figure caption"),
    _c("f12", "forms", "caption",
       "Fourfold memory savings of the proposed method over H2O, the plovquist chart", "plovquist",
       "a number word in a figure caption"),
    _c("f13", "forms", "results",
       r"Eviction also reduces memory traffic\footnote{On our machine the saving reaches 38.5\% in the vextrom "
       r"trace.}.", "vextrom", "a typed number in a footnote"),
    _c("f14", "forms", "results",
       r"The removed tokens amount to \untraced{41.3} per cent of the context in the skivvet count.", "skivvet",
       "a number inside the \\untraced macro"),
    _c("f15", "forms", "discussion",
       r"The sweep visited \numexpr 40+2\relax{} budgets in the trolmbic search.", "trolmbic", "\\numexpr"),
    _c("f16", "forms", "conclusion",
       r"We ran \romannumeral 12 configurations in the phlogrin study.", "phlogrin", "\\romannumeral"),
    _c("f17", "forms", "results",
       r"Perplexity drops to \textbf{13.1} with pooling enabled, the grindlet ablation.", "grindlet",
       "a number in \\textbf"),
    _c("f18", "forms", "introduction",
       r"Prior eviction schemes lose \emph{up to 20\%} of their accuracy, the whisklo phenomenon.", "whisklo",
       "a number in \\emph"),
    _c("f19", "forms", "results",
       "The eviction keeps the quality of the full cache% measured at 41.3\nat 38.2\\% lower memory in the "
       "zomplet trial.", "zomplet", "a number next to a comment"),
    _c("f20", "forms", "title",
       "Attention-Score KV Eviction: Kraxil Decoding 3.2x Faster", "kraxil", "a typed speedup in the title"),
    _c("f21", "forms", "abstract",
       r"Eviction gives an order of magnitude smaller cache, the yuvvix ratio.", "yuvvix",
       "number words: an order of magnitude"),
    _c("f22", "forms", "results",
       r"Eviction yields $16\times$ compression at the smallest budget, the crumhornix point.", "crumhornix",
       "a digit in math with \\times"),
    _c("f23", "forms", "discussion",
       r"Perplexity stays within half a point of the full cache in the drivnel regime.", "drivnel",
       "number word: half"),
    _c("f24", "forms", "experimental_setup",
       r"The full cache holds 1,572,864 bytes in the quorvel layout.", "quorvel",
       "a right value with thousands separators, typed"),
    _c("f25", "forms", "conclusion",
       r"Eviction saves twenty-five percent of the decoding time in the blusterix run.", "blusterix",
       "hyphenated number word"),
    _c("f26", "forms", "title",
       "Fourfold Smaller Zindelwort KV Caches with Attention-Score Eviction", "zindelwort",
       "a number word in the title"),
    _c("f27", "forms", "method",
       r"The window keeps the last $2^{5}$ tokens in the frobnitz cache.", "frobnitz", "a power in math mode"),
    _c("f28", "forms", "discussion",
       r"Pooling over \mbox{five} neighbouring positions drives the klaxtor gain.", "klaxtor",
       "a number word inside \\mbox"),

    # ---- 4. claims with no backing -----------------------------------------------------------------------
    _c("u01", "unbacked", "results",
       r"The improvement over H2O is statistically significant (p < 0.01, paired t-test), the blenkin test.",
       "blenkin", "a typed p-value"),
    _c("u02", "unbacked", "discussion",
       r"All gains are statistically significant under a paired t-test in the frostle evaluation.", "frostle",
       "significance without a p-value"),
    _c("u03", "unbacked", "abstract",
       r"Our method is significantly better than SnapKV, the grommetix claim.", "grommetix",
       "significance without a p-value"),
    _c("u04", "unbacked", "experimental_setup",
       r"Results are consistent across five random seeds in the plunket design.", "plunket",
       "a seed count that is not the run's"),
    _c("u05", "unbacked", "experimental_setup",
       r"We repeat every configuration over \val{count:items} random seeds, the quivvet protocol.", "quivvet",
       "the item count presented as the seed count"),
    _c("u06", "unbacked", "discussion",
       r"The ranking is stable across \val{count:papers} independent seeds, the zoffle check.", "zoffle",
       "the paper count (which happens to equal the seed count) presented as the seed count"),
    _c("u07", "unbacked", "experimental_setup",
       r"All measurements were taken on an NVIDIA A100 GPU with the bramblet harness.", "bramblet",
       "hardware the run did not use (it ran on cpu)"),
    _c("u08", "unbacked", "method",
       r"The eviction kernel runs on the GPU in the twizzle implementation.", "twizzle",
       "hardware the run did not use"),
    _c("u09", "unbacked", "conclusion",
       r"Our method outperforms StreamingLLM on the test split, the snivvet margin.", "snivvet",
       "a baseline with no results row"),
    _c("u10", "unbacked", "results",
       r"The proposed policy beats Scissorhands and TOVA at equal memory, the florrick outcome.", "florrick",
       "baselines with no results row"),
    _c("u11", "unbacked", "experimental_setup",
       r"We evaluate on Llama-2-7B with the grobbet tokenizer.", "grobbet", "a model the run did not use"),
    _c("u12", "unbacked", "abstract",
       r"Experiments on Mistral confirm the trend in the jastle study.", "jastle", "a model the run did not use"),
    _c("u13", "unbacked", "results",
       r"The gain over SnapKV is significant (paired t-test, p = \val{cmp:full:p}), the trinkle comparison.",
       "trinkle", "the p-value of another test (against the full cache)"),
    _c("u14", "unbacked", "discussion",
       r"The difference to the full cache is not significant (paired t-test, p = \val{cmp:full:p}), the morble "
       r"check.", "morble", "wrong polarity: that p is far below alpha"),
    _c("u15", "unbacked", "introduction",
       r"Unlike PyramidKV, our approach needs no calibration and surpasses it in the yazzle tests.", "yazzle",
       "a baseline with no results row"),
    _c("u16", "unbacked", "conclusion",
       r"Our measurements on a TPU confirm that the cache is the bottleneck, the crumple finding.", "crumple",
       "hardware the run did not use"),
    _c("u17", "unbacked", "results",
       r"On Qwen the proposed method again beats H2O, the spindlewick replication.", "spindlewick",
       "a model the run did not use"),

    # ---- 5. citations ------------------------------------------------------------------------------------
    _c("c01", "citation", "related_work",
       r"Eviction by heavy hitters was introduced by \citealt{zhang2023h2o} in the brovnik line of work.",
       "brovnik", "\\citealt of an unknown key"),
    _c("c02", "citation", "introduction",
       r"\Citet{li2024snapkv} select tokens with an observation window, the clavish approach.", "clavish",
       "\\Citet of an unknown key"),
    _c("c03", "citation", "related_work",
       r"Streaming attention with sinks keeps the earliest tokens \cite {xiao2023streaming}, the fendrick "
       r"design.", "fendrick", "\\cite with a space before the brace"),
    _c("c04", "citation", "introduction",
       r"Representation geometry \citep{park2023linear,liu2023scissorhands} motivates the grindlor score.",
       "grindlor", "a real and a fake key in one \\citep"),
    _c("c05", "citation", "related_work",
       r"Zhang et al. (2023) first evicted heavy hitters, the sporvid baseline.", "sporvid",
       "a typed author-year citation"),
    _c("c06", "citation", "related_work",
       r"Several eviction policies [12, 27] rank tokens by attention, the plinthor family.", "plinthor",
       "typed numeric citations"),
    _c("c07", "citation", "discussion",
       r"As Liu et al. observed, token importance persists across steps in the wobblix regime.", "wobblix",
       "et al. with no \\cite"),
    _c("c08", "citation", "related_work",
       r"\begin{thebibliography}{9}\bibitem{drozzle2023} Drozzle, Eviction is all you need, NeurIPS 2023."
       r"\end{thebibliography}", "drozzle", "an injected thebibliography"),
    _c("c09", "citation", "related_work",
       r"\begin{filecontents*}{extra.bib}@article{kvfake, author={Quimbrax}, title={Eviction}, year={2024}}"
       r"\end{filecontents*}", "quimbrax", "an injected filecontents*"),
    _c("c10", "citation", "introduction",
       r"Quantised caches \citep[see][]{liu2024kivi} complement eviction, the marbling view.", "marbling",
       "\\citep with optional arguments and an unknown key"),
    _c("c11", "citation", "discussion",
       r"Following [3], we pool scores over neighbouring positions in the kettlewise variant.", "kettlewise",
       "a typed numeric citation"),
    _c("c12", "citation", "conclusion",
       r"These findings agree with Xiao et al.~(2024) on the trumbly question of attention sinks.", "trumbly",
       "a typed author-year citation with a tie"),
    _c("c13", "citation", "related_work",
       r"\citeauthor{ge2023fastgen} adapt the cache per head, the snickwold policy.", "snickwold",
       "\\citeauthor of an unknown key"),
    _c("c14", "citation", "method",
       r"Our pooling follows the observation window of SnapKV \citet{li2024snapkv} in the frumpwell design.",
       "frumpwell", "\\citet of an unknown key in the method section"),

    # ---- fabrications whose fix reply is honest: the replacement lands and is recorded ---------------------
    _c("x01", "derived", "results",
       r"Our method cuts the perplexity gap by 41.3\% relative to H2O, the brackwater claim.", "brackwater",
       "a typed percentage; the fix writes the derived value",
       fix=r"Our method lowers perplexity by \val{pct(seeds:proposed:ppl, seeds:h2o:ppl)} relative to H2O, the "
           r"glenmorrow rewrite.", fix_marker="glenmorrow"),
    _c("x02", "unbacked", "discussion",
       r"All improvements are statistically significant, the fernhollow claim.", "fernhollow",
       "significance without a test; the fix cites the test's p-value",
       fix=r"The gain over SnapKV is statistically significant (paired t-test, p = \val{cmp:snapkv:p}), the "
           r"ashcombe rewrite.", fix_marker="ashcombe"),
    _c("x03", "citation", "related_work",
       r"Heavy-hitter eviction \cite{zhang2023h2o} motivates our score, the dunmorrow claim.", "dunmorrow",
       "an unknown key; the fix cites a paper of the run",
       fix=r"Representation geometry \cite{park2023linear} motivates our score, the kestrelby rewrite.",
       fix_marker="kestrelby"),
    _c("x04", "forms", "experimental_setup",
       r"Each run scores four items per seed, the hobnaith claim.", "hobnaith",
       "a number word; the fix references the count",
       fix=r"Each run scores \val{count:items} items per seed, the wrenfield rewrite.", fix_marker="wrenfield"),

    # ---- honest controls: must survive ----------------------------------------------------------------------
    _c("h01", HONEST, "results",
       r"The proposed method reaches a perplexity of \val{seeds:proposed:ppl}, against \val{seeds:h2o:ppl} for "
       r"H2O, the zephyrine anchor.", "zephyrine", "values of the right rows next to their methods"),
    _c("h02", HONEST, "abstract",
       r"Relative to the full cache, the perplexity of the proposed method rises by "
       r"\val{pct(seeds:proposed:ppl, seeds:full:ppl)}, the velmarine cost.", "velmarine",
       "a percent change of the same metric in the same file"),
    _c("h03", HONEST, "results",
       r"The kept cache shrinks from \val{seeds:full:kv_bytes} for the full cache to "
       r"\val{seeds:proposed:kv_bytes} for the proposed method, a ratio of "
       r"\val{ratio(seeds:full:kv_bytes, seeds:proposed:kv_bytes)}, the ostrander saving.", "ostrander",
       "memory values and their ratio"),
    _c("h04", HONEST, "results",
       r"Against SnapKV the perplexity difference is \val{cmp:snapkv:diff}, with a \val{stat:confidence} interval "
       r"from \val{cmp:snapkv:diff_lo} to \val{cmp:snapkv:diff_hi}, and it is statistically significant (paired "
       r"t-test, p = \val{cmp:snapkv:p}), the lumbrisk test.", "lumbrisk", "a test that ran, with its p"),
    _c("h05", HONEST, "experimental_setup",
       r"Every configuration runs with \val{count:seeds} seeds of \val{count:items} items each on "
       r"\val{env:device} with \val{env:model}, the trevanian setup.", "trevanian",
       "counts and environment by reference"),
    _c("h06", HONEST, "related_work",
       r"\citet{park2023linear} study \quoted{park2023linear}{27 concepts} in the cressida analysis.", "cressida",
       "a paper's number quoted verbatim next to its cite"),
    _c("h07", HONEST, "introduction",
       r"\citet{zevcevic2023causal} caution that language models may talk causality without being causal, the "
       r"vorlane caveat.", "vorlane", "a cite of a paper of the run, no number"),
    _c("h08", HONEST, "discussion",
       r"Removing the recency window raises the perplexity of the proposed method to "
       r"\val{ablations:proposed[budget=0.25,recency=0,pool=5]:ppl} from "
       r"\val{ablations:proposed[budget=0.25,recency=32,pool=5]:ppl}, the bramwell ablation.", "bramwell",
       "ablation rows of the proposed method"),
    _c("h09", HONEST, "results",
       r"H2O and SnapKV reach perplexities of \val{seeds:h2o:ppl} and \val{seeds:snapkv:ppl} respectively, the "
       r"pendragon pair.", "pendragon", "two methods and their values in order"),
    _c("h10", HONEST, "conclusion",
       r"At a budget of \val{seeds:proposed:param.budget} the proposed method reaches a compression of "
       r"\val{seeds:proposed:compression}, the calloway point.", "calloway", "a parameter and a result"),
    _c("h11", HONEST, "method",
       r"Scores are accumulated over heads as $s_t = \sum_h a_{h,t}$ in the corvina formulation.", "corvina",
       "math without a number"),
    _c("h12", HONEST, "discussion",
       r"At the smallest budget of the sweep the proposed method reaches "
       r"\val{sweep:proposed[budget=0.125,recency=32,pool=5]:ppl} while H2O reaches "
       r"\val{sweep:h2o[budget=0.125]:ppl}, the farrowdale sweep.", "farrowdale", "sweep rows at the same budget"),
    _c("h13", HONEST, "title",
       "Attention-Score KV-Cache Eviction in Small Language Models: the Quellstone Study", "quellstone",
       "a title without a claim"),
    _c("h14", HONEST, "caption",
       "Perplexity difference of the proposed method against each baseline, the marbleton chart", "marbleton",
       "a caption that says what the figure shows"),
    _c("h15", HONEST, "experimental_setup",
       r"Lower perplexity and lower memory are better, and the comparison is paired over items and seeds in the "
       r"hollisway protocol.", "hollisway", "a description of the protocol"),
    _c("h16", HONEST, "results",
       r"The perplexity difference to H2O is \val{cmp:h2o:diff}, significant at level \val{stat:alpha} (paired "
       r"t-test, p = \val{cmp:h2o:p}), the saltmarsh test.", "saltmarsh", "a test that ran, with alpha and p"),
    _c("h17", HONEST, "conclusion",
       r"The proposed method keeps perplexity close to the full cache while it stores a fraction of the cache, "
       r"the ambergate summary.", "ambergate", "a claim without a number"),
    _c("h18", HONEST, "introduction",
       r"We test whether accumulated attention is a good eviction signal for the KV cache of \val{env:model} "
       r"\cite{park2023linear}, the wexcombe question.", "wexcombe", "the model by reference, a real cite"),
    _c("h19", HONEST, "discussion",
       r"The \val{stat:confidence} confidence interval of the perplexity difference to H2O runs from "
       r"\val{cmp:h2o:diff_lo} to \val{cmp:h2o:diff_hi}, the tillingham interval.", "tillingham",
       "an interval of a test that ran, with its level"),
    _c("h20", HONEST, "results",
       r"Our method outperforms SnapKV, with a perplexity of \val{seeds:proposed:ppl} against "
       r"\val{seeds:snapkv:ppl}, the brockwell margin.", "brockwell",
       "a comparison with a baseline that ran; the values follow the order of the names"),
    _c("h21", HONEST, "method",
       r"We compare against H2O and SnapKV, which evict by accumulated attention as well, in the dellacourt "
       r"setup.", "dellacourt", "baselines that ran, named without a number"),
)


# ---- the scripted writer and the batches ------------------------------------------------------------------
PAPER_TEXT = {  # ctx["paper_text"]: the fetched text of the run's papers, as chunks (for \quoted)
    "park2023linear": [(0, "We formalise the linear representation hypothesis."),
                       (11, "Using counterfactual pairs we study 27 concepts in LLaMA-2 activations.")],
    "zevcevic2023causal": [(0, "Large language models may talk causality but are not causal.")],
    "stanley2016heat": [(0, "Heat-bath random walks on lattice points are analysed with Markov bases.")],
}


class CaseWriter(Writer):
    """The scripted writer of one batch: drafts hold the cases; every fix round gets the fix text back
    (the same fabrications, and the honest replacements of the cases that have one)."""

    def __init__(self, drafts: dict[str, str], fixes: dict[str, str]):
        super().__init__()
        self.draft_text, self.fix_text = drafts, fixes

    def __call__(self, body: dict) -> dict:
        reply = super().__call__(body)
        kind, name = self.seen[-1]
        text = (self.fix_text if kind == "fix" else self.draft_text).get(name)
        return {**reply, "latex": text} if text else reply


@dataclass
class Batch:
    n: int
    cases: list[Case] = field(default_factory=list)

    @staticmethod
    def capacity(where: str) -> int:
        return {"title": 1, "caption": CAPTIONS}.get(where, PER_SECTION)

    def room(self, case: Case) -> bool:
        return sum(1 for c in self.cases if c.where == case.where) < self.capacity(case.where)

    def section_texts(self) -> tuple[dict[str, str], dict[str, str]]:
        base = sections()
        drafts, fixes = {}, {}
        for name in BODY:
            mine = [c for c in self.cases if c.where == name]
            if mine:
                drafts[name] = " ".join([base[name], *(c.latex for c in mine)])
                fixes[name] = " ".join([base[name], *((c.fix or c.latex) for c in mine)])
        return drafts, fixes

    def outline(self) -> dict:
        out = json.loads(json.dumps(sections()["outline"]))
        title = [c for c in self.cases if c.where == "title"]
        if title:
            out["title"] = title[0].latex
        captions = [c.latex for c in self.cases if c.where == "caption"]
        if captions:  # one figure per caption, of the comparisons (the base results section refers to fig:f1)
            fig = out["figures"][0]
            out["figures"] = [{**fig, "caption": cap} for cap in captions]
        return out


def batches(cases: tuple[Case, ...] = CASES) -> list[Batch]:
    """Cases into as few reports as the slots allow (PER_SECTION per section, one title, CAPTIONS captions),
    each to the emptiest report with room, in case order, so that honest and fabricated sentences share
    sections and the reports are about the same size."""
    need = Counter(c.where for c in cases)
    n = max(-(-k // Batch(0).capacity(w)) for w, k in need.items())
    out = [Batch(i + 1) for i in range(n)]
    for case in cases:
        min((b for b in out if b.room(case)), key=lambda b: len(b.cases)).cases.append(case)
    return out


def pdf_letters(pdf: Path) -> str:
    """The PDF's text as lower-case letters only (a marker split by hyphenation or a line break still matches)."""
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return re.sub(r"[^a-z]", "", text.lower())


def trail(run) -> list[dict]:
    p = run.repo_dir / "report" / "integrity.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


@dataclass
class Outcome:
    case: Case
    reached: bool | None  # the case's marker is in the final PDF (None: the report failed)
    fix_reached: bool | None = None  # the honest replacement's marker is in the PDF
    fix_recorded: bool | None = None  # integrity.jsonl has the flagged claim and the rewritten replacement
    error: str = ""
    kinds: tuple[str, ...] = ()  # the kinds of the integrity.jsonl decisions about the case's sentence


def run_batch(batch: Batch, srv, tmp: Path, fix_rounds: int = 2) -> tuple[list[Outcome], dict]:
    """Write one report with the batch's cases (stubborn writer); (per-case outcomes, run info)."""
    from agentlab.report import write_report

    drafts, fixes = batch.section_texts()
    writer = CaseWriter(drafts, fixes)
    srv.replace("ReportOutline", batch.outline())  # replace, not on: the server serves one report after another
    srv.replace("SectionDraft", writer)
    llm, settings = make_llm(srv, tmp, report_fix_rounds=fix_rounds)
    run = make_run(tmp)
    ctx = load_ctx()
    papers = dict(ctx.get("paper_text") or {})  # the fixture's chunks, and these
    ctx["paper_text"] = {k: [*papers.get(k, []), *PAPER_TEXT.get(k, [])] for k in {*papers, *PAPER_TEXT}}
    t0 = time.monotonic()
    try:
        out = write_report(ctx, settings, llm, run, lambda m: None)
    except Exception as exc:  # noqa: BLE001 - a failed report is an outcome of every case in it
        msg = f"{type(exc).__name__}: {str(exc)[:600]}"
        return [Outcome(c, None, error=msg) for c in batch.cases], {"batch": batch.n, "error": msg,
                                                                     "seconds": time.monotonic() - t0}
    letters = pdf_letters(run.repo_dir / "report" / "main.pdf")
    events = trail(run)
    outcomes = []
    for c in batch.cases:
        kinds = sorted({str(e.get("kind")) for e in events
                        if e.get("event") == "decided" and c.marker in str(e.get("claim", "")).lower()})
        o = Outcome(c, c.marker in letters, kinds=tuple(kinds))
        if c.fix:
            o.fix_reached = c.fix_marker in letters
            o.fix_recorded = (any(e.get("event") == "flagged" and c.marker in str(e.get("claim", "")) for e in events)
                              and any(e.get("event") == "rewritten" and c.fix_marker in str(e.get("replacement", ""))
                                      for e in events))
        outcomes.append(o)
    info = {"batch": batch.n, "seconds": time.monotonic() - t0, "problems": out.get("problems", []),
            "fix_requests": sum(1 for k, _ in writer.seen if k == "fix"), "events": len(events)}
    return outcomes, info


def shares(outcomes: list[Outcome]) -> dict[str, dict]:
    """Per family: cases, how many reached the PDF, and the share; for the honest controls the same numbers are
    survivals. A case whose report failed counts against the checks: reached for a fabrication, lost for a
    control."""
    total, reached = Counter(), Counter()
    for o in outcomes:
        total[o.case.family] += 1
        reached[o.case.family] += 1 if o.reached or (o.reached is None and o.case.family != HONEST) else 0
    return {f: {"cases": total[f], "reached": reached[f], "share": reached[f] / total[f]}
            for f in (*FAMILIES, HONEST) if total[f]}


def report_lines(outcomes: list[Outcome]) -> list[str]:
    """The per-family table and every case that went the wrong way, as text lines."""
    lines = [f"{'family':<18} {'cases':>5} {'in PDF':>6} {'share':>6}"]
    for fam, row in shares(outcomes).items():
        label = "honest (survived)" if fam == HONEST else fam
        lines.append(f"{label:<18} {row['cases']:>5} {row['reached']:>6} {row['share']:>6.2f}")
    fixes = [o for o in outcomes if o.case.fix]
    if fixes:
        lines.append(f"honest fixes: {sum(bool(o.fix_reached) for o in fixes)}/{len(fixes)} replacements in the "
                     f"PDF, {sum(bool(o.fix_recorded) for o in fixes)}/{len(fixes)} recorded in integrity.jsonl")
    for o in outcomes:
        c = o.case
        if o.error:
            what = f"report failed ({o.error[:200]})"
        elif (c.family == HONEST) != bool(o.reached):
            what = "dropped" if c.family == HONEST else "in the PDF"
        elif c.fix and not (o.fix_reached and o.fix_recorded):
            what = "replacement " + ("recorded" if o.fix_recorded else "not recorded") + (
                ", in the PDF" if o.fix_reached else ", not in the PDF")
        else:
            continue
        lines.append(f"  {c.id} [{c.family}, {c.where}] {what}: {c.note}")
    return lines
