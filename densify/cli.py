"""The ``densify`` command line: a thin layer over the library.

Only click and densify's own light modules are imported at start-up; every command imports what it needs
when it runs, so ``densify --help`` stays instant. A :class:`~densify.errors.DensifyError` becomes one line on
stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys

import click

from densify._version import __version__
from densify.errors import DensifyError


class _UserError(click.ClickException):
    exit_code = 2


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except DensifyError as exc:
            raise _UserError(str(exc)) from exc


def _parse_hw(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HxW, e.g. 32x32") from None
    if h < 1 or w < 1:
        raise click.BadParameter(f"{value!r}: sides must be positive")
    return h, w


def data_options(func):
    """Options every command that loads data shares, in one place."""
    options = [
        click.option(
            "--train-size", type=click.IntRange(min=1), help="Stratified random subset of the training split."
        ),
        click.option(
            "--heldout-size",
            type=click.IntRange(min=1),
            help="Stratified subset (or carve) of held-out images.",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for subsets and carving."),
        click.option(
            "--resize",
            callback=_parse_hw,
            metavar="HxW",
            help="Resize every image (e.g. a folder of mixed sizes).",
        ),
        click.option(
            "--channels",
            type=click.Choice(["1", "3"]),
            help="Convert every image to grayscale (1) or RGB (3).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(spec: str, train_size, heldout_size, seed, resize, channels):
    from densify.data import load_data

    return load_data(
        spec,
        train_size=train_size,
        heldout_size=heldout_size,
        seed=seed,
        resize=resize,
        channels=int(channels) if channels else None,
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="densify")
def cli() -> None:
    """densify: which augmentations actually help your data, and why."""


@cli.group()
def data() -> None:
    """Inspect datasets (data specs: fashion-mini, digits, idx:PATH, folder:PATH, cifar:PATH, npz:PATH)."""


@data.command("info")
@click.argument("spec", default="fashion-mini")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_info(spec: str, as_json: bool, **load_kwargs) -> None:
    """Counts per class and split, image shape, value range, and where SPEC was read from."""
    from densify.data._info import summarise

    summary = summarise(_load(spec, **load_kwargs))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=summary["name"], title_justify="left")
    table.add_column("class")
    table.add_column("train", justify="right")
    table.add_column("held-out", justify="right")
    for row in summary["classes"]:
        table.add_row(row["name"], str(row["train"]), str(row["heldout"]))
    table.add_row("[bold]total", f"[bold]{summary['train']['n']}", f"[bold]{summary['heldout']['n']}")
    console = Console()
    console.print(table)
    console.print(f"source: {summary['source']}", soft_wrap=True)
    h, w, c = summary["shape"]
    console.print(f"image shape: {h}x{w}x{c} (HxWxC, uint8)")
    for split in ("train", "heldout"):
        lo, hi = summary[split]["value_range"]
        console.print(
            f"{split}: {summary[split]['n']} images, values {lo}..{hi}, mean {summary[split]['mean']:.1f}"
        )
    console.print(f"held-out split: {summary['heldout_origin']}")


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="densify"))
