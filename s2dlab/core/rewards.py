"""Grading: the final answer is the last `\\boxed{...}` of a completion, checked against the gold answer with
math-verify.

Only the box counts (boxed-only extraction): text outside it is never read as an answer, so a model cannot
earn reward by scattering candidate numbers. For the arithmetic task (`integer_only=True`) the box must hold a
plain integer such as `-12`; copying the question into the box (`\\boxed{3+4}`) earns nothing even though it
equals 7.

math-verify bounds its work with `signal.alarm`, which only works in the main thread. In the main thread
(training, evaluation) we keep its timeouts. Anywhere else (worker threads, app callbacks) they must be off, so
the input is bounded instead, before sympy sees it: only the tail of a completion is searched, the box content
is short and shallow, and expressions whose evaluation or expansion explodes (towers of exponents, huge
factorials, big powers of sums) are rejected by `unsafe_reason`. This keeps grading fast on adversarial text;
it cannot make sympy's `simplify` fast on every short expression, so prefer grading in the main thread and
storing the verdict.

Every entry point returns a verdict instead of raising: garbage in scores 0.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import threading
from functools import lru_cache

# Only the tail of a completion can hold its final answer; a bounded tail keeps the brace scan cheap.
MAX_COMPLETION_CHARS = 4_000
# Longest box content worth parsing. Gold answers of MATH, AIME, AMC and GSM8K are at most ~160 characters.
MAX_BOX_CHARS = 200
# Gold answers come from datasets, not from the model, so they get more room.
MAX_GOLD_CHARS = 1_000
# Bracket nesting: real answers nest 2-3 deep; the parser is recursive.
MAX_DEPTH = 10
# Largest number (in decimal digits) a power with a numeric base may produce: 2^{4950} is a real MATH answer.
MAX_POWER_DIGITS = 100_000
# Largest exponent on a product of symbols (x^{26} appears in MATH answers).
MAX_MONOMIAL_EXPONENT = 10_000
# sympy's simplify expands products and powers of sums; ~300 terms take well under a second, thousands hang.
MAX_EXPANDED_TERMS = 300
# Main thread only: math-verify's own per-call timeouts (whole seconds, signal.alarm).
MAIN_THREAD_TIMEOUT_S = 2

_BOX_START = re.compile(r"\\boxed\s*\{")
_PLAIN_INT = re.compile(r"-?\d+")
# Operators whose value sympy computes eagerly and without bound; none occurs in the gold answers of the
# benchmarks this project uses.
_BANNED = re.compile(r"\\(?:sum|prod|int|iint|iiint|oint|lim|binom|dbinom|tbinom|choose|exp)(?![A-Za-z])|\*\*")
_OPEN, _CLOSE = "([{", ")]}"
# Commands that only give structure; every other command (\pi, \sqrt, ...) acts as a symbol under expansion.
_STRUCTURAL = {"frac", "dfrac", "tfrac", "cfrac", "left", "right", "cdot", "times", "div", "text", "mbox",
               "mathrm", "textbf", "mathbf", "displaystyle"}

logger = logging.getLogger(__name__)


# --- extraction -------------------------------------------------------------------------------------------------------

def extract_boxed(text, *, max_chars: int | None = MAX_COMPLETION_CHARS, max_content: int | None = MAX_BOX_CHARS,
                  max_depth: int | None = MAX_DEPTH) -> str | None:
    """Content of the last `\\boxed{...}` in `text` (braces matched), or None.

    None also when the last box never closes (a completion cut off mid-answer), is empty, or is longer than
    `max_content` or nested deeper than `max_depth`. Only the last `max_chars` characters are searched.
    Pass None to lift a bound (trusted text such as a dataset's reference solution).
    """
    if not isinstance(text, str):
        return None
    if max_chars is not None:
        text = text[-max_chars:]
    start = _last_box_start(text)
    if start is None:
        return None
    close, depth = _match_brace(text, start, max_content)
    if close is None or (max_depth is not None and depth > max_depth):
        return None
    content = text[start + 1:close].strip()
    return content or None


def _last_box_start(text: str) -> int | None:
    """Index of the opening brace of the last `\\boxed{`."""
    last = None
    for m in _BOX_START.finditer(text):
        last = m.end() - 1
    return last


def _match_brace(text: str, open_idx: int, max_content: int | None) -> tuple[int | None, int]:
    """(index of the brace closing `text[open_idx]`, deepest nesting inside), or (None, _) if it does not close
    within `max_content` characters. Escaped braces (`\\{`, `\\}`) are literal characters, not groups."""
    depth = deepest = 0
    end = len(text) if max_content is None else min(len(text), open_idx + max_content + 2)
    i = open_idx
    while i < end:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i, deepest - 1
        i += 1
    return None, deepest


# --- bounding what sympy sees -----------------------------------------------------------------------------------------

def unsafe_reason(latex: str, max_chars: int = MAX_BOX_CHARS) -> str | None:
    """Why `latex` should not be handed to sympy without a timeout, or None when it is safe enough.

    Rejects: text over `max_chars`, brackets nested over `MAX_DEPTH`, sums/products/integrals/limits/binomials,
    factorials of anything but a 1-3 digit number or a letter, towers of exponents (an exponent holding a power,
    or a power of a power of a power), powers over `MAX_POWER_DIGITS` digits, and products/powers of sums that
    expand to more than `MAX_EXPANDED_TERMS` terms.
    """
    if len(latex) > max_chars:
        return f"longer than {max_chars} characters"
    if _bracket_depth(latex) > MAX_DEPTH:
        return f"brackets nested deeper than {MAX_DEPTH}"
    banned = _BANNED.search(latex)
    if banned:
        return f"uses {banned.group(0)}"
    return _factorial_reason(latex) or _power_reason(latex)


def _bracket_depth(s: str) -> int:
    depth = deepest = 0
    for c in s:
        if c in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif c in _CLOSE:
            depth -= 1
    return deepest


def _factorial_reason(s: str) -> str | None:
    for m in re.finditer(r"(?<!\\)!", s):
        before = s[:m.start()].rstrip()
        digits = re.search(r"\d+$", before)
        if digits and len(digits.group(0)) <= 3:
            continue
        if not digits and before[-1:].isalpha():
            continue
        return "factorial of a large or compound argument"
    return None


def _power_reason(s: str) -> str | None:
    """Check every `^`: no towers, bounded numeric magnitude, bounded expansion of sums."""
    carets = [i for i, c in enumerate(s) if c == "^" and not s[:i].endswith("\\")]
    eff: dict[int, int] = {}  # caret -> bound on its total exponent, nested powers multiplied in
    level: dict[int, int] = {}
    for i in carets:
        exponent = s[i + 1:_exponent_end(s, i)]
        base_start = _base_start(s, i)
        if "^" in exponent or s[:base_start].rstrip().endswith("^"):
            return "tower of exponents"
        inner = [j for j in carets if base_start <= j < i]
        level[i] = 1 + max((level[j] for j in inner), default=0)
        if level[i] > 2:
            return "tower of exponents"
        eff[i] = min(_exponent_bound(exponent) * max((eff[j] for j in inner), default=1), 10**12)
        reason = _base_reason(s[base_start:i], eff[i])
        if reason:
            return reason
    return _expansion_reason(s, eff)


def _base_reason(base: str, exponent: int) -> str | None:
    if not _symbols(base):
        if sum(c.isdigit() for c in base) * exponent > MAX_POWER_DIGITS:
            return f"power with more than {MAX_POWER_DIGITS} digits"
    elif _additive_terms(_strip_group(base)) < 2 and exponent > MAX_MONOMIAL_EXPONENT:
        return f"exponent above {MAX_MONOMIAL_EXPONENT}"
    return None


def _expansion_reason(s: str, eff: dict[int, int]) -> str | None:
    """Bound the terms of the full expansion: product over bracketed sums of C(t-1+e, t-1) monomials."""
    terms = 1
    for open_idx, close_idx in _groups(s):
        content = s[open_idx + 1:close_idx]
        t = _additive_terms(content)
        if t < 2 or not _symbols(content):
            continue
        e = max(eff.get(_skip_spaces(s, close_idx + 1), 1), 1)
        terms *= math.comb(t - 1 + min(e, MAX_EXPANDED_TERMS), t - 1)
        if terms > MAX_EXPANDED_TERMS:
            return f"expands to more than {MAX_EXPANDED_TERMS} terms"
    return None


def _skip_spaces(s: str, i: int) -> int:
    while i < len(s) and s[i] == " ":
        i += 1
    return i


def _exponent_end(s: str, caret: int) -> int:
    """End of the exponent after `s[caret] == '^'`: a bracketed group, a command with its arguments, a signed
    digit run, or one character. An unclosed group runs to the end (the conservative reading)."""
    i = _skip_spaces(s, caret + 1)
    if i >= len(s):
        return i
    if s[i] in _OPEN:
        return _forward_group_end(s, i) + 1
    if s[i] == "\\":
        m = re.match(r"\\[A-Za-z]+", s[i:])
        j = i + (len(m.group(0)) if m else 2)
        while j < len(s) and s[j] == "{":
            j = _forward_group_end(s, j) + 1
        return j
    m = re.match(r"[-+]?\d+(?:\.\d+)?", s[i:])
    return i + (len(m.group(0)) if m else 1)


def _base_start(s: str, caret: int) -> int:
    """Start of the base before `s[caret] == '^'`: a bracketed group (with the command that owns it), a number,
    a letter or a command. Anything else (`|x|`, ...) is read as everything before the caret."""
    j = caret - 1
    while j >= 0 and s[j] == " ":
        j -= 1
    if j < 0:
        return 0
    c = s[j]
    if c in _CLOSE:
        start = _backward_group_start(s, j)
        while start > 0 and s[start - 1] == "}":  # \frac{a}{b}^2: take the numerator group too
            start = _backward_group_start(s, start - 1)
        m = re.search(r"\\[A-Za-z]+$", s[:start])
        return m.start() if m else start
    if c.isdigit() or c == ".":
        m = re.search(r"[\d.]+$", s[:j + 1])
        return m.start()
    if c.isalpha():
        m = re.search(r"\\[A-Za-z]+$", s[:j + 1])
        return m.start() if m else j
    return 0


def _forward_group_end(s: str, open_idx: int) -> int:
    depth = 0
    for k in range(open_idx, len(s)):
        if s[k] in _OPEN:
            depth += 1
        elif s[k] in _CLOSE:
            depth -= 1
            if depth == 0:
                return k
    return len(s) - 1


def _backward_group_start(s: str, close_idx: int) -> int:
    depth = 0
    for k in range(close_idx, -1, -1):
        if s[k] in _CLOSE:
            depth += 1
        elif s[k] in _OPEN:
            depth -= 1
            if depth == 0:
                return k
    return 0


def _groups(s: str) -> list[tuple[int, int]]:
    """(open, close) index pairs of every bracketed group; unbalanced brackets are skipped."""
    stack, pairs = [], []
    for k, c in enumerate(s):
        if c in _OPEN:
            stack.append(k)
        elif c in _CLOSE and stack:
            pairs.append((stack.pop(), k))
    return pairs


def _exponent_bound(exponent: str) -> int:
    """Upper bound on the value of an exponent built from its integer literals with + - * /: prod(n+1) - 1."""
    bound = 1
    for digits in re.findall(r"\d+", exponent):
        if len(digits) > 12:
            return 10**12
        bound *= int(digits) + 1
        if bound > 10**12:
            return 10**12
    return bound - 1


def _symbols(s: str) -> set[str]:
    """Letters and non-structural commands: what stays symbolic when sympy expands."""
    return {t for t in re.findall(r"\\[A-Za-z]+|[A-Za-z]", s) if t.lstrip("\\") not in _STRUCTURAL}


def _strip_group(s: str) -> str:
    s = re.sub(r"^\\[A-Za-z]+", "", s.strip())
    if s[:1] in _OPEN and s[-1:] in _CLOSE:
        s = s[1:-1]
    return s.strip()


def _additive_terms(s: str) -> int:
    """Number of top-level terms joined by + or - (a leading sign, or one after an operator, does not count)."""
    depth, terms, prev = 0, 1, ""
    for c in s:
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c in "+-" and depth == 0 and prev not in ("", "+", "-", "^", "_", ",", "=", "*", "/"):
            terms += 1
        if c != " ":
            prev = c
    return terms


# --- grading ----------------------------------------------------------------------------------------------------------

def _timeout() -> int | None:
    """math-verify's signal-based timeout where signals work; None elsewhere (signal.alarm would raise)."""
    return MAIN_THREAD_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=1)
