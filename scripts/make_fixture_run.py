"""Build the small committed run under tests/data/fixture_run/ that the app, viz and browser tests read.

    python scripts/make_fixture_run.py     # ~2 minutes on 2 idle CPU cores; writes ~550 KB, no model weights

What is real and what is not:
- Real: a tiny teacher and student (the tiny preset's Qwen3 sizes, char tokenizer plus two added tokens `é`, `→`)
  trained here for a few hundred plain next-token steps on synthetic worked solutions; their samples
  (`s2dlab.generation.sample`); every per-token score (`s2dlab.scoring.score_rollouts`); eval.json from sampling
  the models; results.json from `s2dlab.pipeline.collect_results`.
- Stand-ins: the "stages" are snapshots of those short SFT runs at growing step counts, not real GRPO / warmup /
  OPD runs, and the reward / KL curves of the RL stages are synthetic. Two hand-written student rollouts are added
  to the latest OPD snapshot: one holding `<script>alert(1)</script>` (escaping) and one with multibyte
  characters (`é`, `→`).
No model weights are written (the Live tab shows its "no checkpoint" message on this run); the tokenizer is saved
so top-k ids can be named.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2dlab.generation import Rollout, format_prompt, sample  # noqa: E402
from s2dlab.models import TINY_STUDENT, TINY_TEACHER, build_char_tokenizer, build_tiny_model  # noqa: E402
from s2dlab.runs import create_run  # noqa: E402
from s2dlab.scoring import score_rollouts  # noqa: E402

OUT = ROOT / "tests" / "data" / "fixture_run"
SEED = 0
MAX_NEW = 40
EVAL_K = 4

# --- data -------------------------------------------------------------------------------------------------------


def problem(rng: random.Random, i: int) -> dict:
    # one-digit numbers (the tiny preset uses two): a few hundred steps then give a mix of right and wrong answers
    a, b, c = (rng.randint(1, 9) for _ in range(3))
    o1, o2 = rng.choice("+-"), rng.choice("+-")
    ab = a + b if o1 == "+" else a - b
    abc = ab + c if o2 == "+" else ab - c
    return {"id": f"arith-{i:04d}", "prompt": f"{a}{o1}{b}{o2}{c}=?", "answer": str(abc),
            "solution": f"{a}{o1}{b}={ab}\n{ab}{o2}{c}={abc}\n\\boxed{{{abc}}}"}


def grade(completion: str, answer: str) -> bool:
    boxes = re.findall(r"\\boxed\{(-?\d+)\}", completion)
    return bool(boxes) and boxes[-1] == str(answer)


# --- models -----------------------------------------------------------------------------------------------------


def train(model, tok, records, steps: int, lr: float = 3e-3, batch: int = 32, seed: int = 0,
          log: list | None = None, log_offset: int = 0) -> None:
    """Plain next-token SFT on the completion part of prompt + gold solution."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    texts = [(format_prompt(tok, r["prompt"]), r["solution"] + tok.eos_token) for r in records]
    model.train()
    for step in range(steps):
        idx = torch.randint(len(texts), (batch,), generator=g).tolist()
        ids, labels = [], []
        for i in idx:
            p = tok(texts[i][0], add_special_tokens=False)["input_ids"]
            c = tok(texts[i][1], add_special_tokens=False)["input_ids"]
            ids.append(p + c)
            labels.append([-100] * len(p) + c)
        L = max(map(len, ids))
        x = torch.full((batch, L), tok.pad_token_id)
        y = torch.full((batch, L), -100)
        att = torch.zeros(batch, L, dtype=torch.long)
        for b, (s, lab) in enumerate(zip(ids, labels)):
            x[b, :len(s)], y[b, :len(s)], att[b, :len(s)] = torch.tensor(s), torch.tensor(lab), 1
        loss = model(input_ids=x, attention_mask=att, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log is not None and (step + 1) % 10 == 0:
            log.append({"step": log_offset + step + 1, "loss": round(loss.item(), 4), "learning_rate": lr,
                        "grad_norm": None, "epoch": round((log_offset + step + 1) * batch / len(texts), 3)})
    model.eval()


def snapshot(model, tok, spec):
    clone = build_tiny_model(spec, tok)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    return clone


def handwritten(tok, rec: dict, completion: str, idx: int) -> Rollout:
    prompt_text = format_prompt(tok, rec["prompt"])
    prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    ids = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return Rollout(prompt_id=rec["id"], sample_idx=idx, prompt=rec["prompt"], prompt_text=prompt_text,
                   prompt_ids=prompt_ids, completion_ids=ids, completion=completion,
                   sampler_logprobs=[0.0] * len(ids), finished=True, policy="student")


# --- main -------------------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    rng = random.Random(SEED)

    tok = build_char_tokenizer()
    tok.add_tokens(["é", "→"])  # so the multibyte case is two real tokens, not <|unk|>
    train_set = [problem(rng, i) for i in range(4000)]
    probe = [problem(rng, 10000 + i) for i in range(8)]
    eval_set = [problem(rng, 20000 + i) for i in range(24)]
    answers = {r["id"]: r["answer"] for r in probe + eval_set}

    # built in a hidden folder beside the target and swapped in at the end, so a failed build keeps the old one
    build = args.out.parent / f".{args.out.name}.build" / args.out.name
    shutil.rmtree(build.parent, ignore_errors=True)
    from s2dlab.config import load_config

    cfg = load_config("tiny")
    cfg.eval.n_samples = EVAL_K
    cfg.eval.sets = ["arithmetic"]
    run = create_run(build, cfg.to_dict(), seed=SEED)
    tok.save_pretrained(run.path / "tokenizer")

    teacher = build_tiny_model(TINY_TEACHER, tok, seed=1)
    student = build_tiny_model(TINY_STUDENT, tok, seed=0)
    logs: dict[str, list] = {}

    print("training teacher ...", flush=True)
    train(teacher, tok, train_set, 80, seed=1, log=logs.setdefault("base_teacher", []))
    base_teacher = snapshot(teacher, tok, TINY_TEACHER)
    train(teacher, tok, train_set, 420, lr=2e-3, seed=2)
    print("training student ...", flush=True)
    train(student, tok, train_set, 120, seed=3, log=logs.setdefault("base_student", []))
    students = {"base_student": snapshot(student, tok, TINY_STUDENT)}
    direct = snapshot(student, tok, TINY_STUDENT)
    train(direct, tok, train_set, 30, lr=1e-3, seed=9, log=logs.setdefault("direct_grpo", []))
    for k, (stage, steps) in enumerate((("fkl_warmup", 100), ("opd", 150), ("student_grpo", 100))):
        train(student, tok, train_set, steps, lr=2e-3, seed=10 + k, log=logs.setdefault(stage, []))
        students[stage] = snapshot(student, tok, TINY_STUDENT)
    students["direct_grpo"] = direct

    def probe_rows(stage, step, s_model, t_model, extra=()):
        kw = dict(max_new_tokens=MAX_NEW, temperature=1.0, top_k=0, seed=step + len(stage), progress=False)
        rolls = sample(s_model, tok, probe, n=2, policy="student", **kw)
        rolls += sample(t_model, tok, probe, n=1, policy="teacher", **kw)
        rolls += list(extra)
        rows = score_rollouts(s_model, t_model, tok, rolls, grade_fn=grade, answers=answers, stage=stage, step=step)
        run.write_rollouts(stage, step, rows)
        srows = [r for r in rows if r["policy"] == "student"]
        ntok = sum(r["length"] for r in srows) or 1
        return {"step": step, "probe/accuracy": sum(bool(r["correct"]) for r in srows) / len(srows),
                "probe/mean_reverse_kl": sum(sum(r["reverse_kl"]) for r in srows) / ntok,
                "probe/mean_implicit_reward": sum(sum(r["implicit_reward"]) for r in srows) / ntok}

    print("sampling and scoring snapshots ...", flush=True)
    injected = [handwritten(tok, probe[0], "<script>alert(1)</script>\n\\boxed{5}", 2),
                handwritten(tok, probe[1], f"café → {probe[1]['answer']}\n\\boxed{{{probe[1]['answer']}}}", 2)]
    probes = {
        # C1 before/after: the same student scored against the teacher before and after "stage 1"
        "teacher_grpo": [(0, students["student_grpo"], base_teacher, ()), (200, students["student_grpo"], teacher, ())],
        "fkl_warmup": [(0, students["base_student"], teacher, ()), (100, students["fkl_warmup"], teacher, ())],
        "opd": [(0, students["fkl_warmup"], teacher, ()), (150, students["opd"], teacher, injected)],
        "student_grpo": [(100, students["student_grpo"], teacher, ())],
        "direct_grpo": [(30, students["direct_grpo"], base_teacher, ())],
    }
    probe_metrics = {stage: [probe_rows(stage, step, s, t, extra) for step, s, t, extra in items]
                     for stage, items in probes.items()}

    print("metrics ...", flush=True)
    noise = random.Random(7)
    synthetic = {  # RL stages: reward rises, KL to the reference grows slowly (stand-in curves)
        "teacher_grpo": (200, 0.42, 0.67),
        "student_grpo": (100, 0.45, 0.55),
        "direct_grpo": (30, 0.27, 0.30),
    }
    for stage, (steps, r0, r1) in synthetic.items():
        logs[stage] = []
        for s in range(10, steps + 1, 10):
            f = s / steps
            logs[stage].append({"step": s, "reward": round(r0 + (r1 - r0) * f + noise.gauss(0, 0.03), 4),
                                "kl": round(0.002 * s ** 0.5 + abs(noise.gauss(0, 0.001)), 5),
                                "loss": round(noise.gauss(0, 0.01), 5), "learning_rate": 1e-4,
                                "completions/mean_length": round(30 + noise.gauss(0, 1.5), 2)})
    for stage in ("base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd", "student_grpo", "direct_grpo"):
        merged = {r["step"]: dict(r) for r in logs.get(stage, [])}
        for m in probe_metrics.get(stage, []):
            merged.setdefault(m["step"], {"step": m["step"]}).update(m)
        for step in sorted(merged):
            run.append_metrics(stage, {k: v for k, v in merged[step].items() if v is not None})
    # an ablation arm with metrics only, so arm-prefixed stage folders show up in the app
    for s in range(10, 101, 10):
        run.append_metrics("raw_teacher.opd", {"step": s, "loss": round(1.2 * math.exp(-s / 60) + 0.3, 4)})

    print("evaluating ...", flush=True)
    models = {"base_teacher": base_teacher, "teacher_grpo": teacher, **students}
    for stage, model in models.items():
        kw = dict(max_new_tokens=MAX_NEW, progress=False, seed=1234)
        samp = sample(model, tok, eval_set, n=EVAL_K, temperature=1.0, top_k=0, **kw)
        greedy = sample(model, tok, eval_set, n=1, temperature=0, **kw)
        by = {}
        for r in samp:
            by.setdefault(r.prompt_id, []).append(grade(r.completion, answers[r.prompt_id]))
        avg = sum(sum(c) / EVAL_K for c in by.values()) / len(by)
        pas = sum(any(c) for c in by.values()) / len(by)
        res = {"avg@4": avg, "pass@4": pas, "k": EVAL_K, "n_problems": len(by),
               "greedy": sum(grade(r.completion, answers[r.prompt_id]) for r in greedy) / len(greedy),
               "mean_length": sum(len(r.completion_ids) for r in samp) / len(samp)}
        run.write_eval(stage, {"stage": stage, "accuracy": avg, "sets": {"arithmetic": res},
                               "config": {"sets": ["arithmetic"], "n_samples": EVAL_K}})

    from s2dlab.pipeline import collect_results

    results = collect_results(cfg, run, {"workflow": "student_grpo", "direct_grpo": "direct_grpo"})
    run.write_results(results)
    size = sum(p.stat().st_size for p in run.path.rglob("*") if p.is_file())
    shutil.rmtree(args.out, ignore_errors=True)
    build.rename(args.out)
    build.parent.rmdir()
    print(f"wrote {args.out} ({size / 1024:.0f} KiB)")
    for arm, m in results["arms"].items():
        print(f"  {arm:<12} avg@4 {m['accuracy']:.2f}")


if __name__ == "__main__":
    main()
