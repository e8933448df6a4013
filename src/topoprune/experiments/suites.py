"""Evaluation suites: the tasks ``topoprune evaluate`` runs a candidate method through.

A suite is a YAML file: a name, a description and a list of tasks. A task is a comparison
config without its methods (``config:``, every key ``topoprune compare`` takes except ``name``,
``methods`` and ``controls_of``), the baselines it compares the candidate with (``baselines:``,
method entries as in a config), and which kind of method it takes (``kind: structured`` or
``unstructured``). :func:`task_config` adds the candidate to the baselines and restricts the
config's ``controls`` to the candidate, so only its own controls run.

The suites shipped with the package live in ``topoprune/suites/`` (``quick``, ``standard``,
``standard-cifar10``); a user passes a file of their own the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import TopopruneError, unknown_name
from ..pruning.methods import StructuredMethod
from .config import ExperimentConfig, parse_config, read_yaml

__all__ = ["Suite", "SuiteTask", "load_suite", "shipped_suites", "task_config"]

_RESERVED = ("name", "methods", "controls_of")


class SuiteTask(BaseModel):
    """One task of a suite: a comparison config without methods, and its baselines."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$", description="how the leaderboard names it")
    kind: Literal["structured", "unstructured"] = Field(description="the methods it takes")
    description: str = ""
    baselines: list[Any] = Field(min_length=1, max_length=64, description="method entries, as in a config")
    schedule: dict[str, int] | None = Field(None, description="structured tasks: the candidate prunes iteratively, "
                                            "{steps: k, epochs: e} (the one-shot baselines recover as long)")
    config: dict[str, Any] = Field(description="a compare config without name, methods and controls_of")


class Suite(BaseModel):
    """A named list of tasks (read from YAML by :func:`load_suite`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,47}$")
    description: str = ""
    device: Literal["cpu", "cuda", "auto"] | None = Field(None, description="the device it is meant for")
    tasks: list[SuiteTask] = Field(min_length=1, max_length=64)

    def digest(self) -> str:
        """12 hex digits of the suite's content (part of the evaluation folder's name)."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]

    def tasks_for(self, structured: bool) -> list[SuiteTask]:
        """The tasks a structured (or unstructured) candidate runs in."""
        kind = "structured" if structured else "unstructured"
        return [t for t in self.tasks if t.kind == kind]


def shipped_suites() -> dict[str, Path]:
    """The suites installed with the package, by name."""
    folder = Path(__file__).resolve().parents[1] / "suites"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def load_suite(suite: str | Path) -> Suite:
    """A shipped suite by name (``"quick"``, ``"standard"``, ``"standard-cifar10"``) or a YAML
    file of one's own; an unknown key anywhere is refused in one line naming it."""
    path = Path(suite)
    if not path.exists() and not path.suffix and len(path.parts) == 1:
        shipped = shipped_suites()
        if str(suite) not in shipped:
            raise unknown_name("suite (a shipped one, or a YAML file)", str(suite), shipped)
        path = shipped[str(suite)]
    if not path.is_file():
        raise TopopruneError(f"suite {path} does not exist; allowed: a shipped suite ({', '.join(shipped_suites())}) "
                             "or a YAML file")
    data = read_yaml(path, "suite")
    if not isinstance(data, dict):
        raise TopopruneError(f"suite {path}: bad value {type(data).__name__}; allowed: a mapping with name, "
                             "description and tasks")
    try:
        parsed = Suite.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            section = SuiteTask if len(e["loc"]) > 1 else Suite
            raise TopopruneError(f"suite {path}: unknown key {where!r}; allowed keys: "
                                 f"{', '.join(section.model_fields)}") from None
        raise TopopruneError(f"suite {path}: field {where}: {e['msg']} (got {e.get('input')!r})") from None
    names = [t.name for t in parsed.tasks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TopopruneError(f"suite {path}: task {twice[0]!r} is given twice; allowed: distinct task names")
    for i, task in enumerate(parsed.tasks):
        models = task.config.get("models")
        if isinstance(models, list) and len(models) > 1:
            raise TopopruneError(f"suite {path}: field tasks[{i}].config.models: {len(models)} models; allowed: one model "
                                 "per task (give each model a task of its own)")
        reserved = [k for k in _RESERVED if k in task.config]
        if reserved:
            raise TopopruneError(f"suite {path}: field tasks[{i}].config.{reserved[0]}: not allowed in a suite "
                                 "(the task names the run; evaluate adds the methods and the candidate's controls)")
        checked = task_config(task, None, where=f"suite {path}: tasks[{i}]")  # every config key checked now
        for j, m in enumerate(checked.methods):
            kind = "structured" if isinstance(m.method, StructuredMethod) else "unstructured"
            if kind != task.kind:
                raise TopopruneError(f"suite {path}: field tasks[{i}].baselines[{j}]: {m.key!r} is {_a(kind)} "
                                     f"method; allowed: {task.kind} methods in {_a(task.kind)} task")
        if task.schedule is not None:  # checked as a method entry's schedule would be (a label no baseline has)
            probe = {"name": "l1" if task.kind == "structured" else "magnitude", "label": "schedule-check"}
            task_config(task, probe, where=f"suite {path}: tasks[{i}]")
    return parsed


def task_config(task: SuiteTask, candidate: dict | list[dict] | None, *, suite: str = "suite",
                where: str | None = None) -> ExperimentConfig:
    """The task's comparison config: its baselines, then the candidates (config method entries,
    one or a list; None to check the task alone), with ``controls`` run for the candidates only."""
    entries = [] if candidate is None else (list(candidate) if isinstance(candidate, list) else [candidate])
    if task.schedule is not None:
        entries = [{**e, "schedule": dict(task.schedule)} for e in entries]
    methods = list(task.baselines) + entries
    raw = {**task.config, "name": f"{suite}-{task.name}"[:64], "methods": methods}
    if entries and task.config.get("controls"):
        raw["controls_of"] = [e.get("label") or e["name"] for e in entries]
    elif task.config.get("controls"):
        raw.pop("controls")  # checked when the candidate is there
    try:
        return parse_config(raw)
    except TopopruneError as exc:
        names = [e.get("label") or e.get("name") for e in entries]
        raise TopopruneError(f"{where or 'task ' + task.name}: {_suite_words(str(exc), len(task.baselines), names)}") from None


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _suite_words(message: str, baselines: int, candidates: list | tuple = ()) -> str:
    """A config error in a suite's words: the methods list is the task's baselines, then the
    candidates, so ``methods[i]`` is ``baselines[i]`` or the method under test (named, with the
    field that is wrong)."""
    def name(match: re.Match) -> str:
        i, field = int(match.group(1)), match.group(2)
        if i < baselines:
            return f"field baselines[{i}]{field}"
        if field == ".schedule" or field.startswith(".schedule."):  # the task's schedule, given to the candidates
            return f"field {field[1:]}"
        who = candidates[i - baselines] if i - baselines < len(candidates) else None
        said = f"the method under test {who!r}" if who else "the method under test"
        return f"{said}, field {field[1:]}" if field else said
    return re.sub(r"config field methods\[(\d+)\]((?:\.\w+|\[\d+\])*)", name, message)


@dataclass(frozen=True)
class PlannedTask:
    """A task with its config, as an evaluation runs it."""

    task: SuiteTask
    config: ExperimentConfig
