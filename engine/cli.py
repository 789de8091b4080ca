"""The `mgreview` command line: evaluate intake files, check rulesets.

The engine's commands never import Flask. Other installed packages add commands through entry points (the review
UI adds `db`, `users`, `import`, `audit`, `serve`, `demo`, `rulesets export` and the check of stored versions);
they are imported only when one of their commands runs or when help lists them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click

from engine import ENGINE_VERSION
from engine.errors import MgReviewError

# Exit statuses of `evaluate`: 0 every record evaluated; 1 done, some records rejected (listed);
# 2 failed: the input could not be read, an output could not be written, or the ruleset is invalid.
EXIT_REJECTED = 1
EXIT_FAILED = 2

# Entry-point groups through which other packages extend this command line.
COMMANDS_GROUP = "mgreview.commands"  # top-level commands
RULESETS_COMMANDS_GROUP = "mgreview.rulesets_commands"  # commands under `mgreview rulesets`
STORED_RULESETS_GROUP = "mgreview.stored_rulesets"  # () -> number of stored versions refused, for `rulesets check`
NEWEST_STORED_GROUP = "mgreview.newest_stored_ruleset"  # (name) -> newest version published in a database, or None


class Failed(click.ClickException):
    """The command could not do its job: one line, exit status 2."""

    exit_code = EXIT_FAILED


def _os_message(error: OSError) -> str:
    """`path: reason` for a file that could not be read or written."""
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename else reason


class CommandLine(click.Group):
    """A command group whose domain errors end as one line on stderr and exit status 2, never a traceback;
    its commands may also come from other installed packages (an entry-point group), loaded when used."""

    def __init__(self, *args: Any, plugins: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugins = plugins

    def _plugin_entries(self) -> dict[str, EntryPoint]:
        if self.plugins is None:
            return {}
        return {entry.name: entry for entry in entry_points(group=self.plugins)}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The group's own commands and those of installed packages, sorted."""
        return sorted({*super().list_commands(ctx), *self._plugin_entries()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A command of the group, else one an installed package adds (imported only now)."""
        command = super().get_command(ctx, cmd_name)
        if command is None and (entry := self._plugin_entries().get(cmd_name)) is not None:
            loaded = entry.load()
            if not isinstance(loaded, click.Command):
                raise TypeError(f"entry point {entry.value} is not a click command")
            command = loaded
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an error of the engine's error tree or of the file system becomes one line."""
        try:
            return super().invoke(ctx)
        except MgReviewError as e:
            raise Failed(str(e)) from None
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise  # click ends quietly when the reader of stdout went away
            raise Failed(_os_message(e)) from None


@click.group(cls=CommandLine, plugins=COMMANDS_GROUP)
@click.version_option(ENGINE_VERSION, prog_name="mgreview")
def main() -> None:
    """mgreview: decision support for oral magnesium supplementation."""


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Results (JSONL); default stdout."
)
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), help="Write rejected records here.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.option(
    "--jurisdiction",
    type=click.Choice(["US", "EU"]),
    envvar="MGREVIEW_JURISDICTION",
    help="For records without one (default: $MGREVIEW_JURISDICTION, else the ruleset's).",
)
@click.option("--ruleset", "ruleset_path", type=click.Path(exists=True, dir_okay=False), help="Ruleset file.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "fhir"]),
    default="json",
    show_default=True,
    help="json: mgreview results; fhir: a Bundle of DetectedIssue resources per record.",
)
@click.option("--resume", is_flag=True, help="Continue a killed batch: skip records already in OUT/--rejects.")
@click.option(
    "--dask",
    "dask_address",
    envvar="MGREVIEW_DASK_SCHEDULER",
    metavar="ADDRESS",
    help="Run on a Dask cluster (scheduler address, or 'local' for a local cluster).",
)
def evaluate(
    input_path: Path,
    output: Path | None,
    rejects: Path | None,
    workers: int,
    jurisdiction: str | None,
    ruleset_path: str | None,
    output_format: str,
    resume: bool,
    dask_address: str | None,
) -> None:
    """Evaluate a JSONL or CSV intake file; one JSON result line per record."""
    from engine import batch

    if resume and output is None:
        raise click.UsageError("--resume needs -o/--output: it continues the files of a killed batch")
    for target in (output, rejects):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
    done: set[int] = set()
    if resume:
        try:
            done = batch.completed_lines(*(p for p in (output, rejects) if p is not None))
        except ValueError as e:
            raise Failed(str(e)) from None
        click.echo(f"resuming: {len(done)} records already done", err=True)
    # UTF-8 bytes, flushed by the batch after each line (or chunk of lines), so a kill leaves whole lines;
    # a torn last line (a kill inside that write) is cut off by --resume.
    mode = "ab" if resume else "wb"
    out = output.open(mode) if output else sys.stdout.buffer
    rej = rejects.open(mode) if rejects else None
    items = (item for item in batch.read_records(input_path) if item[0] not in done)
    try:
        summary = batch.run(
            items,
            out,
            rej,
            workers=workers,
            ruleset_path=ruleset_path,
            jurisdiction=jurisdiction,
            total=_count(input_path) - len(done) if sys.stderr.isatty() else None,
            dask=dask_address,
            output_format=output_format,
        )
    finally:
        for stream in (out if output else None, rej):
            if stream is not None:
                with contextlib.suppress(OSError):  # the error that stopped the batch was reported already
                    stream.close()
    _say_ruleset(ruleset_path)
    for line in summary.lines():
        click.echo(line, err=True)
    if summary.rejected:
        sys.exit(EXIT_REJECTED)


