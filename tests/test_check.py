"""`s2dlab check`: the pre-flight of a teacher/student pair.

The default tier runs it on the shipped tiny base models saved as ordinary folders (a trained pair: the teacher
solves about 59% of the arithmetic problems, the student 36%, so correct and wrong rollouts both occur and C1 is
defined) and on the small-BPE Qwen3-format pair for the tokenizer rows; the slow tier on SmolLM2-135M-Instruct
from its GGUF with a cut student.
"""

import contextlib
import importlib.util
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from s2dlab.cli import main
from s2dlab.core.errors import InputError, MissingError
from s2dlab.core.models import (
    TokenizerMismatchError,
    build_char_tokenizer,
    load_model,
    load_tokenizer,
)
from s2dlab.core.runs import open_run
from s2dlab.core.tasks.arithmetic import arithmetic_splits
from s2dlab.instruments.check import (
    CHECK_FILE,
    accuracies,
    first_differing_line,
    load_problems,
    run_check,
    self_check,
    template_token_outliers,
    token_outliers,
    tokenizer_alignment,
    verdict,
)
from s2dlab.testing import make_real_format_pair, qwen3_tokenizer
from s2dlab.workflow.summary import read_summary


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny(tiny_folders, tmp_path_factory):
    """The shipped tiny base models as save_pretrained folders with their tokenizer, and 12 arithmetic problems."""
    problems = arithmetic_splits({"eval": 12}, seed=0, n_terms=4, digits=1)["eval"]
    data = write_jsonl(tmp_path_factory.mktemp("problems") / "arith.jsonl",
                       [{"problem": r["prompt"], "answer": r["answer"]} for r in problems])
    return tiny_folders, data


@pytest.fixture(scope="module")
def checked(tiny, tmp_path_factory):
    """One check through the CLI: its exit code, printed table and run folder."""
    root, data = tiny
    out = tmp_path_factory.mktemp("runs") / "check"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["check", "--teacher", str(root / "teacher"), "--student", str(root / "student"), "--data",
                     str(data), "--n", "12", "--samples", "4", "--teacher-samples", "2", "--max-new-tokens", "40",
                     "--out", str(out)])
    return code, buf.getvalue(), out


