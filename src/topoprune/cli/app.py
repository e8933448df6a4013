"""The ``topoprune`` application and its entry point.

The command modules register their commands on :data:`app`; :func:`main` runs it. Bad input
ends in one line on stderr (``topoprune: error: ...``) naming the bad value and what is allowed,
exit code 2, and no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.exceptions import TyperException

from ..errors import TopopruneError

app = typer.Typer(
    name="topoprune",
    help="Topology-aware neural network pruning, and the controls that show whether a criterion "
    "matters: neural persistence (with a permutation null), deep graph persistence and critical "
    "compression of a model; structured pruning (l1, l2, fpgm, random, taylor, group-norm, the "
    "Topological Pruner's genetic search, Betti pruning); unstructured pruning (magnitude, lamp, "
    "snip, phew, synflow, IMP/T-IMP) in comparisons; recovery measurement, resumable comparisons "
    "with controls and reports, and the damage and activation studies.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _fail(message: str) -> None:
    """Print an error as one line (whitespace folded) and exit with status 2."""
    import re

    message = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", message)  # colour codes some libraries put in
    message = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", message)  # and any other control character
    print(f"topoprune: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns every user error into one line and exit code 2."""
    import warnings

    args = sys.argv[1:] if argv is None else argv
    # torch.load's warning before it refuses a TorchScript file would be a second stderr line
    warnings.filterwarnings("ignore", message=r".*looks like a TorchScript archive", category=UserWarning)
    try:
        code = app(args=args, prog_name="topoprune", standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code:  # typer.Exit(n) inside a command
            if code == 130:  # typer's own answer to Ctrl-C
                print("topoprune: aborted", file=sys.stderr)
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("topoprune: aborted", file=sys.stderr)
        sys.exit(130)
    except TyperException as exc:  # usage errors: unknown option, bad choice, bad number
        _fail(exc.format_message())
    except TopopruneError as exc:
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - only input-caused errors become one line
        message = _input_error(exc, args)
        if message is None:
            raise  # a bug: keep the traceback
        _fail(message)
    sys.exit(0)


_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)


def _input_error(exc: BaseException, args: list[str]) -> str | None:
    """The one-line message for an error caused by the user's input or machine (a file that is
    not text, a path of the wrong kind, memory), or None for anything else: a bug keeps its
    traceback. The library should raise TopopruneError itself; this is the safety net."""
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "out of memory" in str(exc))
    ):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return (f"out of memory ({first}); allowed: sizes this machine can hold: lower the width, the "
                "input shape, the batch size or the sample size")
    if isinstance(exc, _PATH_ERRORS) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, UnicodeDecodeError):
        files = [a for a in args if not a.startswith("-") and Path(a).exists()]
        where = f" ({', '.join(files)})" if files else ""
        return (f"a file given{where} is not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} "
                f"at position {exc.start}); allowed: UTF-8 text files")
    return None
