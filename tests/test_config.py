import subprocess
import sys

import pytest

from s2dlab.core.config import (
    ConfigError,
    config_from_dict,
    flatten,
    load_config,
    parse_overrides,
    to_yaml,
)


def test_tiny_defaults_and_overrides():
    cfg = load_config("tiny", overrides=["opd.learning_rate=1e-3", "seed=3", "eval.sets=arithmetic",
                                         "fkl_warmup.only_correct=true", "eval.limit=null"])
    assert cfg.opd.learning_rate == 1e-3 and isinstance(cfg.opd.learning_rate, float)
    assert cfg.seed == 3 and cfg.fkl_warmup.only_correct is True and cfg.eval.limit is None
    assert cfg.models.teacher == "tiny" and cfg.preset == "tiny"


def test_qwen3_paper_preset_matches_design():
    cfg = load_config("qwen3_paper")
    assert (cfg.models.student, cfg.models.teacher) == ("Qwen/Qwen3-1.7B", "Qwen/Qwen3-8B")
    assert cfg.eval.sets == ["math500", "aime24", "aime25"] and cfg.eval.n_samples == 16
    assert (cfg.eval.temperature, cfg.eval.top_p, cfg.eval.top_k) == (0.7, 0.8, 20)
    for g in (cfg.teacher_grpo, cfg.student_grpo, cfg.cold_grpo):  # the paper's Table 8
        assert (g.learning_rate, g.kl_coef, g.epsilon, g.epsilon_high) == (1e-6, 5e-4, 0.2, 0.2)
    assert cfg.generation.max_new_tokens == 16384 and cfg.generation.temperature == 1.0
    o = cfg.opd  # Table 9
    assert (o.learning_rate, o.rollouts_per_prompt, o.batch_size) == (1e-6, 8, 64)
    assert cfg.fkl_warmup.loss == "full" and cfg.fkl_warmup.top_k == 64 and cfg.task.name == "dapo"
    assert cfg.task.prompt_suffix.endswith("within \\boxed{}.")
    assert cfg.generation.enable_thinking is False


@pytest.mark.parametrize("override, fragment", [
    ("opd.lr=1", "unknown config key 'opd.lr'"),
    ("bogus=1", "unknown config key 'bogus'"),
    ("opd.learning_rate=fast", "opd.learning_rate='fast' must be a number"),
    ("opd.loss=forward", "choose one of full_reverse_kl, sampled_token"),
    ("seed=1.5", "seed=1.5 must be an integer"),
    ("opd.steps=0", "opd.steps=0 must be > 0"),
    ("eval.sets=math500,nope", "'nope'"),
    ("teacher_grpo.num_generations=1", "must be >= 2"),
    ("opd=3", "is a section"),
    ("generation.top_p=1.5", "must be in (0, 1]"),
    ("fkl_warmup.only_correct=maybe", "must be a boolean"),
    ("noequals", "is not key=value"),
])
def test_bad_values_name_key_value_and_allowed(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config("tiny", overrides=[override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_preset_and_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="preset='big'"):
        load_config("big")
    f = tmp_path / "c.yaml"
    f.write_text("opd:\n  steps: 7\nseed: 5\n")
    cfg = load_config("tiny", f, ["seed=6"])
    assert cfg.opd.steps == 7 and cfg.seed == 6  # overrides win over the file
    f.write_text("opd:\n  stepz: 7\n")
    with pytest.raises(ConfigError, match="opd.stepz"):
        load_config("tiny", f)
    f.write_text("opd: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config("tiny", f)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("tiny", tmp_path / "missing.yaml")


def test_round_trip_through_dict_and_yaml():
    cfg = load_config("qwen3_paper", overrides=["eval.sources={math500: data/m.jsonl}"])
    again = config_from_dict(cfg.to_dict())
    assert flatten(again) == flatten(cfg)
    assert "teacher: Qwen/Qwen3-8B" in to_yaml(cfg)


def test_parse_overrides_types():
    assert parse_overrides(["a=1", "b=0.5", "c=true", "d=x y", "e="]) == {"a": 1, "b": 0.5, "c": True, "d": "x y",
                                                                          "e": ""}


def test_cli_config_error_is_one_line_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "s2dlab", "run", "--print-config", "opd.loss=bogus"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "opd.loss='bogus'" in lines[0] and "full_reverse_kl" in lines[0]


def test_cli_help_documents_every_subcommand():
    proc = subprocess.run([sys.executable, "-m", "s2dlab", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for cmd in ("run", "stage", "eval", "score", "app", "demo"):
        assert cmd in proc.stdout


def test_cli_missing_run_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "s2dlab", "eval", str(tmp_path / "nope")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no such run folder" in proc.stderr and str(tmp_path / "nope") in proc.stderr
