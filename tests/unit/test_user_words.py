"""What users read speaks to users: no issue numbers, no development history, no paths outside
the repository.

Scanned: README.md (once it is short: see ``README_MAX_LINES``), docs/**/*.md, the shipped
configs, and the comments and string literals (docstrings included) of src/**/*.py. Every hit is
reported as ``file:line: text`` so that all of them can be fixed in one pass.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The README is being rewritten for users; until then it is long and full of run history, so it is
# scanned only once it is short.
README_MAX_LINES = 300

# (what, pattern). The lookbehinds keep code out: ``act#1`` (a call counter), ``&#39;`` (an HTML
# entity), ``x[#`` and ``owner/repo#12`` are not references to this project's issues, and a
# colour such as ``#1f77b4`` or ``#123456`` is not a short number followed by a word boundary.
RULES: list[tuple[str, re.Pattern[str]]] = [
    ("issue number", re.compile(r"\bissues?\s+#?\d+", re.I)),
    ("issue number", re.compile(r"(?<![\w&#/\[])#\d{1,4}\b(?![-\w])")),
    ("development history", re.compile(r"\bwas\s+~?\d")),  # "was 20 s", "(was 77x)"
    ("development history", re.compile(r"\(was\b")),
    ("development history", re.compile(r"\bwas lent\b|\bno GPU (?:was )?lent\b", re.I)),
    ("development history", re.compile(r"\bmoonshot\b", re.I)),
    ("development history", re.compile(r"\blast stop\b", re.I)),
    ("development history", re.compile(r"\bpreviously\b", re.I)),
    ("path outside the repository", re.compile(r"\.\./shared\b|\bshared/(?:METHODS|ARCHITECTURE)|/work/")),
    ("internal specification", re.compile(r"\bMETHODS(?:\.md)?\s*(?:§|section\b|:)|\bMETHODS\.md\b|\bARCHITECTURE\b")),
]


def hits_in_text(text: str, first_line: int = 1) -> list[tuple[int, str, str]]:
    """``(line, what, line text)`` for every rule that matches a line of ``text``."""
    found = []
    for i, line in enumerate(text.splitlines()):
        for what, pattern in RULES:
            if pattern.search(line):
                found.append((first_line + i, what, line.strip()))
                break
    return found


def python_text_hits(source: str) -> list[tuple[int, str, str]]:
    """Hits in the comments and string literals of Python source (code itself is not read:
    ``x[#...]`` cannot occur outside a string or comment)."""
    kinds = {tokenize.COMMENT, tokenize.STRING}
    kinds |= {getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}  # Python >= 3.12
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in kinds:
            found.extend(hits_in_text(tok.string, tok.start[0]))
    return sorted(set(found))


def _report(path: Path, hits: list[tuple[int, str, str]]) -> list[str]:
    rel = path.relative_to(ROOT)
    return [f"{rel}:{line}: {what}: {text[:160]}" for line, what, text in hits]


def _check(paths: list[Path], scan) -> None:
    assert paths, "nothing to scan: the file layout changed"
    problems = [msg for p in paths for msg in _report(p, scan(p.read_text(encoding="utf-8")))]
    assert not problems, f"{len(problems)} line(s) for developers, not users:\n" + "\n".join(problems)


# --- the rules themselves ---------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "the GA (issue #16) is faster", "see issue 15", "issues #15 and #16", "fitness values equal the pre-#16 ones",
    "before #13 they were processes", "a row from before #15", "(#7)", "#16: budgets",
    "the GA takes 2.25 s (was 20 s)", "it was 20 s", "no GPU was lent", "So the moonshot is not met",
    "the last stop", "previously a dict", "Full specification: `../shared/METHODS.md`",
    "see shared/METHODS.md", "(METHODS.md section 7)", "METHODS §6", "as ARCHITECTURE.md draws it",
    "keep masks (ARCHITECTURE: selection)", '(METHODS: "if it rose")',
])
def test_a_developer_phrase_is_found(line):
    assert hits_in_text(line), line


@pytest.mark.parametrize("line", [
    "act#1, act#2", "colour = '#1f77b4'", "colour = '#123456'", "x = '&#39;'", "import os  # noqa: F401",
    "pytorch/pytorch#179291", "## 2. Unstructured", "# 1. prune", "[Your own model](#your-own-model)",
    "the dense accuracy was reached", "it was not", "an issue with the data", "a mask of 0 or 1",
    'raise Error(f"method must be one of {METHODS}")', '"ensure_masks", "METHODS", "SCOPES"]',
])
def test_ordinary_text_is_not_flagged(line):
    assert not hits_in_text(line), hits_in_text(line)


def test_python_code_outside_strings_and_comments_is_not_read():
    source = 'x = {"a": 1}\ny = x["a"]  # fine\ns = "see issue 12"\n'
    assert [h[0] for h in python_text_hits(source)] == [3]


def test_hits_name_the_line_of_a_multiline_docstring():
    source = 'def f():\n    """One.\n\n    Two (issue #4).\n    """\n'
    assert [h[0] for h in python_text_hits(source)] == [4]


# --- the files users read ---------------------------------------------------------------------

def test_readme_speaks_to_users():
    readme = ROOT / "README.md"
    n = len(readme.read_text(encoding="utf-8").splitlines())
    if n > README_MAX_LINES:
        pytest.skip(f"README.md has {n} lines (> {README_MAX_LINES}): it is scanned once it is rewritten short")
    _check([readme], hits_in_text)


def test_docs_speak_to_users():
    _check(sorted((ROOT / "docs").rglob("*.md")), hits_in_text)


def test_shipped_configs_speak_to_users():
    _check(sorted((ROOT / "src" / "topoprune" / "configs").glob("*.yaml")), hits_in_text)


def test_source_comments_and_docstrings_speak_to_users():
    _check(sorted((ROOT / "src").rglob("*.py")), python_text_hits)


def test_benchmarks_and_their_results_speak_to_users():
    _check(sorted((ROOT / "benchmarks").glob("*.md")) + sorted((ROOT / "benchmarks" / "results").glob("*.md")),
           hits_in_text)
    _check(sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py")), python_text_hits)
