"""The ``densify`` command line: a thin layer over the library.

Only click and densify's own light modules are imported at start-up; every command imports what it needs
when it runs, so ``densify --help`` stays instant. A :class:`~densify.errors.DensifyError` becomes one line on
stderr and exit code 2.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import click

from densify._catalogue import LABELS, SUMMARY
from densify._progress import progress_display, run_progress
from densify._version import __version__
from densify.errors import DensifyError


class _UserError(click.ClickException):
    exit_code = 2


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            from densify._torch import env_count

            # a bad thread count is refused before any work, not midway
            for name in ("DENSIFY_TORCH_THREADS", "DENSIFY_FAISS_THREADS"):
                env_count(name)
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


def _parse_image_size(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return "auto"
    text = value.strip().lower()
    if text in ("auto", "stored"):
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if "x" in text:
        return _parse_hw(ctx, param, text)
    raise click.BadParameter(f"{value!r} is not auto, stored, a side in pixels (64) or HxW (64x48)")


def image_options(func):
    """How images are read and sized, on every command that loads data: --resize, --channels, --image-size."""
    options = [
        click.option(
            "--resize",
            callback=_parse_hw,
            metavar="HxW",
            help="Resize every image when it is read (a folder of mixed sizes otherwise gets its most common).",
        ),
        click.option(
            "--channels",
            type=click.Choice(["1", "3"]),
            help="Convert every image to grayscale (1) or RGB (3) when it is read.",
        ),
        click.option(
            "--image-size",
            callback=_parse_image_size,
            metavar="auto|stored|N|HxW",
            help="Working size: recipes augment the stored images, then views and clean images are resized to "
            "it. auto: larger than 32 px scaled down to 32 on the longer side  [default: auto]",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _image_kwargs(resize, channels, image_size) -> dict:
    return {"resize": resize, "channels": int(channels) if channels else None, "image_size": image_size}


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
    ]
    for option in reversed(options):
        func = option(func)
    return image_options(func)


def _load(spec: str, train_size, heldout_size, seed, resize, channels, image_size):
    from densify.data import load_data

    return load_data(
        spec,
        train_size=train_size,
        heldout_size=heldout_size,
        seed=seed,
        **_image_kwargs(resize, channels, image_size),
    )


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="densify")
def cli() -> None:
    """densify: which augmentations actually help your data, and why."""


@cli.group()
def data() -> None:
    """Inspect datasets (data specs: fashion-mini, digits, idx:PATH, folder:PATH, cifar:PATH, npz:PATH,
    synth:FAMILY?OPTIONS)."""


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

    table = Table()
    table.add_column("class")
    table.add_column("train", justify="right")
    table.add_column("held-out", justify="right")
    for row in summary["classes"]:
        table.add_row(row["name"], str(row["train"]), str(row["heldout"]))
    table.add_row("[bold]total", f"[bold]{summary['train']['n']}", f"[bold]{summary['heldout']['n']}")
    console = Console()
    console.print(summary["name"], soft_wrap=True, highlight=False)  # a long path as a title broke mid-word
    console.print(table)
    console.print(f"source: {summary['source']}", soft_wrap=True)
    h, w, c = summary["shape"]
    sh, sw, _ = summary["stored_shape"]
    stored = f"; the working size; recipes augment the stored {sh}x{sw}" if (sh, sw) != (h, w) else ""
    console.print(f"image shape: {h}x{w}x{c} (HxWxC, uint8{stored})")
    for split in ("train", "heldout"):
        lo, hi = summary[split]["value_range"]
        console.print(
            f"{split}: {summary[split]['n']} images, values {lo}..{hi}, mean {summary[split]['mean']:.1f}"
        )
    console.print(f"held-out split: {summary['heldout_origin']}")
    for note in summary["notes"]:
        console.print(f"note: {note}", soft_wrap=True, highlight=False)
    if summary["factors"]:
        factors = Table(title="latent factors (observed range)", title_justify="left")
        for column in ("factor", "train", "held-out"):
            factors.add_column(column, justify="left" if column == "factor" else "right")
        for row in summary["factors"]:
            factors.add_row(row["name"], *(f"{lo:g} .. {hi:g}" for lo, hi in (row["train"], row["heldout"])))
        console.print(factors)


@data.command("issues")
@click.argument("spec", default="fashion-mini")
@data_options
@click.option(
    "--encoder",
    default=None,
    help="Features for label issues, outliers and k-NN scores (default: random-cnn, label-free; an encoder "
    "trained on the labels learns their errors and hides them).",
)
@click.option("--weights", type=click.Path(dir_okay=False), help="Local weights file for torchvision:NAME.")
@click.option(
    "-o",
    "--out",
    default="data-issues.csv",
    show_default=True,
    help="CSV of the flagged samples (every sample with --all), most severe first.",
)
@click.option(
    "--all", "all_rows", is_flag=True, help="Write every sample's scores, not only the flagged ones."
)
@click.option(
    "--top", type=click.IntRange(min=0), default=10, show_default=True, help="Flagged samples to print."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_issues_command(
    spec: str, encoder, weights, out, all_rows: bool, top: int, as_json: bool, **load_kwargs
) -> None:
    """Likely label errors, duplicates, train/held-out leakage and outliers in SPEC, written to a CSV (with each
    image's file for folder: sources)."""
    from densify.quality import DEFAULT_ENCODER, data_issues, write_issues

    if Path(out).is_dir():  # refused before the (slow) work, not after it
        raise DensifyError(f"{out}: is a folder; --out names the CSV file to write")
    data = _load(spec, **load_kwargs)
    issues = data_issues(data, encoder=encoder or DEFAULT_ENCODER, weights=weights, seed=load_kwargs["seed"])
    write_issues(issues, Path(out), flagged_only=not all_rows)
    if as_json:
        click.echo(
            json.dumps({"summary": issues.summary, "settings": issues.settings, "csv": str(out)}, indent=2)
        )
        return
    from rich.console import Console

    from densify.quality import summary_lines

    console = Console()
    for line in summary_lines(issues.summary):
        console.print(line, soft_wrap=True, highlight=False)
    flagged = issues.flagged()
    if top and flagged:
        from rich import box
        from rich.table import Table

        shown = flagged[:top]
        # files relative to the folder they share (the CSV keeps full paths); columns empty in every shown row
        # are left out, so that the rest fit a terminal
        paths = [r["path"] for r in shown if r["path"]]
        root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0]) if paths else ""
        if root and all(p == root for p in paths):
            root = os.path.dirname(root)
        cells = {
            "split": [r["split"] for r in shown],
            "index": [str(r["index"]) for r in shown],
            "issues": [r["issues"].replace(";", ", ") for r in shown],
            "label -> suggested": [
                f"{r['given_label']} -> {r['suggested_label']}"
                if r["suggested_label"] and r["suggested_label"] != r["given_label"]
                else r["given_label"]
                for r in shown
            ],
            "quality": [f"{r['label_quality']:.3f}" for r in shown],
            "duplicate of": [r["duplicate_of"] for r in shown],
            "file": [os.path.relpath(p, root) if root and p else p for p in (r["path"] for r in shown)],
        }
        cells = {name: column for name, column in cells.items() if any(column)}
        where = f" (files in {root})" if root else ""
        console.print(
            f"most severe {len(shown)} of {len(flagged)} flagged{where}", soft_wrap=True, highlight=False
        )
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        # numbers never wrap; names and files fold rather than lose their ends to an ellipsis
        for name in cells:
            table.add_column(name, no_wrap=name in ("split", "index", "quality"), overflow="fold")
        for row in zip(*cells.values(), strict=True):
            table.add_row(*row)
        console.print(table)
    console.print(f"wrote {out} ({len(flagged) if not all_rows else len(issues.rows)} rows)", highlight=False)


