"""Why Regroup settled on its k, in a few lines: the rule and the range it chose from, its curve
around the choice (and the runners-up), and a note when the choice looks like the rule drifting
rather than the data speaking: at the top of the range swept, or far above the task's own number
of domains (silhouette on near-duplicate-rich data climbs with k; issue 30)."""

from __future__ import annotations

from mixbench.k_rule import BestScore, scored_rows

FAR_ABOVE = 4      # a chosen k more than this many times the task's original domains is pointed out
RUNNERS_UP = 3     # other k values shown with their scores


def why_k(sweep: list[dict], rule_name: str, k: int, original_domains: int | None = None) -> list[str]:
    """The lines; `sweep` is a Regrouping's (one row per k, the chosen one marked), `k` the domains
    made (fewer than the k chosen when a cluster came out empty)."""
    from mixbench import registry

    rule = registry.k_rules.create(rule_name)
    chosen = next(row["k"] for row in sweep if row.get("chosen"))
    ks = [row["k"] for row in sweep]
    swept = f"k = {ks[0]}..{ks[-1]} ({len(ks)} values)" if len(ks) > 1 else f"k = {ks[0]} only"
    lines = [f"k = {chosen} chosen by {rule_name} over {swept}: {_lower_first(rule.summary())}"]
    curve = scored_rows(sweep, rule.reads) if rule.reads else []
    if len(curve) > 1:
        at = next((i for i, row in enumerate(curve) if row["k"] == chosen), None)
        near = curve[max(0, at - 1):at + 2] if at is not None else []
        shown = ", ".join(f"[{r['k']}: {_value(r[rule.reads])}]" if r["k"] == chosen else
                          f"{r['k']}: {_value(r[rule.reads])}" for r in near)
        line = f"  {rule.reads} around it: {shown}"
        if isinstance(rule, BestScore):
            sign = 1.0 if rule.higher_is_better else -1.0
            others = sorted((r for r in curve if r not in near), key=lambda r: -sign * r[rule.reads])[:RUNNERS_UP]
            if others:
                line += "; next best: " + ", ".join(f"{r['k']}: {_value(r[rule.reads])}" for r in others)
        lines.append(line)
    if len(ks) > 2 and chosen >= ks[-1] - (ks[-1] - ks[0]) // 20:
        lines.append(f"  note: k = {chosen} sits at the top of the range swept (up to {ks[-1]}): a wider range may "
                     f"score higher still, or the rule favours ever finer clusters here (try --k-rule first-peak "
                     f"or kneedle, or a narrower --k)")
    if original_domains and original_domains > 1 and k > FAR_ABOVE * original_domains:
        lines.append(f"  note: k = {k} is more than {FAR_ABOVE}× the task's {original_domains} original domains")
    if k < chosen:
        lines.append(f"  ({chosen - k} of the {chosen} clusters came out empty: {k} domains)")
    return lines


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _value(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.4g}"
