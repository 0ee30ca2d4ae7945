"""Flat configs, one dataclass per stage, and the two presets.

The defaults are the `tiny` preset (CPU, minutes). `qwen3_paper` overrides them from `presets/qwen3_paper.yaml`.
A config is built from: preset -> optional user YAML -> `section.field=value` overrides, e.g.

    s2dlab run opd.learning_rate=1e-3 seed=2 eval.n_samples=4

Top-level `Config` fields (`seed`, `name`, ...) take no section. Anything wrong (unknown key, wrong type, bad
value) raises `ConfigError`, whose one-line message names the key, the value and what is allowed; the CLI prints
it without a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from s2dlab.core.errors import S2DLabError
from s2dlab.core.tasks.arithmetic import LAYOUTS

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"
PRESETS = ("tiny", "qwen3_paper")


class ConfigError(S2DLabError, ValueError):
    """A bad config key or value; the message is one line naming the key, the value and what is allowed."""


# --- sections -----------------------------------------------------------------------------------------------------

@dataclass
class ModelsConfig:
    teacher: str = "tiny"  # "tiny" (built from config) or a hub id / local folder, e.g. Qwen/Qwen3-8B
    student: str = "tiny"  # "tiny" or a hub id / local folder, e.g. Qwen/Qwen3-1.7B
    dtype: str = "float32"  # float32 | bfloat16 | float16 (bf16 on a GPU box)
    device: str = "auto"  # auto (cuda if present) | cpu | cuda
    attn_implementation: str = "sdpa"  # passed to from_pretrained for hub models (sdpa | eager | flash_attention_2)


@dataclass
class TaskConfig:
    name: str = "arithmetic"  # arithmetic (embedded, synthetic) | dapo (DAPO-Math-17k) | math (MATH train)
    source: str | None = None  # local JSONL for the training problems (hub dataset when None, GPU box only)
    data_seed: int = 0  # seed of the data splits, fixed across --seeds so every seed sees the same problems
    n_terms: int = 4  # arithmetic: numbers per problem (difficulty knob), e.g. 7+3-5+8=?
    digits: int = 1  # arithmetic: digits per number (difficulty knob); 2 is too hard for the tiny teacher
    slip_rate: float = 0.4  # arithmetic: chance that a carry/borrow/sign step of the base models' corpus is written wrong
    corpus_size: int = 8000  # arithmetic: worked solutions (with slips) the tiny base models are pretrained on (stage 0)
    pool_size: int = 2000  # labeled problems (final answers only), cut into fixed random halves 1H / 2H as in the paper
    label_budget: int | None = None  # use only the first N labeled problems of the pool (label sweep); None = all
    val_size: int = 300  # validation problems, disjoint from eval: every tuning decision is read here, never on eval
    eval_size: int = 300  # eval problems (arithmetic); for real data see eval.sets
    halves: str = "random"  # how the labeled pool is cut into 1H / 2H: random (fixed random halves, as in the paper) | by_family (arithmetic: no problem family in both halves, the most new labels can bring; arithmetic.family_halves)
    family_tail: float = 0.0  # arithmetic: 0 draws pool, val and eval uniformly; s > 0 from a long tail over problem families (the slip each step allows, e.g. `+carry8 -none -sign5`), the family of rank r weighing r^-s (s2dlab/core/tasks/arithmetic.py)
    prompt_suffix: str = ""  # appended to every problem, e.g. "Let's think step by step and output the final answer within \\boxed{}."


@dataclass
class GenerationConfig:
    max_new_tokens: int = 48  # completion budget for training rollouts and eval
    temperature: float = 1.0  # sampling temperature for rollouts (T=1 is the on-policy distribution)
    top_p: float = 1.0  # nucleus sampling
    top_k: int = 0  # 0 disables top-k (transformers' generate defaults to 50, which is not T=1 sampling)
    backend: str = "hf"  # hf | vllm (eval and teacher rollouts; trainers use TRL's use_vllm)
    use_vllm: bool = False  # trainers generate with vLLM through TRL's options (GPU box)
    vllm_mode: str = "colocate"  # colocate | server (TRL's vllm_mode)
    vllm_gpu_memory_utilization: float = 0.3  # TRL's colocated vLLM share of GPU memory
    enable_thinking: bool = False  # Qwen3 chat template: False = non-thinking mode, as in the paper
    batch_size: int = 256  # sequences per generate() call outside the trainers


@dataclass
class BaseStageConfig:
    enabled: bool = True  # stage 0 runs only for tiny models (real checkpoints are already pretrained)
    source: str = "shipped"  # shipped: copy the base models that ship with s2dlab (seconds) | train: SFT from scratch
    student: str = "close"  # the tiny student's distance from the teacher (C2): close (the teacher's layout) | middle | far (the same corpus in another layout, about the same accuracy; s2dlab/workflow/stages/base.py)
    teacher_steps: int = 2000  # SFT steps for the base teacher on the corpus (slips included)
    student_steps: int = 1200  # SFT steps for the base student on the same corpus (a smaller model)
    learning_rate: float = 3e-3  # peak lr; from scratch, accuracy jumps and is noisy, hence best-checkpoint selection
    schedule: str = "cosine"  # lr schedule after a 5% warmup: cosine (decays to 0, steadier end) | constant
    batch_size: int = 32  # sequences per step
    select_every: int = 100  # evaluate greedy accuracy every N steps and keep the best checkpoint
    select_size: int = 200  # problems used for checkpoint selection (their own split, not val or eval)


@dataclass
class GRPOStageConfig:
    steps: int = 100  # optimizer steps
    learning_rate: float = 1e-4  # tiny preset; TRL's default 1e-6 does nothing at this size
    prompts_per_step: int = 4  # distinct prompts per step
    num_generations: int = 8  # completions per prompt (the GRPO group)
    temperature: float | None = None  # sampling temperature of the rollouts; None = generation.temperature
    epsilon: float = 0.2  # lower clip
    epsilon_high: float = 0.28  # upper clip (clip-higher)
    kl_coef: float = 0.0  # TRL's GRPO `beta`: KL penalty to the reference model; 0 = no KL
    loss_type: str = "dapo"  # TRL loss normalisation; dapo = token-mean over the batch
    warmup_ratio: float = 0.0  # linear lr warmup share
    save_every: int = 50  # checkpoint every N steps (resume point)


@dataclass
class SFTStageConfig:
    steps: int = 200  # optimizer steps
    learning_rate: float = 1e-3  # constant lr
    batch_size: int = 32  # sequences per step
    save_every: int = 50  # checkpoint every N steps
    layout: str = "steps"  # the layout the gold solutions are written in (s2dlab.core.tasks.arithmetic.LAYOUTS): steps (the teacher's and the close student's corpus) | blank_line | running (the far student's)


@dataclass
class WarmupConfig:
    loss: str = "full"  # full: forward KL(pT||pS) on the teacher's cached next-token distributions (the paper's 2a) | sampled: SFT on sampled teacher tokens (the paper's "teacher-sample SFT" arm)
    top_k: int = 0  # cache only the teacher's top-k next tokens plus one tail bucket (large vocabularies); 0 = the full vocabulary
    steps: int = 100  # optimizer steps
    learning_rate: float = 3e-4  # constant lr (tiny: tuned on validation over 1e-4, 3e-4, 1e-3, 3e-3)
    batch_size: int = 32  # sequences per step
    rollouts_per_prompt: int = 2  # K teacher rollouts cached per prompt of the bridge's prompt set (the paper does not give K)
    only_correct: bool = False  # keep only rollouts whose answer is right (uses labels; off, as in the paper)
    save_every: int = 50  # checkpoint every N steps


@dataclass
class OPDConfig:
    loss: str = "full_reverse_kl"  # full_reverse_kl (TRL DistillationTrainer, beta=1) | sampled_token (implicit reward as per-token advantage)
    steps: int = 100  # optimizer steps
    learning_rate: float = 2e-4  # constant lr (tiny: tuned on validation over 1e-4, 2e-4, 5e-4, 1e-3)
    batch_size: int = 32  # student rollouts per step
    grad_share: bool = False  # also log opd/top1pct_grad_share, the top 1% of tokens' share of the gradient norm (one extra backward pass per step)
    rollouts_per_prompt: int = 1  # student rollouts per prompt in a step (paper: 8; tiny: 1, tuned on validation: the tiny student repeats itself, so 8 rollouts of 4 prompts hold few distinct samples)
    save_every: int = 50  # checkpoint every N steps


@dataclass
class EvalConfig:
    sets: list[str] = field(default_factory=lambda: ["arithmetic"])  # eval sets: arithmetic | arithmetic_val | math500 | aime24 | aime25 | gsm8k | amc23
    sources: dict[str, str] = field(default_factory=dict)  # eval set -> local JSONL (hub when absent)
    n_samples: int = 4  # k for avg@k / pass@k (paper: 16)
    temperature: float = 1.0  # eval sampling temperature (paper's code: 0.7)
    top_p: float = 1.0  # eval nucleus (paper's code: 0.8)
    top_k: int = 0  # eval top-k (paper's code: 20)
    greedy: bool = True  # also report greedy accuracy
    limit: int | None = None  # evaluate only the first N problems of each set


@dataclass
class ProbeConfig:
    every: int = 50  # snapshot every N training steps (0 = only at the start and end of a stage)
    num_prompts: int = 16  # fixed probe problems (from the eval split); 0 turns probe snapshots off
    num_samples: int = 4  # student samples per probe problem
    teacher_samples: int = 1  # teacher samples per probe problem, shown beside the student's
    top_k: int = 5  # alternatives stored per token
    c1_prompts: int = 200  # C1: problems (from the eval split) whose base-student rollouts both teachers score
    c1_samples: int = 4  # C1: base-student samples per problem (200 x 4 = 800 fixed rollouts)


@dataclass
class Config:
    name: str = "tiny"  # run name; the run goes to runs/<name> unless --out is given
    preset: str = "tiny"  # tiny | qwen3_paper
    seed: int = 0  # one seed drives init, sampling and training (the data splits follow task.data_seed)
    report_to: str = "none"  # TRL/transformers report_to: none | trackio | wandb | tensorboard
    micro_batch_size: int = 0  # sequences per device per forward/backward (gradient accumulation); 0 = a process's whole share of the step
    models: ModelsConfig = field(default_factory=ModelsConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    base: BaseStageConfig = field(default_factory=BaseStageConfig)
    teacher_grpo: GRPOStageConfig = field(default_factory=lambda: GRPOStageConfig(steps=120))  # stage 1
    teacher_sft: SFTStageConfig = field(default_factory=SFTStageConfig)  # the SFT teacher of bridge_sft_teacher
    fkl_warmup: WarmupConfig = field(default_factory=WarmupConfig)  # stage 2a
    opd: OPDConfig = field(default_factory=OPDConfig)  # stage 2b
    # stage 3 (and its replay control); tiny: lr tuned on validation over 1e-5, 3e-5, 1e-4, 3e-4
    student_grpo: GRPOStageConfig = field(default_factory=lambda: GRPOStageConfig(learning_rate=3e-5))
    # the baseline: the workflow's student steps and sequences (300 x 4 prompts x 8); tiny: tuned on validation over
    # 14 settings of lr x batch x budget (README, "How cold GRPO was tuned, and why the old baseline did not learn")
    cold_grpo: GRPOStageConfig = field(default_factory=lambda: GRPOStageConfig(steps=300, learning_rate=3e-5))
    gold_sft: SFTStageConfig = field(default_factory=lambda: SFTStageConfig(steps=300))  # reference: student SFT on gold solutions
    eval: EvalConfig = field(default_factory=EvalConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def tiny(self) -> bool:
        """Both models are the embedded tiny ones (character tokenizer, built from config)."""
        return self.models.teacher == "tiny" and self.models.student == "tiny"

    def chat_template_kwargs(self) -> dict:
        """Keyword arguments for the chat template (Qwen3's thinking flag); none for the tiny template. The one
        place this is decided: sampling, scoring, the lens and the dashboard all render prompts with it."""
        return {} if self.tiny else {"enable_thinking": self.generation.enable_thinking}

    def validate(self) -> Config:
        _validate(self)
        return self


# --- allowed values -------------------------------------------------------------------------------------------------

GRPO_SECTIONS = ("teacher_grpo", "student_grpo", "cold_grpo")
CHOICES: dict[str, tuple] = {
    "preset": PRESETS,
    "report_to": ("none", "trackio", "wandb", "tensorboard"),
    "models.dtype": ("float32", "bfloat16", "float16"),
    "models.device": ("auto", "cpu", "cuda"),
    "models.attn_implementation": ("sdpa", "eager", "flash_attention_2"),
    "task.name": ("arithmetic", "dapo", "math"),
    "base.source": ("shipped", "train"),
    "base.student": ("close", "middle", "far"),
    "base.schedule": ("cosine", "constant"),
    "generation.backend": ("hf", "vllm"),
    "generation.vllm_mode": ("colocate", "server"),
    "fkl_warmup.loss": ("full", "sampled"),
    "opd.loss": ("full_reverse_kl", "sampled_token"),
    **{f"{s}.layout": tuple(LAYOUTS) for s in ("teacher_sft", "gold_sft")},
    "task.halves": ("random", "by_family"),
    **{f"{s}.loss_type": ("dapo", "grpo", "dr_grpo", "bnpo") for s in GRPO_SECTIONS},
}
EVAL_SETS = ("arithmetic", "arithmetic_val", "math500", "aime24", "aime25", "gsm8k", "amc23")
POSITIVE = ("steps", "learning_rate", "batch_size", "num_generations", "prompts_per_step", "n_samples",
            "max_new_tokens", "rollouts_per_prompt", "n_terms", "digits", "select_every", "select_size",
            "num_samples", "eval_size", "save_every", "c1_samples", "corpus_size", "label_budget", "limit")
NON_NEGATIVE = ("seed", "data_seed", "num_prompts", "micro_batch_size", "teacher_steps", "student_steps", "kl_coef",
                "epsilon", "epsilon_high", "temperature", "top_k", "every", "teacher_samples", "warmup_ratio", "slip_rate",
                "pool_size", "val_size", "c1_prompts", "family_tail")
UNIT_INTERVAL = ("top_p", "vllm_gpu_memory_utilization")


def _validate(cfg: Config) -> None:
    for key, value in flatten(cfg).items():
        leaf = key.rsplit(".", 1)[-1]
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of {', '.join(map(str, CHOICES[key]))}")
        if isinstance(value, float) and not math.isfinite(value):
            d = _default(key)
            hint = f"such as {d!r} (the default)" if isinstance(d, (int, float)) else "a finite number"
            raise ConfigError(f"{key}={value!r} is not a finite number; give {hint}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if leaf in POSITIVE and value <= 0:
                raise ConfigError(f"{key}={value!r} must be > 0")
            if leaf in NON_NEGATIVE and value < 0:
                raise ConfigError(f"{key}={value!r} must be >= 0")
            if leaf in UNIT_INTERVAL and not 0 < value <= 1:
                raise ConfigError(f"{key}={value!r} must be in (0, 1]")
    if not cfg.task.slip_rate < 1:
        raise ConfigError(f"task.slip_rate={cfg.task.slip_rate!r} must be below 1 (a probability per slip step)")
    for name in cfg.eval.sets:
        if name not in EVAL_SETS:
            raise ConfigError(f"eval.sets contains {name!r}; allowed sets are {', '.join(EVAL_SETS)}")
    if cfg.eval.sets == []:
        raise ConfigError("eval.sets=[] is empty; give at least one of " + ", ".join(EVAL_SETS))
    for name in GRPO_SECTIONS:
        g = getattr(cfg, name).num_generations
        if g < 2:
            raise ConfigError(f"{name}.num_generations={g} must be >= 2: GRPO's advantage compares a group")
    if cfg.base.student != "close" and (cfg.models.student != "tiny" or cfg.task.name != "arithmetic"):
        raise ConfigError(f"base.student={cfg.base.student!r} picks a tiny student pretrained on the arithmetic task "
                          f"in another layout; with models.student={cfg.models.student!r} and task.name="
                          f"{cfg.task.name!r} set base.student=close")
    o = cfg.opd
    if o.batch_size % o.rollouts_per_prompt:
        raise ConfigError(f"opd.batch_size={o.batch_size} is not a multiple of opd.rollouts_per_prompt="
                          f"{o.rollouts_per_prompt}; a step holds whole groups of rollouts of one prompt")
    t = cfg.task
    if t.halves != "random" and t.name != "arithmetic":
        raise ConfigError(f"task.halves={t.halves!r} cuts the pool by the arithmetic task's problem families; "
                          f"task.name={t.name!r} has none: set task.halves=random")
    if t.family_tail and t.name != "arithmetic":
        raise ConfigError(f"task.family_tail={t.family_tail!r} draws the arithmetic task's problems from a long tail "
                          f"over families; task.name={t.name!r} has its own problems: set task.family_tail=0")
    if t.name == "arithmetic":
        if t.label_budget is not None and t.label_budget > t.pool_size:
            raise ConfigError(f"task.label_budget={t.label_budget} is larger than the labeled pool "
                              f"(task.pool_size={t.pool_size}); lower the budget or raise the pool")
        half = (t.label_budget or t.pool_size) // 2
        for name in GRPO_SECTIONS:
            ppstep = getattr(cfg, name).prompts_per_step
            if half < ppstep:
                raise ConfigError(f"each half of the labeled pool holds {half} problems, fewer than "
                                  f"{name}.prompts_per_step={ppstep}; raise task.pool_size (or task.label_budget) "
                                  f"to at least {2 * ppstep}")


def _default(key: str):
    value = Config()
    for part in key.split("."):
        value = getattr(value, part)
    return value


class ConfigMismatchError(ConfigError):
    """A run folder was made under another config than the one given (`diff`: `(key, stored, given)` triples)."""

    def __init__(self, message: str, diff: list[tuple[str, Any, Any]] | None = None):
        super().__init__(message)
        self.diff = diff or []


# Keys that change no file of a run (its name on the dashboard, where trainers also log): a run folder may be reused
# under another value of these.
INERT_KEYS = ("name", "report_to")


def flat_dict(d: dict, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as `{"section.field": value}` (what `flatten` gives for a Config, for plain dicts too)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and not str(k).endswith("sources"):
            out.update(flat_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(stored: dict, given: dict) -> list[tuple[str, Any, Any]]:
    """`(key, stored value, given value)` for every key whose value differs (INERT_KEYS left out), sorted.

    A config key that a stored config lacks (a run made before the field existed) counts as its default, so a new
    field with its default value is no change."""
    defaults = flat_dict(Config().to_dict())
    a, b = flat_dict(stored or {}), flat_dict(given or {})
    for k in set(b) - set(a):
        if k in defaults:
            a[k] = defaults[k]
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if k not in INERT_KEYS and a.get(k) != b.get(k)]


def diff_text(diff: list[tuple[str, Any, Any]], limit: int = 6) -> str:
    """`opd.steps 100 -> 7, seed 0 -> 1` (the first `limit` keys, then how many more)."""
    parts = [f"{k} {a!r} -> {b!r}" if isinstance(a, str) or isinstance(b, str) else f"{k} {a} -> {b}"
             for k, a, b in diff[:limit]]
    more = f" and {len(diff) - limit} more" if len(diff) > limit else ""
    return ", ".join(parts) + more


# --- building a config ----------------------------------------------------------------------------------------------

def flatten(cfg: Config) -> dict[str, Any]:
    """`{"seed": 0, "opd.learning_rate": 5e-4, ...}`: every settable key with its value."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                out[f"{f.name}.{sub.name}"] = getattr(value, sub.name)
        else:
            out[f.name] = value
    return out


def _field_type(cfg: Config, key: str):
    parts = key.split(".")
    if len(parts) > 2 or not all(parts):
        raise ConfigError(f"{key!r} is not a config key; keys look like 'seed' or 'opd.learning_rate'")
    hints = typing.get_type_hints(type(cfg))
    if parts[0] not in hints:
        raise ConfigError(f"unknown config key {key!r}; top-level keys are {', '.join(hints)}")
    if len(parts) == 1:
        if dataclasses.is_dataclass(hints[parts[0]]):
            raise ConfigError(f"{key!r} is a section; set one of its fields, e.g. {key}."
                              f"{dataclasses.fields(hints[parts[0]])[0].name}=...")
        return hints[parts[0]]
    section = hints[parts[0]]
    if not dataclasses.is_dataclass(section):
        raise ConfigError(f"{parts[0]!r} is not a section; set it as {parts[0]}=...")
    sub = typing.get_type_hints(section)
    if parts[1] not in sub:
        raise ConfigError(f"unknown config key {key!r}; {parts[0]} has {', '.join(sub)}")
    return sub[parts[1]]


def _coerce(key: str, value: Any, tp) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise ConfigError naming key, value and type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null"}):
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                pass
        raise ConfigError(f"{key}={value!r} is not a valid {_type_name(tp)}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} must be a list (comma-separated on the command line)")
        return [_coerce(key, v, inner) for v in value]
    if origin is dict:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                value = None
        if not isinstance(value, dict):
            raise ConfigError(f"{key}={value!r} must be a mapping, e.g. {key}={{math500: data/math500.jsonl}}")
        return {str(k): str(v) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        raise ConfigError(f"{key}={value!r} must be a boolean (true or false)")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} must be an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} must be a number")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}={value!r} must be a string")
    raise ConfigError(f"{key}: unsupported type {tp}")


