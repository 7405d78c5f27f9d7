"""The ``layerswarm`` command line: search, finetune, layers, models, ...

One module a job: common.py (the group, shared options, helpers), search_cmd.py, finetune_cmd.py,
tools.py (layers, models, strategies, report, export, predict), experiments.py (compare, race, bench).
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_at_start(signum, _frame) -> None:
    terminated = signum == signal.SIGTERM
    sys.stderr.write(f"layerswarm: {'terminated (SIGTERM)' if terminated else 'interrupted'}\n")
    os._exit(143 if terminated else 130)


def _started_as_command() -> bool:
    """``layerswarm ...`` or ``python -m layerswarm.cli ...``, not an import from other code. With
    -m, runpy imports this package (sys.argv[0] still '-m') before it runs __main__.py."""
    if os.path.basename(sys.argv[0] or "") == "layerswarm":
        return True
    return sys.argv[0] == "-m" and f"-m{__name__}" in "".join(sys.orig_argv[1:])


# Ctrl-C before main() is running (while Python imports this package) ends with one line too;
# main() hands SIGINT back to Python (KeyboardInterrupt) once it can catch it.
if _started_as_command():
    signal.signal(signal.SIGINT, _interrupted_at_start)
    signal.signal(signal.SIGTERM, _interrupted_at_start)

import click  # noqa: E402

from ..errors import LayerswarmError  # noqa: E402

# importing a command module registers its commands on app
from . import common, experiments, finetune_cmd, search_cmd, tools  # noqa: E402, F401
from .common import (  # noqa: E402
    SEARCHER_CHOICES,
    STRATEGY_CHOICES,
    TRAIN_CHOICES,
    Interrupted,
    Terminated,
    app,
)
from .search_cmd import _search_config, search  # noqa: E402

__all__ = ["SEARCHER_CHOICES", "STRATEGY_CHOICES", "TRAIN_CHOICES", "_search_config", "app", "main", "search"]


def _one_line(err: click.ClickException) -> str:
    """A click usage error as one line, with where to look for the right usage."""
    msg = " ".join(err.format_message().split())
    ctx = getattr(err, "ctx", None)
    if isinstance(err, click.UsageError) and ctx is not None:
        msg += f" (see: {ctx.command_path} --help)"
    return msg


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one line on stderr and exit code 2, a fault during a run
    (:class:`~layerswarm.errors.RunFailed`) one line and exit code 1; Ctrl-C at any moment one
    line and exit code 130, SIGTERM the same with 143."""
    common._ARGV = list(sys.argv[1:] if argv is None else argv)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        signal.signal(signal.SIGINT, _raise_interrupt)
        from ..run.failpoints import check_environment

        check_environment()  # LAYERSWARM_FAILPOINTS, when set, must parse before any work
        # click's own main would print a blank line on Ctrl-C: parse and invoke here instead
        with app.make_context("layerswarm", list(common._ARGV)) as ctx:
            app.invoke(ctx)
    except LayerswarmError as err:
        click.echo(f"layerswarm: error: {err}", err=True)
        return err.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort, Interrupted) as err:
        _ignore_signals()  # a second Ctrl-C or SIGTERM while this line prints
        terminated = isinstance(err, Terminated) or isinstance(err.__cause__, Terminated)
        default = "terminated (SIGTERM)" if terminated else "interrupted"
        click.echo(f"layerswarm: {err if isinstance(err, Interrupted) else default}", err=True)
        return 143 if terminated else 130
    except click.exceptions.Exit as err:
        return err.exit_code
    except click.ClickException as err:
        click.echo(f"layerswarm: error: {_one_line(err)}", err=True)
        return err.exit_code
    except Exception:
        # a KeyboardInterrupt inside a half-done import (numpy, scipy) can surface as another
        # error (RecursionError, ImportError): after a Ctrl-C it is still the interrupt
        if not (_SIGINT_SEEN or _SIGTERM_SEEN):
            raise
        _ignore_signals()
        what = "terminated (SIGTERM)" if _SIGTERM_SEEN else "interrupted"
        click.echo(f"layerswarm: {what}", err=True)
        return 143 if _SIGTERM_SEEN else 130
    finally:
        if _started_as_command():
            # the work is over and its results are written: a Ctrl-C or SIGTERM landing while the
            # interpreter shuts down has nothing left to stop (Python would otherwise die of it)
            _ignore_signals()
        else:
            signal.signal(signal.SIGTERM, previous_sigterm)  # main() called in-process: put it back
    return 0


_SIGINT_SEEN = _SIGTERM_SEEN = False


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _raise_terminated(_signum, _frame) -> None:
    """SIGTERM unwinds as Ctrl-C does (:class:`Terminated`), once."""
    global _SIGTERM_SEEN
    if _SIGTERM_SEEN:
        return
    _SIGTERM_SEEN = True
    raise Terminated


def _raise_interrupt(signum, frame) -> None:
    """Python's default Ctrl-C (KeyboardInterrupt), remembering that it happened."""
    global _SIGINT_SEEN
    _SIGINT_SEEN = True
    signal.default_int_handler(signum, frame)
