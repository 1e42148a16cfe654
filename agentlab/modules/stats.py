"""Statistics of harness results: mean, spread and 95 % intervals over seeds, paired tests between cells.

Torch-free and scipy-free (plain ``math``). Student-t tail probabilities come from the regularized
incomplete beta function, evaluated by its continued fraction (modified Lentz); quantiles by bisection on
the tail. Definitions:
- ``std`` is the sample standard deviation (n - 1 in the denominator);
- ``ci95`` is the two-sided 95 % Student-t interval of the mean: mean +- t(0.975, n - 1) * std / sqrt(n);
- the paired test is the two-sided paired t-test on the differences a_i - b_i (df = n - 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["summarize", "t_sf", "t_ppf", "paired_test", "compare"]

_EPS = 1e-15
_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + num / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """Survival function of Student's t distribution: P(T > t) with ``df`` degrees of freedom.

    Args:
        t: the statistic (any real; +-inf allowed).
        df: degrees of freedom (> 0; need not be an integer).
    Returns:
        A float in [0, 1]; ``2 * t_sf(abs(t), df)`` is the two-sided p-value.
    Example:
        >>> from agentlab.modules.stats import t_sf
        >>> round(t_sf(2.2281, 10), 4)
        0.025
    """
    if df <= 0:
        raise ValueError(f"df must be > 0, not {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t distribution: the t with P(T <= t) = ``q``.

    Args:
        q: the probability, 0 < q < 1 (0.975 for a two-sided 95 % interval).
        df: degrees of freedom (> 0).
    Returns:
        A float (accurate to about 1e-10).
    Example:
        >>> from agentlab.modules.stats import t_ppf
        >>> round(t_ppf(0.975, 2), 4), round(t_ppf(0.975, 10), 4)
        (4.3027, 2.2281)
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), not {q}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    p = 1.0 - q  # upper tail wanted; t_sf decreases in t
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > p:
        lo, hi = hi, hi * 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def summarize(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation and the two-sided 95 % Student-t interval of the mean.

    Args:
        values: one number per seed (at least one).
    Returns:
        ``{"per_seed": [...], "mean", "std", "ci95": [lo, hi], "n"}``; ``std`` and ``ci95`` are None for n == 1.
    Example:
        >>> from agentlab.modules.stats import summarize
        >>> s = summarize([1.0, 2.0, 3.0])
        >>> s["mean"], s["std"], [round(x, 4) for x in s["ci95"]]
        (2.0, 1.0, [-0.4841, 4.4841])
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("summarize needs at least one value")
    mean, std = _mean_std(vals)
    ci = None
    if std is not None:
        half = t_ppf(0.975, len(vals) - 1) * std / math.sqrt(len(vals))
        ci = [mean - half, mean + half]
    return {"per_seed": vals, "mean": mean, "std": std, "ci95": ci, "n": len(vals)}


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """Two-sided paired t-test of ``a`` against ``b`` (same items, same order), on the differences a - b.

    Args:
        a, b: paired measurements of equal length.
    Returns:
        ``{"test": "paired t", "n", "mean_diff", "ci95_diff": [lo, hi], "t", "df", "p"}``. All differences
        zero: t 0 and p 1.0; constant non-zero differences: t +-inf and p 0.0; n < 2: t, df, p and ci None.
    Example:
        >>> from agentlab.modules.stats import paired_test
        >>> r = paired_test([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])   # differences 1, 2, 3
        >>> round(r["t"], 4), r["df"], round(r["p"], 4)
        (3.4641, 2, 0.0742)
    """
    if len(a) != len(b):
        raise ValueError(f"paired_test needs equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("paired_test needs at least one pair")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(d)
    mean, sd = _mean_std(d)
    out = {"test": "paired t", "n": n, "mean_diff": mean, "ci95_diff": None, "t": None, "df": None, "p": None}
    if n < 2:
        return out
    out["df"] = n - 1
    if all(x == 0 for x in d):
        return {**out, "ci95_diff": [0.0, 0.0], "t": 0.0, "p": 1.0}
    if sd == 0:
        return {**out, "ci95_diff": [mean, mean], "t": math.copysign(math.inf, mean), "p": 0.0}
    se = sd / math.sqrt(n)
    t = mean / se
    half = t_ppf(0.975, n - 1) * se
    return {**out, "ci95_diff": [mean - half, mean + half], "t": t, "p": min(1.0, 2.0 * t_sf(abs(t), n - 1))}


def _paired_values(value: dict) -> list[float]:
    if value.get("per_item") is not None:
        return [float(v) for seed in value["per_item"] for v in seed]
    return [float(v) for v in value["per_seed"]]


def _metric_value(cell: dict, metric: str) -> dict:
    values = cell.get("values") or {}
    if metric not in values:
        why = f"it {cell.get('status')}: {cell.get('error')}" if cell.get("status") == "failed" else "no such metric"
        raise ValueError(f"cell {cell.get('id')!r} has no values of {metric!r} ({why})")
    return values[metric]


def compare(cell_a: dict, cell_b: dict, metric: str) -> dict:
    """Compare two cells of one results file on ``metric``: means, difference and a paired test.

    The pairs are the items (``per_item``, flattened seed by seed in item order, identical items in every
    cell), or the seeds for a metric measured once per seed.
    Args:
        cell_a: a cell of ``results["cells"]`` (e.g. the proposed method).
        cell_b: the cell it is compared with (e.g. a baseline), from the same results file.
        metric: a metric name of the results file.
    Returns:
        ``{"metric", "a", "b", "mean_a", "mean_b", "diff", "rel_diff", "paired_on", "test", "ci_overlap"}``:
        ``diff = mean_a - mean_b``, ``rel_diff = diff / |mean_b|`` (None when mean_b is 0), ``paired_on``
        "items" or "seeds", ``test`` the ``paired_test`` result, ``ci_overlap`` whether the cells' per-seed
        95 % intervals overlap (None when either has none, i.e. one seed).
    Example:
        >>> from agentlab.modules.stats import compare
        >>> cells = {c["id"]: c for c in results["cells"]}
        >>> r = compare(cells["proposed[budget=0.25]"], cells["h2o[budget=0.25]"], "ppl")
        >>> r["diff"], r["test"]["p"], r["ci_overlap"]
    """
    va, vb = _metric_value(cell_a, metric), _metric_value(cell_b, metric)
    by_item = va.get("per_item") is not None and vb.get("per_item") is not None
    xa = _paired_values(va) if by_item else [float(v) for v in va["per_seed"]]
    xb = _paired_values(vb) if by_item else [float(v) for v in vb["per_seed"]]
    if len(xa) != len(xb):
        raise ValueError(f"cells {cell_a.get('id')!r} and {cell_b.get('id')!r} have {len(xa)} and {len(xb)} values "
                         f"of {metric!r}: not the same items")
    mean_a, mean_b = float(va["mean"]), float(vb["mean"])
    diff = mean_a - mean_b
    ca, cb = va.get("ci95"), vb.get("ci95")
    overlap = None if not ca or not cb else bool(ca[0] <= cb[1] and cb[0] <= ca[1])
    return {"metric": metric, "a": cell_a.get("id"), "b": cell_b.get("id"), "mean_a": mean_a, "mean_b": mean_b,
            "diff": diff, "rel_diff": diff / abs(mean_b) if mean_b else None,
            "paired_on": "items" if by_item else "seeds", "test": paired_test(xa, xb), "ci_overlap": overlap}