@cli.group()
def recipes() -> None:
    """List, inspect, preview, export and check augmentation recipes."""


@recipes.command("list")
@click.argument("pattern", default="*")
@click.option(
    "--dir", "folders", multiple=True, type=click.Path(), help="Also list the recipes in this folder."
)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def recipes_list(pattern: str, folders: tuple[str, ...], as_json: bool) -> None:
    """Recipes (name, intent, what they suit), optionally filtered by a glob PATTERN: built-ins, the folders of
    DENSIFY_RECIPE_PATH, and any --dir."""
    from densify.recipes import list_recipes

    found = list_recipes(pattern, folders)
    if as_json:
        rows = [
            {"name": r.name, "intent": r.intent, "suits": list(r.suits), "avoid": list(r.avoid)}
            for r in found
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for column in ("recipe", "intent", "suits"):
        table.add_column(column, overflow="fold")
    for r in found:
        table.add_row(r.name, r.intent, ", ".join(r.suits))
    Console().print(table)


_strength_option = click.option(
    "--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="Scale every magnitude."
)


@recipes.command("show")
@click.argument("recipe")
@_strength_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def recipes_show(recipe: str, strength: float, as_json: bool) -> None:
    """The resolved pipeline of RECIPE (name or file), with every parameter after --strength."""
    from densify.recipes import read_recipe, resolved_pipeline

    r = read_recipe(recipe)
    shown = {
        "name": r.name,
        "intent": r.intent,
        "suits": list(r.suits),
        "avoid": list(r.avoid),
        "source": str(r.source),
        "strength": strength,
        "pipeline": resolved_pipeline(r, strength),
    }
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    import yaml

    click.echo(yaml.safe_dump(shown, sort_keys=False, width=110, default_flow_style=None), nl=False)


@recipes.command("preview")
@click.argument("recipe")
@click.option(
    "--data", "spec", default="fashion-mini", show_default=True, help="Data spec of the source images."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the views (and of the rows chosen)."
)
@_strength_option
@click.option(
    "--rows", type=click.IntRange(1, 64), default=8, show_default=True, help="Source images (rows)."
)
@click.option(
    "--views", type=click.IntRange(1, 32), default=8, show_default=True, help="Views per image (columns)."
)
@click.option(
    "--epoch", type=click.IntRange(min=0), default=0, show_default=True, help="Epoch whose views to show."
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG path [default: RECIPE-preview.png].",
)
@image_options
def recipes_preview(
    recipe, spec, seed, strength, rows, views, epoch, out, resize, channels, image_size
) -> None:
    """Write a PNG grid of RECIPE's views: rows of training images, columns of views (first column: clean).

    The grid replays exactly: the same seed gives the same pixels, and they are the views DensifiedDataset
    yields for that seed, epoch and index.
    """
    from densify.data import load_data
    from densify.loader import load_recipe
    from densify.preview import preview_grid, save_png

    augmenter = load_recipe(recipe, strength=strength, seed=seed, output="numpy")
    data = load_data(spec, **_image_kwargs(resize, channels, image_size))
    path = save_png(
        preview_grid(data.train, augmenter, rows, views, seed, epoch),
        out or f"{augmenter.recipe.name}-preview.png",
    )
    click.echo(
        f"wrote {path} ({rows} images x {views} views of '{augmenter.recipe.name}', seed {seed}, strength {strength})"
    )


@recipes.command("export")
@click.argument("recipe")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False), required=True, help="Output .json, .yaml or .yml file."
)
@_strength_option
def recipes_export(recipe: str, out: str, strength: float) -> None:
    """Export RECIPE in albumentations' own format (A.load reads it; so does densify)."""
    from densify.recipes import export_recipe, read_recipe

    path = export_recipe(read_recipe(recipe), out, strength)
    click.echo(f"wrote {path}")