def _auroc_by_pairs(scores, labels):
    """Independent reference: the share of (correct, wrong) pairs the correct one wins (ties one half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_check_writes_an_ordinary_run_folder(checked):
    code, printed, out = checked
    assert code == 0
    run = open_run(out)
    assert run.name == "check" and run.info["config"]["models"]["teacher"].endswith("teacher")
    assert run.stages() == ["base_teacher", "base_student", "check"]
    for stage, role in (("base_teacher", "teacher"), ("base_student", "student")):
        info = run.read_json(f"{stage}/stage.json")
        assert info["status"] == "done" and info["role"] == role and info["model_source"].endswith(role)
    df = run.rollouts("check", 0)
    assert sorted(df["policy"].value_counts().items()) == [("student", 48), ("teacher", 24)]
    for col in ("token_ids", "tokens", "token_bytes", "span_texts", "implicit_reward", "reverse_kl", "forward_kl",
                "student_entropy", "teacher_entropy", "teacher_topk_ids", "correct", "sum_implicit_reward"):
        assert col in df.columns, col
    assert run.metrics("check")[0]["probe/rollouts"] == 48
    # nothing left behind by the temporary build
    assert [p.name for p in out.parent.iterdir()] == ["check"]


def test_summary_c1_c2_match_an_independent_computation(checked):
    code, printed, out = checked
    run = open_run(out)
    summary = read_summary(out)
    entry = summary["c1"]["teachers"]["base_teacher"]
    rows = run.rollouts("check", 0).to_dict("records")
    student = [r for r in rows if r["policy"] == "student"]
    labels = [bool(r["correct"]) for r in student]
    assert 0 < sum(labels) < len(labels)  # a trained pair: both kinds of rollouts, so C1 is defined
    sums = [float(sum(r["implicit_reward"])) for r in student]
    assert entry["auroc"] == pytest.approx(_auroc_by_pairs(sums, labels), abs=1e-12)
    assert entry["ci"][0] <= entry["auroc"] <= entry["ci"][1]
    lengths = [-len(r["implicit_reward"]) for r in student]
    assert entry["length_auroc"] == pytest.approx(_auroc_by_pairs(lengths, labels), abs=1e-12)
    kl = sum(sum(r["reverse_kl"]) for r in student) / sum(len(r["reverse_kl"]) for r in student)
    assert entry["mean_reverse_kl"]["mean"] == pytest.approx(kl, rel=1e-9)
    check = json.loads((out / CHECK_FILE).read_text())
    # accuracy: the mean over problems of each problem's share of correct samples
    by = {}
    for r in student:
        by.setdefault(r["prompt_id"], []).append(bool(r["correct"]))
    assert check["accuracy"]["student"]["mean"] == pytest.approx(sum(sum(v) / 4 for v in by.values()) / 12)
    assert check["accuracy"]["difference"]["n_problems"] == 12


def test_check_table_states_every_section(checked):
    code, printed, out = checked
    for text in ("eos                '<|im_end|>' 2", "chat template      identical source",
                 "max |implicit reward| 0, max reverse KL 0, max forward KL 0   passed (exactly 0)",
                 "C1 AUROC (summed reward)", "length alone", "C2 reverse KL(S || T)", "teacher - student",
                 "Verdict", "Scoring self-check passed", "Time on this machine", f"Written to {out}"):
        assert text in printed, text


def test_dashboard_and_score_open_the_check(checked, capsys):
    from s2dlab.views.dashboard.data import Store, rollout_table, token_view

    code, printed, out = checked
    store = Store(out.parent)
    assert store.run_choices() == ["check"]
    assert store.snapshot_stages("check") == ["check"]
    student_html, teacher_html, fig, note = token_view(store, "check", "check", None, None, None)
    assert "student" in student_html and "teacher" in teacher_html and "No teacher rollout" not in teacher_html
    assert len(rollout_table(store, "check", "check", None, policy="teacher")) == 24
    assert main(["score", str(out), "--stage", "check"]) == 0
    said = capsys.readouterr().out
    assert "Where the |implicit reward| sits (check" in said and "confident_agree" in said


def test_live_tab_loads_the_models_a_check_links(checked, tiny):
    """The check links its models where they live (stage.json model_source); the Live tab samples and scores with
    them without copying them into the runs folder."""
    from s2dlab.views.dashboard import data as cb

    root, _ = tiny
    code, printed, out = checked
    store = cb.Store(out.parent)
    assert cb.model_stages(store, "check") == ["base_teacher", "base_student"]
    assert cb.model_location(store, store.open("check"), "base_teacher") == (root / "teacher").resolve()
    assert cb.model_bytes(cb.model_location(store, store.open("check"), "base_student")) == \
        (root / "student" / "model.safetensors").stat().st_size
    page, fig, note = cb.live_view(store, "check", "base_student", "base_teacher", "7+3-5+8=?", answer="13")
    assert note == "Sampled and scored." and "scored by base_teacher" in page and 'class="s2d-tok' in page
    moved = out.parent / "moved"
    shutil.copytree(out, moved)
    info = json.loads((moved / "base_teacher" / "stage.json").read_text())
    (moved / "base_teacher" / "stage.json").write_text(json.dumps({**info, "model_source": str(root / "gone")}))
    with pytest.raises(cb.AppError, match="'base_teacher' has no model in this run"):
        cb.live_view(store, "moved", "base_student", "base_teacher", "1+2=?")
    shutil.rmtree(moved)


def test_a_second_check_replaces_the_first(tiny, tmp_path):
    root, data = tiny
    out = tmp_path / "check"
    kw = dict(n=3, samples=1, teacher_samples=0, max_new_tokens=8, out=out, progress=False)
    run_check(root / "teacher", root / "student", data, seed=0, **kw)
    first = (out / "check" / "rollouts" / "step_000000.parquet").read_bytes()
    check = run_check(root / "teacher", root / "student", data, seed=5, **kw)
    assert (out / "check" / "rollouts" / "step_000000.parquet").read_bytes() != first
    assert json.loads((out / CHECK_FILE).read_text())["sizes"]["seed"] == 5 == check["sizes"]["seed"]
    assert "teacher" not in check["accuracy"]  # no teacher samples: no teacher accuracy, no difference
    assert [p.name for p in tmp_path.iterdir()] == ["check"]


# --- the self-check ---------------------------------------------------------------------------------------------------

def test_self_check_is_exactly_zero_and_fails_on_a_nondeterministic_model(tiny):
    from s2dlab.core.generation import sample

    root, _ = tiny
    tok, teacher = load_tokenizer(root / "teacher"), load_model(root / "teacher").eval()
    rollouts = sample(teacher, tok, [{"id": "a", "prompt": "7+3-5+8=?"}], n=2, max_new_tokens=12, seed=0,
                      progress=False)
    ok = self_check(teacher, tok, rollouts)
    assert ok["passed"] and ok["max_abs_implicit_reward"] == 0.0 and ok["max_abs_reverse_kl"] == 0.0
    # A forward pass that is not reproducible (here: noise on the final hidden states, as a nondeterministic
    # kernel would add) makes the teacher disagree with itself, and the check says so.
    handle = teacher.model.norm.register_forward_hook(lambda m, i, o: o + 1e-3 * torch.randn_like(o))
    try:
        bad = self_check(teacher, tok, rollouts)
    finally:
        handle.remove()
    assert not bad["passed"] and bad["max_abs_implicit_reward"] > 0


# --- tokenizers beyond the vocabulary ---------------------------------------------------------------------------------

def test_first_differing_line_names_the_line():
    assert first_differing_line("a\nb\nc\n", "a\nb\nc\n") is None
    d = first_differing_line("<s>\nuser\nhi\n", "<s>\nuser\nhello\n")
    assert (d["line"], d["teacher"], d["student"]) == (3, "hi\n", "hello\n")
    longer = first_differing_line("a\n", "a\nb\n")
    assert (longer["line"], longer["teacher"], longer["student"]) == (2, None, "b\n")


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    return make_real_format_pair(tmp_path_factory.mktemp("small_pair"), tokenizer="small")


def test_alignment_rows_of_a_qwen3_format_pair(small_pair):
    from s2dlab.core.models import CHAT_TEMPLATE

    tok = load_tokenizer(small_pair.student)
    same = tokenizer_alignment(tok, load_tokenizer(small_pair.teacher))
    assert same["eos"] == {"teacher": ["<|im_end|>", tok.eos_token_id], "student": ["<|im_end|>", tok.eos_token_id],
                           "same": True}
    assert same["chat_template"]["difference"] is None and same["chat_template"]["same_source"]
    # Qwen3's template: enable_thinking=False closes an empty thinking block in the generation prompt
    assert same["thinking"]["takes_flag"] and same["thinking"]["changes"]["with_false"] == "<think>\n\n</think>\n\n"
    other = load_tokenizer(small_pair.student)
    other.chat_template = CHAT_TEMPLATE  # plain ChatML: no system default, no thinking block
    diff = tokenizer_alignment(tok, other)["chat_template"]["difference"]
    # ChatML renders the same 9 lines and stops; Qwen3's adds the closed thinking block from line 10
    assert diff == {"line": 10, "teacher": "<think>\n", "student": None, "teacher_lines": 13, "student_lines": 9}


def test_mismatched_tokenizers_stop_before_anything_is_written(small_pair, tmp_path, capsys):
    """A Base-style teacher (eos <|endoftext|>) with an Instruct-style student: the rows, then one line."""
    teacher = tmp_path / "teacher"
    shutil.copytree(small_pair.teacher, teacher)
    qwen3_tokenizer("small", eos_token="<|endoftext|>").save_pretrained(teacher)
    data = write_jsonl(tmp_path / "p.jsonl", [{"question": "What is 1+1?", "answer": "2"}])
    out = tmp_path / "runs" / "check"
    code = main(["check", "--teacher", str(teacher), "--student", str(small_pair.student), "--data", str(data),
                 "--n", "1", "--out", str(out)])
    got = capsys.readouterr()
    assert code == 2
    eos_row = next(line for line in got.out.splitlines() if line.strip().startswith("eos"))
    assert "'<|endoftext|>'" in eos_row and "'<|im_end|>'" in eos_row and eos_row.endswith("DIFFERENT")
    last = got.err.strip().splitlines()[-1]
    assert last.startswith("s2dlab: teacher and student tokenizers are not compatible") and "eos_token differs" in last
    assert not out.exists() and not (tmp_path / "runs").exists()
    with pytest.raises(TokenizerMismatchError):
        run_check(teacher, small_pair.student, data, n=1, out=out, progress=False)
    assert not out.exists()


# --- template and special tokens -------------------------------------------------------------------------------------

def test_token_outliers_are_placed_by_percentile():
    rest = {"student": [float(v) for v in range(200)]}  # 0..199
    got = token_outliers({("student", "<eos>"): [250.0, 260.0], ("student", "<think>"): [100.0],
                          ("student", "<low>"): [-5.0]}, rest)
    by = {t["token"]: t for t in got["tokens"]}
    assert by["<eos>"]["percentile"] == 1.0 and by["<eos>"]["outlier"] and by["<eos>"]["mean"] == 255.0
    assert by["<think>"]["percentile"] == pytest.approx(100.5 / 200) and not by["<think>"]["outlier"]
    assert by["<low>"]["percentile"] == 0.0 and by["<low>"]["outlier"]
    assert [t["token"] for t in got["outliers"]] == ["<eos>", "<low>"]


def test_template_token_outliers_read_each_policy_against_its_own_tokens():
    tok = build_char_tokenizer()
    eos, a = tok.eos_token_id, tok.convert_tokens_to_ids("a")
    rows = [{"policy": "student", "token_ids": [a] * 50 + [eos], "tokens": ["a"] * 50 + ["<|im_end|>"],
             "implicit_reward": [0.01 * k for k in range(50)] + [9.0]},
            {"policy": "teacher", "token_ids": [a] * 50 + [eos], "tokens": ["a"] * 50 + ["<|im_end|>"],
             "implicit_reward": [9.0 + 0.01 * k for k in range(50)] + [9.1]}]
    got = {t["policy"]: t for t in template_token_outliers(rows, tok)["tokens"]}
    assert got["student"]["outlier"] and got["student"]["percentile"] == 1.0
    assert not got["teacher"]["outlier"]  # +9.1 is ordinary among the teacher's own tokens (9.00-9.49)


# --- words ------------------------------------------------------------------------------------------------------------

def _check_dict(diff_ci, kl_ci, difference=0.2):
    return {"alignment": {"eos": {"same": True}, "bos": {"same": True}, "pad": {"same": True},
                          "added_on_encode": {"same": True}, "chat_template": {"difference": None},
                          "template_tokens": {"outliers": []}},
            "self_check": {"passed": True, "tokens": 100},
            "accuracy": {"student": {"mean": 0.3, "n_problems": 16}, "teacher": {"mean": 0.5},
                         "difference": {"mean": difference, "ci": diff_ci,
                                        "verdict": "higher" if diff_ci[0] > 0 else "lower" if diff_ci[1] < 0
                                        else "within noise"}},
            "reward_vs_length": {"difference": 0.1, "ci": [-0.05, 0.2], "verdict": "within noise"},
            "sampled": {"student": {"unfinished": 0, "rollouts": 64}}, "sizes": {"max_new_tokens": 256}}, \
        _summary({"auroc": 0.7, "ci": [0.55, 0.84], "length_auroc": 0.6,
                  "mean_reverse_kl": {"mean": sum(kl_ci) / 2, "ci": kl_ci, "n_tokens": 5000}})


def _summary(teacher_entry: dict) -> dict:
    """A check's summary as `s2dlab.workflow.summary` writes it: C1 and C2 with the verdicts its own functions give."""
    from s2dlab.workflow.summary import c1_verdict, c2_verdict

    c1 = {"teachers": {"base_teacher": teacher_entry}, "comparisons": []}
    c1["verdict"] = c1_verdict(c1)
    c2 = {"pairs": [], "start": {"base_teacher": teacher_entry["mean_reverse_kl"]}}
    c2["verdict"] = c2_verdict(c2)
    return {"c1": c1, "c2": c2}