def _type_name(tp) -> str:
    return " or ".join("null" if a is type(None) else getattr(a, "__name__", str(a)) for a in typing.get_args(tp))


def set_key(cfg: Config, key: str, value: Any) -> None:
    tp = _field_type(cfg, key)
    value = _coerce(key, value, tp)
    if "." in key:
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, value)
    else:
        setattr(cfg, key, value)


def apply_mapping(cfg: Config, mapping: dict, origin: str = "") -> None:
    """Apply a nested mapping as read from YAML (`{opd: {steps: 10}, seed: 1}`)."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{origin or 'config'}: expected a mapping of keys to values, got {type(mapping).__name__}")
    for key, value in mapping.items():
        if isinstance(value, dict) and not key.endswith("sources") and "." not in str(key) \
                and key in {f.name for f in dataclasses.fields(cfg)} \
                and dataclasses.is_dataclass(getattr(cfg, key)):
            for sub, v in value.items():
                set_key(cfg, f"{key}.{sub}", v)
        else:
            set_key(cfg, str(key), value)


def parse_overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value, e.g. opd.learning_rate=1e-3")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        if out[key.strip()] is None and value.strip().lower() not in {"none", "null", "~"}:
            out[key.strip()] = value
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {str(err).splitlines()[0]}") from err
    return data


def load_config(preset: str = "tiny", config_file: str | Path | None = None, overrides: list[str] | dict | None = None
                ) -> Config:
    """preset -> YAML file -> key=value overrides, validated."""
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is not allowed; choose one of {', '.join(PRESETS)}")
    cfg = Config()
    cfg.preset = preset
    cfg.name = preset
    preset_file = PRESETS_DIR / f"{preset}.yaml"
    if not preset_file.is_file():  # an install without its package data would run the wrong models silently
        raise ConfigError(f"preset file {preset_file} is missing from this install; reinstall s2dlab")
    apply_mapping(cfg, read_yaml(preset_file), str(preset_file))
    if config_file is not None:
        apply_mapping(cfg, read_yaml(config_file), str(config_file))
    if overrides:
        items = overrides if isinstance(overrides, dict) else parse_overrides(list(overrides))
        for key, value in items.items():
            set_key(cfg, key, value)
    return cfg.validate()


def config_from_dict(data: dict) -> Config:
    """Rebuild a Config from `Config.to_dict()` output (run.json)."""
    cfg = Config()
    apply_mapping(cfg, data, "run.json")
    return cfg.validate()


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