@recipes.command("check")
@click.argument("paths", nargs=-1, required=True)
def recipes_check(paths: tuple[str, ...]) -> None:
    """Validate recipe files, folders of them, or names; exit code 2 at the first invalid one."""
    from densify.recipes import compile_recipe, expand_recipe_refs, read_recipe

    for path in expand_recipe_refs(paths):
        r = read_recipe(path)
        compile_recipe(r, 0.0)
        click.echo(f"ok: {path}: recipe '{r.name}', {len(r.pipeline)} step(s)")


@recipes.command("transforms")
def recipes_transforms() -> None:
    """The albumentations transforms recipes may use, and the parameters --strength scales."""
    from densify.recipes import MAGNITUDES
    from densify.recipes._albu import allowed_transforms

    for name in allowed_transforms():
        scaled = ", ".join(MAGNITUDES.get(name, {}))
        click.echo(f"{name}{'  (strength scales: ' + scaled + ')' if scaled else ''}")


_data_option = click.option("--data", "spec", default="fashion-mini", show_default=True, help="Data spec.")


def _split_recipes(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...] | None:
    names = tuple(v.strip() for item in value for v in item.split(",") if v.strip())
    return names or None


def _required_recipes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    names = _split_recipes(ctx, param, value)
    if not names:
        raise click.BadParameter("name at least one recipe (e.g. --recipes none,flip)")
    return names


#: one spelling of the recipe option on every command (``--recipe`` is accepted too)
_recipes_option = click.option(
    "--recipes",
    "--recipe",
    "recipes",
    multiple=True,
    required=True,
    callback=_required_recipes,
    metavar="NAME,...",
    help="Recipes: names, files or folders, comma-separated or repeated; include 'none' as the baseline.",
)