def _say_ruleset(ruleset_path: str | None) -> None:
    """On stderr: which ruleset version and file evaluate uses, and how to use a newer one a database published."""
    from engine import ruleset

    try:
        path = Path(ruleset_path) if ruleset_path else ruleset.latest_published()
        data = ruleset.parse_text(ruleset.exact_text(path), str(path))
    except (MgReviewError, OSError):
        return  # the batch reports an unreadable ruleset itself
    name, version = data.get("ruleset"), data.get("version")
    click.echo(f"ruleset {name} v{version} ({_shown_path(path)}, sha256 {ruleset.sha256_of(path)[:16]}…)", err=True)
    if not _database_check_wanted():
        return
    newest = max((v for v in (hook(str(name)) for hook in _newest_stored_hooks()) if v is not None), default=None)
    if isinstance(version, int) and newest is not None and newest > version:
        click.echo(
            f"the database has {name} v{newest}, published after this file: write it with "
            f"`mgreview rulesets export --to DIR`, then evaluate with `--ruleset DIR/{name}/v{newest}.json`",
            err=True,
        )


def _database_check_wanted() -> bool:
    """Whether to ask the review UI's database for a newer version: when a person watches stderr (a terminal),
    or MGREVIEW_CHECK_DATABASE=1; never in a pipeline unless asked (the look-up imports the web stack, ~2 s)."""
    wanted = os.environ.get("MGREVIEW_CHECK_DATABASE")
    return sys.stderr.isatty() if wanted is None else wanted == "1"


def _shown_path(path: Path) -> str:
    """A path relative to the working folder when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _newest_stored_hooks() -> list[Callable[[str], int | None]]:
    """Installed packages' look-ups of the newest version published in their database (the review UI's)."""
    return [entry.load() for entry in sorted(entry_points(group=NEWEST_STORED_GROUP), key=lambda e: e.name)]


def _count(path: Path) -> int:
    from engine import batch

    try:
        return batch.count_records(path)
    except batch.InputError:
        return 0  # the batch itself reports it


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="HTML report, or a PNG when the name ends in .png.",
)
def report(results: tuple[Path, ...], output: Path) -> None:
    """Summarise result files (and reject files) with plots: severities, findings, caps, reject reasons."""
    from engine import report as reporting

    try:
        tally = reporting.render(list(results), output)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{output}: {tally.records} records, {tally.ok} evaluated, {tally.rejected} rejected")


@main.group(cls=CommandLine, plugins=RULESETS_COMMANDS_GROUP)
def rulesets() -> None:
    """Inspect and check ruleset files."""


@rulesets.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-db", is_flag=True, help="Check the files only, not the versions stored in the database.")
def rulesets_check(paths: tuple[Path, ...], no_db: bool) -> None:
    """Validate ruleset files (default: every file under rulesets/) and every version stored in the database."""
    failure: click.ClickException | None = None
    try:
        _check_files(list(paths))
    except click.ClickException as e:
        failure = e
    if not no_db:
        refused = sum(check() for check in _stored_ruleset_checks())
        if refused and failure is None:
            failure = click.ClickException(f"{refused} stored ruleset version(s) refused")
    if failure is not None:
        raise failure


def _check_files(paths: list[Path]) -> None:
    """Print each file's problems, or ok with its rule count and hash; fail when any file has problems."""
    from engine import ruleset

    files = paths or ruleset.ruleset_files()
    if not files:
        raise click.ClickException("no ruleset files found")
    failed = 0
    for file in files:
        errors = ruleset.check_file(file)
        if errors:
            failed += 1
            for error in errors:
                click.echo(f"{file}: {error}", err=True)
        else:
            click.echo(f"{file}: ok ({_contents(ruleset.load(file))})")
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} ruleset files have errors")