def test_verdict_reads_every_comparison_through_its_interval():
    check, summary = _check_dict([0.05, 0.35], [1.9, 2.8])
    far = verdict(check, summary)
    assert "The teacher is more accurate than the student by 20.0 points [+5.0, +35.0] on 16 problems." in far
    assert any(s.startswith("C2 (base_teacher): the student starts far from the teacher: reverse KL 2.350 [1.900, "
                            "2.800]") and "expect a warmup" in s for s in far)
    assert any("better than chance: AUROC of the summed implicit reward 0.700 [0.550, 0.840]" in s for s in far)
    assert any("length may explain" in s for s in far)
    # C1 and C2 are the summary's own sentences, word for word (what `s2dlab score` prints for the same folder)
    for key in ("c1", "c2"):
        assert all(line in far for line in summary[key]["verdict"].splitlines())
    close = verdict(*_check_dict([-0.1, 0.3], [0.05, 0.2]))
    assert any(s.startswith("Teacher and student accuracy cannot be told apart on 16 problems") for s in close)
    assert any(s.startswith("C2 (base_teacher): the student starts close to the teacher") for s in close)
    edge = verdict(*_check_dict([-0.1, 0.3], [0.2, 0.5]))
    assert any("the interval holds 0.3" in s for s in edge)
    chance = verdict(check, _summary({"auroc": 0.52, "ci": [0.4, 0.64], "length_auroc": 0.5,
                                      "mean_reverse_kl": {"mean": 2.3, "ci": [1.9, 2.8], "n_tokens": 5000}}))
    assert any("no measurable separation" in s and "holds 0.5" in s for s in chance)