def _extraction_config() -> tuple:
    """Boxed-only: the box pattern has top priority and nothing is read from unanchored text. Built on first
    use so that importing this module (for `extract_boxed`) does not import sympy."""
    from math_verify import LatexExtractionConfig

    return (LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False),)


def _parse_boxed(content: str):
    from math_verify import parse

    return parse(f"\\boxed{{{content}}}", extraction_config=_extraction_config(), parsing_timeout=_timeout())


@lru_cache(maxsize=4096)
def _parse_gold(answer: str):
    """Gold answers repeat across a GRPO group; sympy objects are immutable, so the parse is shared."""
    if unsafe_reason(answer, max_chars=MAX_GOLD_CHARS):
        return None
    parsed = _parse_boxed(answer)
    return parsed or None


def _as_answer(answer) -> str | None:
    if isinstance(answer, bool) or answer is None:
        return None
    if isinstance(answer, (numbers.Integral, str)):
        text = str(answer).strip()
        return text or None
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return None


def grade(completion, answer, integer_only: bool = False) -> bool:
    """True when the last box of `completion` equals `answer` (parsed as `\\boxed{answer}`).

    `integer_only`: the box must hold a plain integer (`76`, `-12`); expressions score False even if equal.
    Never raises: unparseable, oversized or adversarial input is simply wrong.
    """
    try:
        return _grade(completion, answer, integer_only)
    except Exception:  # noqa: BLE001 - one bad completion must not stop a training step
        logger.debug("grading failed", exc_info=True)
        return False


