"""The `mgreview` command line: evaluate intake files, check rulesets."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from engine import ENGINE_VERSION

# Exit statuses of `evaluate`: 0 every record evaluated; 1 done, some records rejected (listed);
# 2 failed: the input could not be read, an output could not be written, or the ruleset is invalid.
EXIT_REJECTED = 1
EXIT_FAILED = 2


class Failed(click.ClickException):
    """The command could not do its job: one line, exit status 2."""

    exit_code = EXIT_FAILED


@click.group()
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
    from engine.errors import MgReviewError

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
    # Line-buffered: each result line reaches the file in one write, so a kill leaves whole lines;
    # a torn last line (a kill inside that write) is cut off by --resume.
    mode = "a" if resume else "w"
    out = output.open(mode, encoding="utf-8", buffering=1) if output else sys.stdout
    rej = rejects.open(mode, encoding="utf-8", buffering=1) if rejects else None
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
    except MgReviewError as e:
        raise Failed(str(e)) from None
    finally:
        for stream in (out if output else None, rej):
            if stream is not None:
                with contextlib.suppress(OSError):  # the error that stopped the batch was reported already
                    stream.close()
    for line in summary.lines():
        click.echo(line, err=True)
    if summary.rejected:
        sys.exit(EXIT_REJECTED)


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


@main.group()
def rulesets() -> None:
    """Inspect and check ruleset files."""


@rulesets.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rulesets_check(paths: tuple[Path, ...]) -> None:
    """Validate ruleset files (default: every file under rulesets/)."""
    from engine import ruleset

    files = list(paths) or ruleset.ruleset_files()
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
            loaded = ruleset.load(file)
            click.echo(f"{file}: ok ({len(loaded.rules)} rules, {loaded.status}, sha256 {loaded.sha256[:16]}…)")
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} ruleset files have errors")


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
    from engine.errors import MgReviewError
    from engine.evaluate import Evaluator

    try:
        result = impact.replay(batch.read_records(records), Evaluator(old), Evaluator(new))
    except MgReviewError as e:
        raise click.ClickException(str(e)) from None
    for line in result.summary():
        click.echo(line)
    for change in result.changed if show_all else result.changed[:50]:
        click.echo(f"{change.record_id}: " + "; ".join(change.lines()))


@rulesets.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def rulesets_diff(old: Path, new: Path) -> None:
    """What changed between two ruleset files, rule by rule."""
    import json

    from engine.rulediff import diff

    lines = diff(json.loads(old.read_text("utf-8")), json.loads(new.read_text("utf-8")))
    click.echo("\n".join(lines) if lines else "no differences")


if __name__ == "__main__":
    main()