def test_accuracies_pair_teacher_and_student_by_problem():
    s_rows = [{"prompt_id": p, "correct": c} for p, c in (("a", True), ("a", False), ("b", False), ("b", False))]
    t_rows = [{"prompt_id": "a", "correct": True}, {"prompt_id": "b", "correct": True}]
    got = accuracies(s_rows, t_rows)
    assert got["student"]["mean"] == 0.25 and got["teacher"]["mean"] == 1.0
    assert got["difference"]["mean"] == pytest.approx(0.75)  # (1 - 0.5 + 1 - 0) / 2


# --- bad input: one line each, nothing written ----------------------------------------------------------------------

def _bad_inputs(tmp_path, root, data):
    no_tok = tmp_path / "no_tokenizer"
    no_tok.mkdir()
    shutil.copy(root / "student" / "config.json", no_tok / "config.json")
    no_field = write_jsonl(tmp_path / "no_field.jsonl", [{"question": "1+1?", "answer": "2"},
                                                         {"text": "2+2?", "answer": "4"}])
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    t, s = str(root / "teacher"), str(root / "student")
    return [
        (["--teacher", "Qwen/not-in-this-cache", "--student", s, "--data", str(data)],
         "'Qwen/not-in-this-cache' is a hub id, HF_HUB_OFFLINE=1 is set and it is not in the local cache"),
        (["--teacher", t, "--student", str(no_tok), "--data", str(data)], f"{no_tok}: no tokenizer here"),
        (["--teacher", t, "--student", s, "--data", str(no_field)],
         f"{no_field}:2: no a problem field (the line has answer, text); expected one of 'prompt', 'problem', "
         f"'question' and 'answer'"),
        (["--teacher", str(junk), "--student", s, "--data", str(data)],
         f"{junk}: transformers cannot read this GGUF file" if importlib.util.find_spec("gguf")
         else f"{junk}: reading a GGUF file needs the gguf package: pip install gguf"),
        (["--teacher", t, "--student", s, "--data", str(data), "--n", "50"],
         f"--n 50 but {data} holds 12 problems; pass --n 12 or fewer"),
        (["--teacher", t, "--student", s, "--data", str(tmp_path / "nope.jsonl")],
         "no such file, and not a known eval set"),
        (["--teacher", t, "--student", s, "--data", str(data), "--out", str(taken)],
         f"--out {taken} exists and is not a folder an earlier check wrote"),
    ]