def _grade(completion, answer, integer_only: bool) -> bool:
    content = extract_boxed(completion)
    gold = _as_answer(answer)
    if content is None or gold is None:
        return False
    if integer_only:
        if not _PLAIN_INT.fullmatch(content):
            return False
        if _PLAIN_INT.fullmatch(gold):
            return int(content) == int(gold)
    elif unsafe_reason(content):
        return False
    gold_parsed = _parse_gold(gold)
    if gold_parsed is None:
        return False
    predicted = _parse_boxed(content)
    if not predicted:
        return False
    from math_verify import verify

    return bool(verify(gold_parsed, predicted, timeout_seconds=_timeout()))


# --- TRL reward functions ---------------------------------------------------------------------------------------------

def _completion_text(completion) -> str:
    """A TRL completion as text: a string, or a list of chat messages whose last one holds the answer."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)) and completion:
        content = completion[-1].get("content") if isinstance(completion[-1], dict) else None
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
            return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _rewards(completions, answer, integer_only: bool) -> list[float | None]:
    answers = [answer] * len(completions) if isinstance(answer, (str, int)) else list(answer)
    if len(answers) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answers)} answers")
    return [None if a is None else float(grade(_completion_text(c), a, integer_only=integer_only))
            for c, a in zip(completions, answers)]


def math_reward(completions, answer, **kwargs) -> list[float | None]:
    """TRL reward function: 1.0 when the last box equals the row's `answer` column, else 0.0.

    `completions` are strings or chat-message lists, as `GRPOTrainer` passes them; other dataset columns and
    TRL's extras arrive in `kwargs` and are ignored. A row without an answer gets None (TRL skips it).
    """
    return _rewards(completions, answer, integer_only=False)


def arithmetic_reward(completions, answer, **kwargs) -> list[float | None]:
    """`math_reward` for the arithmetic task: the box must hold a plain integer (`\\boxed{3+4}` scores 0.0)."""
    return _rewards(completions, answer, integer_only=True)