def _coverage_options(func):
    """The coverage-estimate options that ``coverage`` and ``evaluate`` share: --encoder, --weights, --views, -k."""
    options = [
        click.option(
            "--encoder",
            default="reference+views",
            show_default=True,
            help="reference | reference+views | random-cnn | pixels | pixels:pcaN | torchvision:NAME",
        ),
        click.option(
            "--weights",
            metavar="NAME|FILE",
            help="For torchvision:NAME: a weights name (DEFAULT, IMAGENET1K_V1), read from torch's hub cache "
            "(TORCH_HOME; never downloaded), or a local state-dict file.",
        ),
        click.option(
            "--views",
            type=click.IntRange(min=1),
            default=2,
            show_default=True,
            help="Views per training image.",
        ),
        click.option(
            "-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Neighbourhood size."
        ),
        click.option(
            "--search",
            type=click.Choice(["auto", "exact", "approximate"]),
            default="auto",
            show_default=True,
            help="k-NN search: exact, an approximate index (its measured error is reported), or auto "
            "(approximate from 200,000 points up).",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Processes generating the views (the same views with any number).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _fmt(metric, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{metric.value:{sign}.3f} [{metric.low:{sign}.3f}, {metric.high:{sign}.3f}]"


@cli.command("coverage")
@_data_option
@_recipes_option
@_coverage_options
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of encoder, views and bootstrap.")
@_strength_option
@click.option("--train-size", type=click.IntRange(min=1), help="Stratified subset of the training split.")
@click.option("--heldout-size", type=click.IntRange(min=1), help="Stratified subset of the held-out split.")
@click.option(
    "--cache-dir", type=click.Path(file_okay=False), help="Embedding cache [default: ~/.cache/densify]."
)
@click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache.")
@click.option("--per-class", is_flag=True, help="Also print each recipe's coverage gain per class.")
@image_options
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write every number to this JSON file."
)
def coverage(
    spec,
    recipes,
    encoder,
    weights,
    views,
    k,
    search,
    workers,
    seed,
    strength,
    train_size,
    heldout_size,
    cache_dir,
    no_cache,
    per_class,
    json_out,
    resize,
    channels,
    image_size,
) -> None:
    """How much each recipe densifies the training set where held-out data lies, before any training.

    Prints, per recipe, the coverage metrics with 95% bootstrap intervals over held-out points (or views).
    """
    from rich.console import Console
    from rich.table import Table

    from densify._io import write_text_atomic
    from densify.data import load_data
    from densify.estimate import estimate_coverage
    from densify.recipes import expand_recipe_refs

    data = load_data(
        spec,
        train_size=train_size,
        heldout_size=heldout_size,
        seed=seed,
        **_image_kwargs(resize, channels, image_size),
    )
    console = Console(stderr=True)
    with progress_display(console) as shown:
        progress = shown.update
        run = estimate_coverage(
            data,
            expand_recipe_refs(recipes),
            encoder=encoder,
            weights=weights,
            views=views,
            k=k,
            seed=seed,
            strength=strength,
            cache_dir=None if no_cache else (cache_dir or True),
            progress=progress,
            workers=workers,
            search=search,
        )
    from densify._dist import is_main

    if not is_main():  # under torchrun, rank 0 reports
        return
    out = Console()
    out.print(
        f"{run.data}: {run.n_train} train, {run.n_heldout} held-out; encoder {run.encoder}; k={run.k}; "
        f"{run.views} views per image; seed {run.seed}",
        soft_wrap=True,
    )
    for result in run.results:
        table = Table(title=f"{result.recipe} (strength {result.strength})", title_justify="left")
        table.add_column("metric")
        table.add_column("value [95% CI]", justify="right")
        for name, metric in result.metrics.items():
            table.add_row(name, _fmt(metric, signed=name.endswith("_gain") or name == "densification"))
        out.print(table)
    from rich import box

    # headers wrap (at most 7 wide) and the metrics are split over as few tables as fit the console's width
    # (12 metrics of 7 characters and a separator need 96 columns with the recipe names): names never wrap
    name_width = max(len("recipe"), *(len(r.recipe) for r in run.results))
    for first, part in enumerate(_groups(SUMMARY, (out.width - name_width) // 8)):
        summary = Table(
            title="summary" if first == 0 else None,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 0),
        )
        summary.add_column("recipe", no_wrap=True)
        for _, label in part:
            summary.add_column(" " + _ABBREV.get(label, label), justify="right", min_width=7, max_width=8)
        for result in run.results:
            summary.add_row(
                result.recipe,
                *(f"{result.metrics[n].value:.3f}" if n in result.metrics else "-" for n, _ in part),
            )
        out.print(summary)
    out.print(
        "(" + "; ".join(f"{_ABBREV.get(label, label)}: {LABELS[n]}" for n, label in SUMMARY) + ")",
        soft_wrap=True,
        highlight=False,
    )
    searches = run.search.get("approximate") or []
    if searches:
        out.print(
            f"approximate k-NN search in {len(searches)} searches: worst recall of the true neighbours "
            f"{min(e['recall'] for e in searches):.1%} (checked on {searches[0]['checked']} queries each); "
            "--search exact for exact numbers",
            soft_wrap=True,
            highlight=False,
        )
    if run.manifold is not None:
        for line in manifold_lines(run.manifold.to_dict()):
            out.print(line, soft_wrap=True, highlight=False)
    if per_class:
        out.print("coverage gain per class (held-out points): the coverage-gap map", highlight=False)

        def cell(value) -> str:  # a class without held-out images has none
            return "-" if value is None or not math.isfinite(value) else f"{value:+.3f}"

        # as many recipes per table as fit the console: names and values whole, never cut to an ellipsis
        class_width = max(len("class"), *(len(c) for c in run.classes))
        column = max(6, *(len(r.recipe) for r in run.results)) + 3
        for part in _groups(run.results, (out.width - class_width - 4) // column):
            gap = Table()
            gap.add_column("class", no_wrap=True)
            for result in part:
                gap.add_column(result.recipe, justify="right", no_wrap=True)
            for c, name in enumerate(run.classes):
                gap.add_row(name, *(cell(r.metrics["coverage_gain"].per_class[c]) for r in part))
            out.print(gap)
    if json_out:
        write_text_atomic(Path(json_out), run.to_json() + "\n")
        out.print(f"wrote {json_out}")


def _groups(items, most: int) -> list:
    """``items`` (a sequence) in as few consecutive groups of at most ``most`` (at least 1) as possible, as even as
    possible: the columns of a table split over as many tables as fit the console."""
    tables = -(-len(items) // max(1, most))
    size = max(1, -(-len(items) // max(1, tables)))
    return [items[start : start + size] for start in range(0, len(items), size)]


def manifold_lines(manifold: dict) -> list[str]:
    """The manifold diagnostics in a few console lines (the report's section, condensed)."""
    dims, curve = manifold["intrinsic_dimension"], manifold["curve"]

    def dim(space: str) -> str:
        d = (dims.get(space) or {}).get("twonn", {}).get("overall")
        return (
            "-" if not d or d.get("value") is None else f"{d['value']:.1f} [{d['low']:.1f}, {d['high']:.1f}]"
        )

    lines = [
        f"manifold: intrinsic dimension (TwoNN) {dim('embeddings')} in the embeddings, {dim('pixels')} in the "
        f"pixels' {manifold['pixel_components']} principal components; held-out coverage "
        f"{curve['coverage'][-1]:.1%} with all {curve['sizes'][-1]} training images, {curve['coverage'][0]:.1%} "
        f"with {curve['sizes'][0]}"
    ]
    for need in curve["class_needs"]:
        if need["coverage"] is None or need["coverage"] >= curve["target"] or need["multiple"] is None:
            continue
        more = f"more than {need['multiple']:g}x" if need["beyond"] else f"~{need['multiple']:.1f}x"
        fix = f"; or {need['recipe']} ({need['recipe_coverage']:.0%})" if need.get("recipe") else ""
        lines.append(
            f"  sparse class {need['class']}: {need['coverage']:.1%} covered; {more} its images for "
            f"{curve['target']:.0%}{fix}"
        )
    worth = [
        f"{name} {'>=' if m['beyond'] and m['coverage'] >= 100 else ''}{m['coverage']:.2f}x"
        for name, m in manifold["multipliers"].items()
        if m["coverage"] is not None and name != "none"
    ]
    if worth:
        lines.append("  coverage-equivalent real data: " + ", ".join(worth))
    return lines


def _jobs_option(func):
    return click.option(
        "--jobs",
        type=click.IntRange(min=1),
        default=None,
        help="Training runs at once, in processes with one torch thread each (the same results with any "
        "number) [default: every core on a CPU; DENSIFY_TRAIN_JOBS].",
    )(func)


@cli.command("train")
@_data_option
@_recipes_option
@click.option(
    "--seeds", type=click.IntRange(min=1), default=3, show_default=True, help="Seeds per recipe (0..N-1)."
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=2000, show_default=True, help="Optimiser steps per run."
)
@click.option("--batch", type=click.IntRange(min=1), default=128, show_default=True, help="Images per step.")
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True, help="Peak LR."
)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True)
@click.option(
    "--model", default="small-cnn", show_default=True, help="small-cnn | resnet18-small | torchvision:NAME"
)
@click.option(
    "--workers", type=click.IntRange(min=0), default=0, show_default=True, help="DataLoader workers."
)
@_strength_option
@click.option("--train-size", type=click.IntRange(min=1), help="Stratified subset of the training split.")
@click.option("--heldout-size", type=click.IntRange(min=1), help="Stratified subset of the held-out split.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="densify-train",
    show_default=True,
    help="Folder for runs, checkpoints and train.json; finished runs in it are reused.",
)
@click.option(
    "--scaling",
    metavar="N,N,...",
    callback=lambda ctx, param, v: _parse_sizes(v),
    help="Also train on these training-set sizes and report each recipe's effective data multiplier.",
)
@_jobs_option
@image_options
def train_command(
    spec,
    recipes,
    seeds,
    steps,
    batch,
    lr,
    weight_decay,
    label_smoothing,
    model,
    workers,
    strength,
    train_size,
    heldout_size,
    out,
    scaling,
    jobs,
    resize,
    channels,
    image_size,
) -> None:
    """Train a model with each recipe for an equal number of steps, over several seeds; report held-out accuracy
    (mean and 95% t-interval) and each recipe's gain over 'none', paired by seed."""
    from rich.console import Console
    from rich.table import Table

    from densify.data import load_data
    from densify.recipes import expand_recipe_refs
    from densify.train import TrainConfig, train_recipes, write_scaling_report, write_train_report

    data = load_data(
        spec,
        train_size=train_size,
        heldout_size=heldout_size,
        seed=0,
        **_image_kwargs(resize, channels, image_size),
    )
    config = TrainConfig(
        steps=steps,
        batch=batch,
        lr=lr,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        model=model,
        workers=workers,
    )
    console = Console(stderr=True)
    names = expand_recipe_refs(recipes)
    with progress_display(console) as shown:
        summaries = train_recipes(
            data,
            names,
            range(seeds),
            config,
            strength=strength,
            out=out,
            progress=run_progress(shown.update, (len(names) + ("none" not in names)) * seeds),
            jobs=jobs,
        )
    from densify._dist import is_main

    if not is_main():  # under torchrun, rank 0 reports
        return
    out_console = Console()
    # the heading on its own line: as the table's title it wrapped at the table's width, mid-word
    out_console.print(
        f"{data.name}: {len(data.train)} train, {len(data.heldout)} held-out; {model}, {steps} steps "
        f"x {batch}; {seeds} seed{'s' if seeds != 1 else ''}",
        soft_wrap=True,
        highlight=False,
    )
    table = Table()
    for column in ("recipe", "held-out accuracy % [95% CI]", "gain (points) [95% CI]", "loss ratio", "s/run"):
        table.add_column(column, justify="left" if column == "recipe" else "right")

    def interval(t, signed=False):  # accuracy in %, gains in points, as everywhere else
        if t is None:
            return "-"
        fmt = "+.2f" if signed else ".2f"
        if not all(map(math.isfinite, t)):  # one seed: no interval
            return f"{100 * t[0]:{fmt}} (1 seed)"
        return f"{100 * t[0]:{fmt}} [{100 * t[1]:{fmt}}, {100 * t[2]:{fmt}}]"

    for s in summaries:
        table.add_row(
            s.recipe,
            interval(s.accuracy),
            interval(s.gain, True),
            "-" if s.loss_ratio is None else f"{s.loss_ratio:.2f}",
            f"{sum(r.seconds for r in s.runs) / len(s.runs):.0f}",
        )
    out_console.print(table)
    # gains are paired against none: say why the column is empty
    if all(s.recipe != "none" for s in summaries):
        others = ",".join(s.recipe for s in summaries)
        out_console.print(
            f"No gains: 'none' was not trained, and gains are paired against it (add it: --recipes none,{others}).",
            soft_wrap=True,
            highlight=False,
        )
    path = write_train_report(out, data, config, range(seeds), strength, summaries)
    if scaling:
        from densify.train import scaling_study

        with progress_display(console) as shown:
            study = scaling_study(
                data,
                expand_recipe_refs(recipes),
                scaling,
                range(seeds),
                config,
                strength=strength,
                out=Path(out) / "scaling",
                progress=run_progress(
                    shown.update, (len(names) + ("none" not in names)) * seeds * len(scaling)
                ),
                jobs=jobs,
            )
        _print_scaling(study)
        scaling_path = write_scaling_report(out, study)
        Console().print(f"wrote {scaling_path}")
    Console().print(f"wrote {path}")


def _parse_train_size(value: str) -> int | None:
    if str(value).lower() == "all":
        return None
    try:
        size = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number of images or 'all'") from None
    if size < 2:
        raise click.BadParameter(f"{value!r}: need at least 2 images")
    return size


@cli.command("evaluate")
@_data_option
@click.option(
    "--recipes",
    "--recipe",
    "recipes",
    multiple=True,
    callback=_split_recipes,
    metavar="NAME,...",
    help="Recipes to audit: names, files or folders, comma-separated or repeated; 'all' for every known recipe "
    "[default: none,flip,vflip,crop-pad,affine-light,affine-heavy,cutout]. 'none' is always added as the baseline.",
)
@_coverage_options
@click.option("--train/--no-train", default=True, show_default=True, help="Confirm with trained models.")
@click.option(
    "--proxy",
    is_flag=True,
    help="The cheap confirmation instead of full training: one model trained on clean data, each recipe fine-tuned "
    "from it for a sixth of --steps per seed (about 1/5 of the cost), ranked together with the training-free "
    "predictor.",
)
@click.option(
    "--seeds", type=click.IntRange(min=2), default=3, show_default=True, help="Training seeds per recipe."
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=600, show_default=True, help="Optimiser steps per run."
)
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True, help="Images per step.")
@click.option(
    "--model", default="small-cnn", show_default=True, help="small-cnn | resnet18-small | torchvision:NAME"
)
@click.option(
    "--train-size",
    default="2000",
    show_default=True,
    callback=lambda ctx, param, v: _parse_train_size(v),
    metavar="N|all",
    help="Audit a stratified subset of at most N training images (bounded cost, the low-data regime where "
    "augmentation matters); 'all' for the whole training split.",
)
@click.option("--heldout-size", type=click.IntRange(min=1), help="Stratified subset of the held-out split.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of subsets, encoder, views, bootstrap."
)
@_strength_option
@click.option(
    "--projection", metavar="RECIPE", help="Recipe shown in the 2-D projection [default: the recommended]."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="densify-report",
    show_default=True,
    help="Folder of the report bundle.",
)
@click.option(
    "--resume", is_flag=True, help="Reuse every finished step cached in --out (after an interruption)."
)
@click.option("--force", is_flag=True, help="Replace a report of a different run in --out.")
@click.option(
    "--n-boot", type=click.IntRange(min=100), default=1000, show_default=True,
    help="Bootstrap resamples behind every coverage interval.",
)  # fmt: skip
@_jobs_option
@image_options
def evaluate(spec, recipes, encoder, weights, views, k, search, workers, train, proxy, seeds, steps, batch, model, train_size,
             heldout_size, seed, strength, projection, out, resume, force, n_boot, jobs, resize, channels,
             image_size) -> None:  # fmt: skip
    """Audit recipes: coverage of held-out data (training-free), trained confirmation over seeds, a verdict,
    and a report bundle (report.json, metrics.csv, plots/, report.html) in --out."""
    from rich.console import Console

    from densify.audit import DEFAULT_RECIPES, AuditSettings, run_audit

    settings = AuditSettings(
        data=spec,
        recipes=recipes or DEFAULT_RECIPES,
        encoder=encoder,
        weights=weights,
        views=views,
        k=k,
        seed=seed,
        strength=strength,
        train=train and not proxy,
        proxy=proxy,
        seeds=seeds,
        steps=steps,
        batch=batch,
        model=model,
        train_size=train_size,
        heldout_size=heldout_size,
        projection=projection,
        n_boot=n_boot,
        search=search,
        **_image_kwargs(resize, channels, image_size),
    )
    console = Console(stderr=True)
    with progress_display(console) as shown:
        progress = shown.update
        report = run_audit(
            settings, out, resume=resume, force=force, progress=progress, workers=workers, jobs=jobs
        )
    if report is None:  # a rank other than 0 under torchrun: rank 0 reports
        return
    _print_report(report)
    Console().print(
        f"report: {Path(out) / 'report.html'}  (all numbers: {Path(out) / 'report.json'})", soft_wrap=True
    )


def _print_report(report: dict, console=None) -> None:
    """The audit's table and verdict on the terminal: fits 80 columns without cutting recipe names (headers are
    abbreviated and explained below the table; a gain's interval goes under it)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from densify._catalogue import TERMINAL as shown
    from densify.audit._verdict import LABELS, agreement_sentence, display_order, ranking_label

    console = console or Console()
    v = report["verdict"]
    training = (report.get("training") or {}).get("recipes") or {}
    proxied = {} if training else (report.get("proxy") or {}).get("recipes") or {}
    # the heading is its own line: as the table's title it wrapped at the table's width (a long data spec broke it)
    heading = f"{report['data']['name']}: encoder {report['encoder']['name']}"
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0))
    width = max(len(r) for r in report["coverage"])
    table.add_column("recipe", no_wrap=True, min_width=width)
    if training:
        table.add_column("gain\n[95% CI]", justify="right", no_wrap=True)
    if proxied:
        table.add_column("proxy\ngain", justify="right", no_wrap=True)
    for _, label in shown:
        table.add_column(_ABBREV.get(label, label), justify="right", no_wrap=True, min_width=6)
    short = {
        "leaves_manifold": "off-manifold",
        "changes_labels": "changes labels",
        "adds_nothing": "adds nothing",
    }
    for name in display_order(v, report["coverage"]):  # none, then best to worst by the verdict's ranking
        rec = report["coverage"][name]
        row = [name]
        if training:
            g = (training.get(name) or {}).get("gain_over_none")
            if not g or name == "none":
                row.append("-")
            else:
                lo = "-inf" if g["low"] is None else f"{100 * g['low']:+.1f}"
                hi = "+inf" if g["high"] is None else f"{100 * g['high']:+.1f}"
                row.append(f"{100 * g['mean']:+.2f}\n[{lo},{hi}]")
        if proxied:
            g = (proxied.get(name) or {}).get("gain_over_none")
            row.append("-" if not g or name == "none" else f"{100 * g['mean']:+.2f}")
        for metric, _ in shown:
            m = rec["metrics"].get(metric) or {}
            row.append("-" if m.get("value") is None else f"{m['value']:.3f}")
        table.add_row(*row)
    for warning in v.get("warnings", []):
        console.print(f"[bold]! {warning}[/bold]", soft_wrap=True, highlight=False)
    cells = [[c.header for c in table.columns], *zip(*(c._cells for c in table.columns), strict=True)]
    widths = [
        max(len(line) for row in cells for line in str(row[i]).split("\n")) for i in range(len(table.columns))
    ]
    needed = sum(widths) + (len(widths) - 1) + 4
    width = console.width
    if needed > width:  # wider than the terminal: overflow rather than cut a name or a number
        console.width = needed
    console.print(heading, soft_wrap=True, highlight=False, markup=False)
    console.print(table)
    console.width = width
    flagged = [  # in the table's order
        f"{r} ({', '.join(short.get(f, f) for f in fl)})"
        for r in display_order(v, report["coverage"])
        if (fl := v["flags"].get(r)) and r != "none"
    ]
    if flagged:
        console.print("Flags: " + "; ".join(flagged) + ".", soft_wrap=True, highlight=False)
    legend = ["gain: held-out accuracy points over none"] if training else []
    legend += (
        ["proxy gain: fine-tuned held-out accuracy points over none, mean over seeds"] if proxied else []
    )
    legend += [
        f"{_ABBREV.get(label, label)}: {LABELS[m]}"
        for m, label in shown
        if _ABBREV.get(label, label) != LABELS[m]
    ]
    if v.get("ranked_by"):  # why the rows are in this order
        legend.append(f"rows: none, then best to worst by {ranking_label(v)}")
    console.print("(" + "; ".join(legend) + ")", soft_wrap=True, highlight=False)
    for sentence in v["summary"]:
        console.print(f"- {sentence}", soft_wrap=True, highlight=False)
    sentence = agreement_sentence(v["agreement"], v["default_predictor"])
    if sentence:
        console.print(f"- {sentence}", soft_wrap=True, highlight=False)
    elif not v["trained"]:
        how = "without full training" if report.get("proxy") else "without training"
        console.print(f"- Ranked by {ranking_label(v)} {how}.", soft_wrap=True, highlight=False)


#: narrower terminal headers (explained in a legend line under the table)
_ABBREV = {
    "densif.": "dens.",
    "kNN acc. gain": "kNN",
    "fidelity": "fid.",
    "label cons.": "cons.",
    "diversity": "div.",
    "label cov. gain": "l.cov",
    "cov. gain": "cov.",
    "probe gain": "probe",
    "probe margin": "margin",
    "margin gain": "c.marg",
}


@cli.command("compare")
@click.argument("folders", nargs=-1, required=True, type=click.Path())
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    default="densify-compare",
    show_default=True,
    help="Folder for compare.html, compare.json, compare.csv and plots.",
)
def compare(folders, out) -> None:
    """Report bundles side by side: each recipe's coverage per run and the differences from the first run."""
    from rich.console import Console
    from rich.table import Table

    from densify.audit import write_comparison
    from densify.audit._verdict import LABELS

    comparison = write_comparison(folders, out)
    table = Table(title="differences from run 1", title_justify="left")
    table.add_column("recipe")
    table.add_column("metric")
    for i in range(len(comparison["runs"])):
        table.add_column(f"run {i + 1}", justify="right")
    for recipe, by_metric in comparison["recipes"].items():
        for metric in ("densification", "fidelity", "measured_gain", "proxy_gain"):
            if metric not in by_metric:  # proxy_gain: only when a compared audit ran the proxy
                continue
            d = by_metric[metric]
            # accuracy gains in points, as everywhere else; coverage metrics as they are
            points = metric in ("measured_gain", "proxy_gain")
            scale, digits = (100, 2) if points else (1, 3)
            label = {"measured_gain": "gain (points)", "proxy_gain": "proxy gain (points)"}.get(
                metric
            ) or LABELS[metric]
            cells = []
            for i, value in enumerate(d["values"]):
                diff = d["differences"][i]
                cells.append(
                    "-"
                    if value is None
                    else f"{scale * value:{'+' if points else ''}.{digits}f}"
                    + (f" ({scale * diff:+.{digits}f})" if i and diff is not None else "")
                )
            table.add_row(recipe, label, *cells)
    console = Console()
    for i, run in enumerate(comparison["runs"]):
        console.print(f"run {i + 1}: {run['label']}", soft_wrap=True)
    for note in comparison["notes"]:
        console.print(f"[bold]! {note}[/bold]", soft_wrap=True, highlight=False)
    console.print(table)
    console.print(f"wrote {Path(out) / 'compare.html'}")


def _parse_sizes(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        sizes = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of sizes, e.g. 500,1000,2000"
        ) from None
    if len(sizes) < 2 or sizes[0] < 1:
        raise click.BadParameter(f"{value!r}: give at least two positive sizes")
    return sizes


def _print_scaling(study: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="data scaling: held-out accuracy and effective data multiplier", title_justify="left")
    table.add_column("recipe")
    for n in study["sizes"]:
        table.add_column(f"N={n}", justify="right")
    table.add_row("none", *(f"{study['accuracy']['none'][n][0]:.4f}" for n in study["sizes"]))
    for recipe, multipliers in study["multiplier"].items():
        cells = []
        for n, m in zip(study["sizes"], multipliers, strict=True):
            hi = "inf" if not math.isfinite(m.high) else f"{m.high:.2f}"
            cells.append(f"{study['accuracy'][recipe][n][0]:.4f} x{m.bound}{m.value:.2f} [{m.low:.2f}, {hi}]")
        table.add_row(recipe, *cells)
    Console().print(table)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="densify"))