def _contents(loaded: Any) -> str:
    """'74 rules + 16 from the upper-limit table, 139 scenarios, published, sha256 977bb21d67ddfabe…'."""
    from engine import scenarios

    written = len(loaded.raw["rules"])
    generated = len(loaded.rules) - written
    rules = f"{written} rules" + (f" + {generated} from the upper-limit table" if generated else "")
    beside = scenarios.path_for(Path(loaded.path))
    try:
        cases = f"{len(scenarios.load(beside))} scenarios"
    except FileNotFoundError:
        cases = "no scenarios"
    except (MgReviewError, OSError, ValueError):
        cases = "scenarios unreadable (`mgreview rulesets test` says why)"
    return f"{rules}, {cases}, {loaded.status}, sha256 {loaded.sha256[:16]}…"


def _stored_ruleset_checks() -> list[Callable[[], int]]:
    """Checks of ruleset versions stored by installed packages (the review UI's database), by entry point."""
    return [entry.load() for entry in sorted(entry_points(group=STORED_RULESETS_GROUP), key=lambda e: e.name)]


@rulesets.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rulesets_test(paths: tuple[Path, ...]) -> None:
    """Run the scenarios beside each ruleset file (default: every version); any failure exits 1."""
    from engine import ruleset, scenarios
    from engine.errors import MgReviewError
    from engine.evaluate import Evaluator

    failed = 0
    for file in list(paths) or ruleset.ruleset_files():
        try:
            cases = scenarios.load(scenarios.path_for(file))
            failures = scenarios.run(Evaluator(file), cases)
        except (MgReviewError, OSError, ValueError) as e:
            raise click.ClickException(f"{file}: {e}") from None
        for failure in failures:
            click.echo(f"{file}: FAIL {failure}", err=True)
        failed += bool(failures)
        click.echo(f"{file}: {len(cases) - len({f.scenario for f in failures})} of {len(cases)} scenarios pass")
    if failed:
        raise click.ClickException(f"{failed} ruleset file(s) fail their scenarios")


@rulesets.command("impact")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("records", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--all", "show_all", is_flag=True, help="List every changed record (default: the first 50).")
def rulesets_impact(old: Path, new: Path, records: Path, show_all: bool) -> None:
    """Replay an intake file (JSONL, NDJSON of FHIR Bundles, CSV) through two ruleset files; show what changes."""
    from engine import batch, impact
    from engine.evaluate import Evaluator

    result = impact.replay(batch.read_records(records), Evaluator(old), Evaluator(new))
    for line in result.summary():
        click.echo(line)
    for change in result.changed if show_all else result.changed[:50]:
        click.echo(change.text())


@rulesets.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rulesets_diff(old: Path, new: Path) -> None:
    """What changed between two ruleset files, rule by rule."""
    from engine.rulediff import diff

    lines = diff(_ruleset_data(old), _ruleset_data(new))
    click.echo("\n".join(lines) if lines else "no differences")


def _ruleset_data(path: Path) -> dict[str, Any]:
    """The JSON object of a ruleset file, unchecked (a draft may be compared too)."""
    from engine import ruleset

    return ruleset.parse_text(ruleset.exact_text(path), str(path))


if __name__ == "__main__":
    main()