def test_bad_input_gets_one_line_and_writes_nothing(tiny, tmp_path, capsys):
    root, data = tiny
    for args, expected in _bad_inputs(tmp_path, root, data):
        out = ["--out", str(tmp_path / "out")] if "--out" not in args else []
        n = ["--n", "2"] if "--n" not in args else []
        code = main(["check", *args, *out, *n])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, args
        assert err[-1].startswith("s2dlab: ") and expected in err[-1], (err[-1], expected)
        assert not any("Traceback" in line for line in err)
        assert not (tmp_path / "out").exists()
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_problem_files_and_set_names(tmp_path):
    data = write_jsonl(tmp_path / "mixed.jsonl", [{"prompt": "A?", "answer": 3}, {"problem": "B?", "answer": "x"},
                                                  {"question": "C?", "answer": "7", "id": "c"}])
    records, source = load_problems(data, 3)
    assert [(r["prompt"], r["answer"]) for r in records] == [("A?", "3"), ("B?", "x"), ("C?", "7")]
    assert records[2]["id"] == "c" and source["of"] == 3 and source["file"] == str(data.resolve())
    no_answer = write_jsonl(tmp_path / "no_answer.jsonl", [{"prompt": "A?"}])
    with pytest.raises(InputError, match=r"no_answer.jsonl:1: no 'answer' \(the line has prompt\)"):
        load_problems(no_answer, 1)
    with pytest.raises(MissingError, match="not a known eval set"):
        load_problems("gsm9k", 1)


