"""The arms of the paper's Table 2 as data: which stage holds each arm's student, its block and row, the default
set `s2dlab run` makes, and the paper's predictions as pairs of arms. Imported by the pipeline (which plans the
stages) and by every reader (summary, report, dashboard, notebooks), so there is one list in one order.

    block    arm                  the stage holding its student   paper row
    top      bridge               full.opd                        full bridge (1 + 2a + 2b)
    top      bridge_raw_teacher   raw_teacher.opd                 - stage 1 (raw teacher)
    top      bridge_no_warmup     no_warmup.opd                   - stage 2a (OPD only)
    top      bridge_no_opd        no_opd.fkl_warmup               - stage 2b (teacher-sample SFT only)
    top      bridge_sft_teacher   sft_teacher.opd                 SFT'd teacher instead of stage 1
    top      cold_grpo            cold_grpo                       cold GRPO on the student
    halves   bridge_1h_stage3     student_grpo                    bridge on 1H + stage 3 on 2H (the four-stage workflow)
    halves   bridge_1h            opd                             bridge on 1H only
    halves   bridge_1h_replay     replay                          bridge on 1H + replay on 1H
    ref      gold_sft             gold_sft                        student SFT on gold worked solutions (not in the paper)

`ARM_ORDER` is the paper's row order (the top block, the halves, then the reference); every table and figure lists
the arms in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from s2dlab.core.config import ConfigError


@dataclass(frozen=True)
class Arm:
    name: str
    final: str  # the stage whose model is the arm's student
    block: str  # top (whole labeled pool) | halves (1H / 2H) | reference
    row: str  # the paper's row, in words


ARMS = (
    Arm("bridge", "full.opd", "top", "full bridge (1 + 2a + 2b)"),
    Arm("bridge_raw_teacher", "raw_teacher.opd", "top", "- stage 1 (raw teacher)"),
    Arm("bridge_no_warmup", "no_warmup.opd", "top", "- stage 2a (OPD only)"),
    Arm("bridge_no_opd", "no_opd.fkl_warmup", "top", "- stage 2b (teacher-sample SFT only)"),
    Arm("bridge_sft_teacher", "sft_teacher.opd", "top", "SFT'd teacher instead of stage 1"),
    Arm("cold_grpo", "cold_grpo", "top", "cold GRPO on the student"),
    Arm("bridge_1h_stage3", "student_grpo", "halves", "bridge on 1H + stage 3 on 2H (the four-stage workflow)"),
    Arm("bridge_1h", "opd", "halves", "bridge on 1H only"),
    Arm("bridge_1h_replay", "replay", "halves", "bridge on 1H + replay on 1H"),
    Arm("gold_sft", "gold_sft", "reference", "student SFT on gold worked solutions (reference)"),
)
ARM_ORDER = [a.name for a in ARMS]
DEFAULT_ARMS = ("bridge_1h_stage3", "bridge_1h", "cold_grpo")
WORKFLOW_ARM = "bridge_1h_stage3"  # the four-stage workflow: its student is the one a reader shows by default


def ordered(names) -> list[str]:
    """`names` in ARM_ORDER, unknown ones after in their own order."""
    names = list(names)
    return [a for a in ARM_ORDER if a in names] + [a for a in names if a not in ARM_ORDER]


def select_arms(names: str | Sequence[str]) -> tuple[str, ...]:
    """The arm names of `s2dlab run --arms a,b,c`, checked: an unknown one is a one-line ConfigError."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [n for n in items if n not in ARM_ORDER]
    if unknown or not items:
        raise ConfigError(f"--arms {names if isinstance(names, str) else ','.join(names)}: "
                          f"{'unknown arm ' + repr(unknown[0]) if unknown else 'no arm named'}; "
                          f"arms are {', '.join(ARM_ORDER)}")
    return tuple(dict.fromkeys(items))



CLAIMS = (
    # (id, what the paper says, arm a, arm b, the verdict of a - b the paper predicts)
    ("workflow_beats_cold", "the four-stage workflow beats cold GRPO", "bridge_1h_stage3", "cold_grpo", "higher"),
    ("bridge_beats_cold", "the bridge beats cold GRPO", "bridge", "cold_grpo", "higher"),
    ("P1", "P1: a bridge from the raw teacher does not beat cold GRPO", "bridge_raw_teacher", "cold_grpo",
     "not higher"),
    ("P2_warmup", "P2: OPD alone (no 2a) falls below the bridge", "bridge_no_warmup", "bridge", "lower"),
    ("P2_opd", "P2: teacher-sample SFT alone (no 2b) falls below the bridge", "bridge_no_opd", "bridge", "lower"),
    ("P3", "P3: stage 3 on new labels (2H) beats the replay on 1H", "bridge_1h_stage3", "bridge_1h_replay", "higher"),
    ("P3_replay", "P3: the replay on 1H gains little over the bridge", "bridge_1h_replay", "bridge_1h",
     "within noise"),
    ("teacher_raw_sft", "teacher ordering: the SFT teacher's bridge beats the raw teacher's", "bridge_sft_teacher",
     "bridge_raw_teacher", "higher"),
    ("teacher_sft_rl", "teacher ordering: the RL teacher's bridge beats the SFT teacher's", "bridge",
     "bridge_sft_teacher", "higher"),
)


