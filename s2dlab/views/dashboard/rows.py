"""Rollout rows of a snapshot, as the pickers and headers show them: which problems and samples there are, which
row a choice means, and the one-line header above a heatmap. Plain Python over DataFrames of run-store rows."""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd


def missing(v) -> bool:
    """None or NaN (a cell parquet stored as missing)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def is_student(df: pd.DataFrame) -> pd.Series:
    """Rows sampled by the student (a row without `policy` is the student's)."""
    return df["policy"].fillna("student") != "teacher"


def prompt_text(s: Any, limit: int = 60) -> str:
    """`s` on one line, cut to `limit` characters with an ellipsis."""
    s = " ".join(str(s or "").split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def badge_text(correct) -> str:
    if missing(correct):
        return "ungraded"
    return "✓ correct" if bool(correct) else "✗ incorrect"


def problem_choices(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, prompt_id) per problem of a snapshot, labelled with the student's correct count."""
    out = []
    for pid, group in df.groupby("prompt_id", sort=False):
        stud = group[is_student(group)]
        graded = stud["correct"].dropna() if "correct" in stud else pd.Series([], dtype=object)
        score = f" [{int(graded.astype(bool).sum())}/{len(graded)} correct]" if len(graded) else ""
        prompt = group["prompt"].iloc[0] if "prompt" in group else ""
        out.append((f"{pid}: {prompt_text(prompt)}{score}", str(pid)))
    return out


def sample_choices(df: pd.DataFrame, prompt_id: str | None, policy: str = "student") -> list[tuple[str, int]]:
    """(label, sample_idx) of a problem's rollouts by `policy`."""
    if prompt_id is None:
        return []
    mask = (df["prompt_id"].astype(str) == str(prompt_id))
    mask &= is_student(df) if policy == "student" else ~is_student(df)
    out = []
    for _, row in df[mask].sort_values("sample_idx").iterrows():
        out.append((f"#{int(row['sample_idx'])} {badge_text(row.get('correct'))}", int(row["sample_idx"])))
    return out


def pick(df: pd.DataFrame, prompt_id: str, policy: str, sample_idx: int | None) -> pd.Series | None:
    """The row of `prompt_id` by `policy` with `sample_idx` (the first sample when that one is absent), or None."""
    mask = (df["prompt_id"].astype(str) == str(prompt_id))
    mask &= is_student(df) if policy == "student" else ~is_student(df)
    rows = df[mask]
    if rows.empty:
        return None
    if sample_idx is not None and "sample_idx" in rows:
        exact = rows[rows["sample_idx"].astype(int) == int(sample_idx)]
        if not exact.empty:
            return exact.iloc[0]
    return rows.sort_values("sample_idx").iloc[0] if "sample_idx" in rows else rows.iloc[0]


BADGE_CSS = ("<style>.s2d-badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;"
             "font-size:12px;margin-right:8px}.s2d-ok{background:#d1e5f0;color:#053061}"
             ".s2d-bad{background:#fddbc7;color:#67001f}.s2d-na{background:#eee;color:#333}"
             ".s2d-head{font-family:system-ui,sans-serif;font-size:13px;margin:4px 0}</style>")


def rollout_header_html(row: pd.Series, who: str) -> str:
    """Who sampled it, a correct/incorrect badge, the gold and the extracted answer (all escaped)."""
    correct = row.get("correct")
    cls = "s2d-na" if missing(correct) else ("s2d-ok" if bool(correct) else "s2d-bad")
    gold = row.get("answer")
    extracted = row.get("extracted")
    esc = html.escape
    parts = [f'<span class="s2d-badge {cls}" data-testid="badge">{esc(badge_text(correct))}</span>',
             f"<b>{esc(who)}</b> sample #{int(row.get('sample_idx', 0))}",
             f" · gold <code>{esc('—' if missing(gold) else str(gold))}</code>",
             f" · extracted <code>{esc('none' if missing(extracted) else str(extracted))}</code>",
             f" · {int(row.get('length', len(row.get('tokens') or [])))} tokens"]
    if not missing(row.get("sum_implicit_reward")):
        parts.append(f" · Σ implicit reward {float(row['sum_implicit_reward']):+.2f}")
    if not missing(row.get("mean_reverse_kl")):
        parts.append(f" · mean reverse KL {float(row['mean_reverse_kl']):.3f}")
    return f'{BADGE_CSS}<div class="s2d-head">{"".join(parts)}</div>'