# --- SmolLM2-135M-Instruct as the teacher -----------------------------------------------------------------------------

@pytest.mark.slow
def test_smollm2_gguf_teacher_with_a_cut_student(tmp_path, capsys):
    from s2dlab.core.models import make_layer_student, smollm2_gguf

    try:
        gguf = smollm2_gguf()
    except MissingError as err:
        pytest.skip(str(err))
    tok = load_tokenizer(gguf)
    make_layer_student(load_model(gguf), every=5).save_pretrained(tmp_path / "student")
    tok.save_pretrained(tmp_path / "student")
    data = write_jsonl(tmp_path / "gsm.jsonl", [
        {"question": "Tom has 3 boxes of 12 pencils and gives away 7. How many pencils are left?", "answer": "29"},
        {"question": "A shirt costs $20 and is 15% off. What does it cost now?", "answer": "17"}])
    out = tmp_path / "runs" / "smol"
    code = main(["check", "--teacher", str(gguf), "--student", str(tmp_path / "student"), "--data", str(data),
                 "--n", "2", "--samples", "2", "--teacher-samples", "1", "--max-new-tokens", "24", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "passed (exactly 0)" in printed
    check = json.loads((out / CHECK_FILE).read_text())
    assert check["alignment"]["heads"] == {"teacher": 49_152, "student": 49_152}
    assert check["alignment"]["eos"]["same"] and check["alignment"]["eos"]["teacher"] == ["<|im_end|>", 2]
    assert check["models"]["student"]["layers"] == 6 and check["models"]["teacher"]["layers"] == 30
    kl = read_summary(out)["c1"]["teachers"]["base_teacher"]["mean_reverse_kl"]
    assert kl["ci"][0] > 0.5  # the cut student is far from its teacher
    assert any(v.startswith("C2 (base_teacher): the student starts far from the teacher") for v in check["verdict"])


def test_check_on_qwen3_format_folders(small_pair, tmp_path):
    """Random Qwen3-format models (padded heads, Qwen3's template, non-thinking mode): no rollout is right, so
    C1 is undefined and the verdict says why instead of printing a number."""
    data = write_jsonl(tmp_path / "p.jsonl",
                       [{"question": f"What is {k}+{k}?", "answer": str(2 * k)} for k in range(3)])
    check = run_check(small_pair.teacher, small_pair.student, data, n=3, samples=2, max_new_tokens=12,
                      out=tmp_path / "check", progress=False)
    assert check["alignment"]["heads"] == {"teacher": 512, "student": 512}
    assert check["alignment"]["thinking"]["used"] is False and check["self_check"]["passed"]
    rows = open_run(tmp_path / "check").rollouts("check", 0)
    assert all(max(ids) < small_pair.tokenizer_size for ids in rows["token_ids"] if len(ids))
    tok = load_tokenizer(small_pair.student)  # what the models saw: the non-thinking generation prompt
    assert all(tok.decode(ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") for ids in rows["prompt_ids"])
    assert any(v.startswith("C1 (base_teacher): cannot judge: the fixed rollouts are all") for v in check["verdict"])
