"""``report.html``: one self-contained page (images embedded as data URIs, no network) from a report's numbers.

Every number shown carries ``data-path``, the path of its value in ``report.json`` (``/``-separated), so a test
can check the page against the JSON. A small inline script records on ``<body>`` how many images loaded
(``data-images-loaded`` of ``data-images``), any script error (``data-errors``), and the page's, the window's and
the tables' widths (``data-page-width``, ``data-view-width``, ``data-tables-right``: nothing may need sideways
scrolling).
"""

from __future__ import annotations

import base64
import html
import math
import shlex
from typing import Any

from densify._catalogue import BY_NAME, LABELS, PREDICTORS, TABLE
from densify.audit._stats import MIN_INTERVAL_RECIPES, critical_rho
from densify.audit._verdict import agreement_sentence, display_order, ranking_label

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:24px;
color:#1b1b1b;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px}.verdict{background:#f3f7fb;border-left:4px solid #0072B2;padding:10px 16px}
.verdict li{margin:4px 0}.warning{background:#fff4e5;border-left:4px solid #D55E00;padding:8px 16px;margin:0 0 12px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 6px;text-align:right;white-space:nowrap}
th{white-space:normal;vertical-align:bottom;max-width:110px}
th{background:#fafafa;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
.ci{color:#777;font-size:11px}.good{color:#00734d;font-weight:600}.bad{color:#b34700;font-weight:600}
.flag{display:inline-block;background:#fbe9e0;color:#8a3500;border-radius:3px;padding:0 5px;margin:1px;font-size:11px}
figure{margin:16px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
.grid figure{margin:0}code,pre{background:#f6f6f6;border-radius:3px;padding:1px 4px;font-size:12px}
pre{padding:8px;overflow-x:auto}details{margin:8px 0}.scroll{overflow-x:auto;max-width:100%}
td.flags{text-align:left;white-space:normal;min-width:120px}
th.rot{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;max-width:none;white-space:nowrap;
padding:6px 4px}#rankings td{text-align:center;min-width:28px}
#rankings td:first-child{text-align:left}pre.cmd{white-space:pre-wrap;overflow-wrap:anywhere}
"""

SCRIPT = """
window.addEventListener('error', function (e) {
  var b = document.body; b.dataset.errors = (b.dataset.errors || '') + (e.message || 'error') + ';';
}, true);
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.dataset.images = imgs.length; document.body.dataset.imagesLoaded = ok;
  var right = 0, tables = document.getElementsByTagName('table');
  for (var j = 0; j < tables.length; j++) { right = Math.max(right, tables[j].getBoundingClientRect().right); }
  document.body.dataset.pageWidth = document.documentElement.scrollWidth;
  document.body.dataset.viewWidth = window.innerWidth; document.body.dataset.tablesRight = Math.ceil(right);
});
"""

CAPTIONS = {
    "coverage-gain": "Coverage gain per recipe, with 95% bootstrap intervals over held-out points. Densification: "
    "how much closer (in log distance) each held-out image's nearest training sample gets once the recipe's "
    "views are added; coverage gain: the share of held-out images newly inside a training sample's neighbourhood; "
    "k-NN accuracy gain: the change in held-out k-NN accuracy. Green: recommended; vermillion: avoid.",
    "measured-gain": "What training measured: each recipe's held-out accuracy gain over none (mean over seeds, 95% "
    "t-interval of the paired differences), best first. A recipe far below the others is drawn at the edge with its "
    "value, so the helpful ones stay apart.",
    "fidelity-plane": "Each recipe's place: densification (further right = held-out images get closer training "
    "samples) against fidelity (the share of its views inside the clean manifold). The dashed line is the fidelity "
    "of real held-out images; a recipe is flagged off-manifold only when its whole interval lies below it. The flag "
    "is evidence, not proof: with training, the measured gain decides the verdict. Numbers are recipes (key on the "
    "right); marker size grows with label consistency.",
    "class-accuracy": "Which classes each recipe helps or hurts: held-out accuracy gain over none per class "
    "(points, mean over paired seeds).",
    "loss-curves": "Training loss per recipe (mean over seeds, log scale): augmentation makes the training task "
    "harder, so its loss stays higher than none's; a recipe far above the rest may be destroying information.",
    "predictors-vs-gain": "Each training-free predictor (x) against the measured held-out accuracy gain over 'none' "
    "(y, mean over seeds with its 95% interval), with Spearman's rank correlation and its permutation p-value. "
    "Numbers are recipes (key on the right).",
    "class-gaps": "Per class: how much of the held-out data the clean training set leaves uncovered (left), and how "
    "much each recipe densifies each class (right).",
    "manifold": "Left: held-out coverage of nested, class-stratified subsets of the clean training set (points) and "
    "the power law fitted to the uncovered share over the three largest subsets (line); each recipe sits at the "
    "training size whose clean coverage equals the coverage its views reach (its coverage-equivalent data "
    "multiplier). Right: per class, how many times its current images the fitted curve says would reach the "
    "target coverage (dotted line, left).",
    "projection": "A 2-D PCA projection of clean training, augmented and held-out embeddings (random samples).",
}


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(value, path: str, fmt: str = ".3f", scale: float = 1.0, cls: str = "") -> str:
    if value is None:
        return "<span>-</span>"
    c = f' class="{cls}"' if cls else ""
    return f'<span data-path="{_e(path)}" data-scale="{scale:g}"{c}>{scale * value:{fmt}}</span>'


def _metric_cell(report, recipe: str, metric: str, fmt: str = ".3f", signed: bool = False) -> str:
    m = report["coverage"][recipe]["metrics"].get(metric)
    if not m or m.get("value") is None:
        return "<td>-</td>"
    f = ("+" if signed else "") + fmt
    base = f"coverage/{recipe}/metrics/{metric}"
    ci = ""
    if m.get("low") is not None and m.get("high") is not None:
        ci = f'<br><span class="ci">[{_num(m["low"], base + "/low", f)}, {_num(m["high"], base + "/high", f)}]</span>'
    return f"<td>{_num(m['value'], base + '/value', f)}{ci}</td>"


def _trained_cells(report, recipe: str) -> str:
    t = ((report.get("training") or {}).get("recipes") or {}).get(recipe)
    if not report.get("training"):
        return ""
    if not t:
        return "<td>-</td><td>-</td>"
    acc = t["accuracy"]
    base = f"training/recipes/{recipe}"
    acc_cell = (
        f"<td>{_num(acc['mean'], base + '/accuracy/mean', '.2f', 100)}%"
        f'<br><span class="ci">[{_num(acc["low"], base + "/accuracy/low", ".2f", 100)}, '
        f"{_num(acc['high'], base + '/accuracy/high', '.2f', 100)}]</span></td>"
    )
    g = t.get("gain_over_none")
    if not g or recipe == "none":
        return acc_cell + "<td>-</td>"
    cls = "good" if (g["low"] or 0) > 0 else "bad" if (g["high"] or 0) < 0 else ""
    gain_cell = (
        f"<td>{_num(g['mean'], base + '/gain_over_none/mean', '+.2f', 100, cls)}"
        f'<br><span class="ci">[{_num(g["low"], base + "/gain_over_none/low", "+.2f", 100)}, '
        f"{_num(g['high'], base + '/gain_over_none/high', '+.2f', 100)}]</span></td>"
    )
    return acc_cell + gain_cell


def reproduce_command(settings: dict[str, Any], out: str | None = None) -> str:
    """The ``densify evaluate`` command line that recomputes a report from its settings (``report.json``)."""
    args = ["densify", "evaluate", "--data", settings["data"], "--recipes", ",".join(settings["recipes"])]
    for key in ("encoder", "views", "k", "seed", "strength", "seeds", "steps", "batch", "model"):
        args += ["-k" if key == "k" else f"--{key.replace('_', '-')}", str(settings[key])]
    args += ["--train-size", "all" if settings.get("train_size") is None else str(settings["train_size"])]
    if settings.get("n_boot", 1000) != 1000:
        args += ["--n-boot", str(settings["n_boot"])]
    if settings.get("search", "auto") != "auto":
        args += ["--search", settings["search"]]
    for key in ("heldout_size", "weights", "projection"):
        if settings.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", str(settings[key])]
    if settings.get("resize") is not None:
        args += ["--resize", "x".join(str(v) for v in settings["resize"])]
    if settings.get("channels") is not None:
        args += ["--channels", str(settings["channels"])]
    size = settings.get("image_size", "auto")
    if size != "auto":
        args += [
            "--image-size",
            "stored"
            if size is None
            else "x".join(map(str, size))
            if isinstance(size, list | tuple)
            else str(size),
        ]
    if not settings["train"]:
        args.append("--no-train")
    if out is not None:
        args += ["--out", out]
    return " ".join(shlex.quote(a) for a in args)


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}" data-plot="{_e(name)}">'


def render_html(report: dict[str, Any], pngs: dict[str, bytes]) -> str:
    """The page; ``pngs`` maps bundle paths (``plots/NAME.png``) to PNG bytes."""
    parts = [
        *_header(report),
        *_verdict_section(report),
        *_recipes_section(report),
        *_agreement_section(report),
        *_rankings_section(report),
        *_manifold_section(report),
        *_quality_section(report, pngs),
        *_figures_section(report, pngs),
        *_reproduce_section(report),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _trained(report: dict[str, Any]) -> bool:
    return bool(report.get("training"))


def _proxied(report: dict[str, Any]) -> bool:
    """Confirmed by the fine-tune proxy instead of full training."""
    return bool(report.get("proxy")) and not _trained(report)


def _proxy_cell(report, recipe: str) -> str:
    if not _proxied(report):
        return ""
    g = (report["proxy"]["recipes"].get(recipe) or {}).get("gain_over_none")
    if not g or recipe == "none":
        return "<td>-</td>"
    return f"<td>{_num(g['mean'], f'proxy/recipes/{recipe}/gain_over_none/mean', '+.2f', 100)}</td>"


def _header(report: dict[str, Any]) -> list[str]:
    data, settings = report["data"], report["settings"]
    trained = _trained(report)
    return [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>densify report: {_e(data['name'])}</title><style>{CSS}</style>",
        f"<script>{SCRIPT}</script></head><body>",
        f"<h1>Which augmentations help <code>{_e(data['name'])}</code>?</h1>",
        f'<p class="meta">{data["train"]["n"]} training and {data["heldout"]["n"]} held-out images, '
        f"{len(data['classes'])} classes, {'x'.join(map(str, data['shape']))}; encoder "
        f"<code>{_e(report['encoder']['name'])}</code>, k = {settings['k']}, {settings['views']} views per image"
        + (
            f"; trained {settings['model']} for {settings['steps']} steps x {settings['batch']}, "
            f"{settings['seeds']} seeds"
            if trained
            else (
                f"; fine-tune proxy: {settings['model']} trained {report['proxy']['base_steps']} steps on clean "
                f"images, fine-tuned {report['proxy']['finetune_steps']} steps per recipe and seed, "
                f"{len(report['proxy']['seeds'])} seeds"
            )
            if _proxied(report)
            else "; not trained (training-free verdict)"
        )
        + f". densify {_e(report['densify_version'])}, run <code>{_e(report['run_id'])}</code>.</p>",
        *(f'<p class="meta">{_e(note)}</p>' for note in data.get("notes", [])),
        *_search_note(report),
    ]


def _search_note(report: dict) -> list[str]:
    """What approximate nearest-neighbour search cost in accuracy, when it was used (the worst search shown)."""
    searches = (report.get("search") or {}).get("approximate") or []
    if not searches:
        return []
    worst = min(range(len(searches)), key=lambda i: searches[i]["recall"])
    longest = max(range(len(searches)), key=lambda i: searches[i]["kth_distance_excess"])
    return [
        f'<p class="meta">Nearest neighbours were searched approximately (an inverted-file index) in '
        f"{len(searches)} searches among many points; checked against exact search on "
        f"{searches[worst]['checked']} queries each, the worst search found "
        f"{_num(searches[worst]['recall'], f'search/approximate/{worst}/recall', '.1f', 100)}% of the true neighbours "
        f"and the k-th distances were on average at most "
        f"{_num(searches[longest]['kth_distance_excess'], f'search/approximate/{longest}/kth_distance_excess', '.2f', 100)}"
        f"% too long.{_scan_note(searches)} Use --search exact for exact numbers.</p>"
    ]


def _scan_note(searches: list[dict]) -> str:
    """How many base points a query scanned at most (each search scans the fewest that reach its recall target)."""
    scans = [i for i, e in enumerate(searches) if e.get("scanned") is not None]
    if not scans:  # a report from before the scan was chosen per search
        return ""
    from densify.coverage._knn import RECALL_TARGET

    widest = max(scans, key=lambda i: searches[i]["scanned"])
    return (
        f" Each search scanned the fewest points per query that found {100 * RECALL_TARGET:g}% of its checked "
        f"queries' neighbours (or the most it may): at most "
        f"{_num(searches[widest]['scanned'], f'search/approximate/{widest}/scanned', '.0f')} points."
    )


def _verdict_section(report: dict[str, Any]) -> list[str]:
    v = report["verdict"]
    parts = ["<h2>Verdict</h2>"]
    if v.get("warnings"):
        parts.append('<div class="warning" id=warnings><b>Read this first</b><ul>')
        parts += [f"<li>{_e(w)}</li>" for w in v["warnings"]]
        parts.append("</ul></div>")
    parts.append('<div class="verdict"><ul>')
    parts += [f"<li>{_e(sentence)}</li>" for sentence in v["summary"]]
    sentence = agreement_sentence(v["agreement"], v["default_predictor"])
    if sentence:
        parts.append(f"<li>{_e(sentence)}</li>")
    if not _trained(report):
        from densify.audit._verdict import PROXY_RANKING, ranking_label

        kind = (
            "the cheap confirmation"
            if v.get("ranked_by") == PROXY_RANKING
            else "the default training-free predictor"
            if v.get("ranked_by") in (None, v["default_predictor"])
            else "the fallback"
        )
        parts.append(f"<li>Ranked by {_e(ranking_label(v))} ({kind}); run with training to confirm.</li>")
    parts.append("</ul></div>")
    return parts


def _recipes_section(report: dict[str, Any]) -> list[str]:
    v, trained = report["verdict"], _trained(report)
    parts = ["<h2>Recipes</h2><div class=scroll><table id=recipes><tr><th>recipe</th>"]
    if trained:
        parts.append("<th>held-out accuracy<br>[95% CI]</th><th>gain over none<br>(points) [95% CI]</th>")
    if _proxied(report):
        parts.append("<th>fine-tune proxy gain<br>(points, mean over seeds)</th>")
    cols = tuple((m, ".3f" if BY_NAME[m].signed else ".2f", BY_NAME[m].signed) for m in TABLE)
    dp = v["default_predictor"]
    parts.append(f"<th>{_e(LABELS[dp])} (default predictor)</th>")
    parts += [f"<th>{_e(LABELS[c])}</th>" for c, _, _ in cols] + ["<th>flags</th></tr>"]
    for r in display_order(v, report["coverage"]):
        flags = "".join(
            f'<span class=flag title="{_e(reason)}">{_e(flag.replace("_", " "))}</span>'
            for flag, reason in v["flags"][r].items()
        )
        row = f"<tr data-recipe={_e(r)}><td><b>{_e(r)}</b></td>{_trained_cells(report, r)}{_proxy_cell(report, r)}"
        row += (
            f"<td>{_num(v['predictor_values'][dp].get(r), f'verdict/predictor_values/{dp}/{r}', '.4f')}</td>"
        )
        row += "".join(_metric_cell(report, r, c, f, s) for c, f, s in cols)
        parts.append(row + f"<td class=flags>{flags}</td></tr>")
    ref = report.get("reference") or {}
    parts.append(
        "<tr><td><i>held-out images (reference)</i></td>"
        + ("<td></td><td></td>" if trained else "")
        + ("<td></td>" if _proxied(report) else "")
        + "<td></td>"
    )
    cells = []
    for c, _, _ in cols:  # the held-out images' own fidelity and label consistency, under those columns
        m = ref.get(c) or {}
        cells.append(
            f"<td>{_num(m.get('value'), f'reference/{c}/value', '.2f')}</td>" if c in ref else "<td></td>"
        )
    parts.append("".join(cells) + "<td></td></tr></table></div>")
    if v.get("ranked_by"):
        parts.append(f'<p class="meta">Rows: none, then best to worst by {_e(ranking_label(v))}.</p>')
    parts.append(
        '<p class="meta">Intervals are 95%: bootstrap over held-out points (coverage metrics) or views (fidelity, '
        "label consistency, diversity); Student t over seeds, paired by seed against none (training). Flags compare "
        "a recipe's views with the held-out images: <i>leaves manifold</i> = fidelity below theirs, <i>changes "
        "labels</i> = label consistency below theirs, <i>adds nothing</i> = no held-out point measurably closer.</p>"
    )
    return parts


def _interval(ci: list, predictor: str) -> str:
    if ci[0] is None:  # too few recipes for an interval that holds what it claims
        return f"<span>needs {MIN_INTERVAL_RECIPES} recipes</span>"
    return (
        f"[{_num(ci[0], f'verdict/agreement/{predictor}/ci/0', '+.2f')}, "
        f"{_num(ci[1], f'verdict/agreement/{predictor}/ci/1', '+.2f')}]"
    )


def _agreement_section(report: dict[str, Any]) -> list[str]:
    v = report["verdict"]
    if not (_trained(report) and v["agreement"]):
        return []
    parts = [
        "<h2>Can the training-free numbers be trusted here?</h2><table id=agreement><tr><th>predictor</th>"
        "<th>Spearman rho vs measured gain</th><th>permutation p</th><th>95% bootstrap CI</th>"
        "<th>top recipe</th></tr>"
    ]
    for p in PREDICTORS:
        a = v["agreement"].get(p)
        if not a:
            continue
        ci = a["ci"]
        top = (v["ranking"].get(p) or ["-"])[0]
        star = " (default)" if p == v["default_predictor"] else ""
        parts.append(
            f"<tr><td>{_e(LABELS[p])}{star}</td><td>{_num(a['rho'], f'verdict/agreement/{p}/rho', '+.2f')}</td>"
            f"<td>{_num(a['p_value'], f'verdict/agreement/{p}/p_value', '.3f')}</td>"
            f"<td>{_interval(ci, p)}</td><td>{_e(top)}</td></tr>"
        )
    measured = (v["ranking"].get("measured_gain") or ["-"])[0]
    n = max(a["n"] for a in v["agreement"].values())
    needed = critical_rho(n)
    need = f"|rho| of at least {needed:.2f}" if math.isfinite(needed) else "more recipes"
    parts.append(
        f"</table><p class=meta>Best recipe by measured gain: <b>{_e(measured)}</b>. With few recipes rho is "
        f"coarse: with {n} recipes, p &lt; 0.05 needs {need}. Audit more recipes (or strength levels) "
        "for a sharper test.</p>"
    )
    return parts


def _rankings_section(report: dict[str, Any]) -> list[str]:
    """Each recipe's rank (1 = best) by the measured gain and by every training-free predictor: one row per recipe,
    in the order of the measured gain (or of the predictor that ranked without training)."""
    from densify.audit._verdict import PROXY_RANKING

    v = report["verdict"]
    first = [k for k in ("measured_gain", PROXY_RANKING) if k in v["ranking"]]
    order = first + [p for p in PREDICTORS if p in v["ranking"]]
    if not order:
        return []
    lead = order[0] if first else (v.get("ranked_by") or order[0])
    lead = lead if lead in v["ranking"] else order[0]
    star = {v["default_predictor"]: " (default)"}
    names = {**LABELS, PROXY_RANKING: f"fine-tune proxy and {LABELS[v['default_predictor']]}"}
    parts = [
        "<h2>Rankings</h2><p class=meta>Each recipe's rank (1 = best) by the measured gain and by every "
        f"training-free predictor; rows in the order of {_e(names[lead])}.</p><table id=rankings><tr><th>recipe</th>"
        + "".join(f"<th class=rot>{_e(names[p] + star.get(p, ''))}</th>" for p in order)
        + "</tr>"
    ]
    for r in v["ranking"][lead]:
        cells = "".join(
            f"<td>{v['ranking'][p].index(r) + 1 if r in v['ranking'][p] else '-'}</td>" for p in order
        )
        parts.append(f"<tr><td>{_e(r)}</td>{cells}</tr>")
    parts.append("</table>")
    return parts


MAX_MULTIPLIER = 100.0  # densify.manifold's cap (not imported: the page renders from report.json alone)


def _dimension_cell(d: dict | None, path: str) -> str:
    if not d or d.get("value") is None:
        return "<td>-</td>"
    return (
        f"<td>{_num(d['value'], path + '/value', '.1f')} "
        f"<small>[{_num(d['low'], path + '/low', '.1f')}, {_num(d['high'], path + '/high', '.1f')}]</small></td>"
    )


def _manifold_section(report: dict[str, Any]) -> list[str]:
    """Intrinsic dimension, how coverage grows with data, per-class needs and each recipe's data multipliers."""
    manifold = report.get("manifold")
    if not manifold:
        return []
    dims, curve = manifold["intrinsic_dimension"], manifold["curve"]
    spaces = [(s, f"{'encoder embeddings' if s == 'embeddings' else 'pixels'}") for s in dims if dims[s]]
    parts = [
        "<h2>The data manifold</h2><p class=meta>Intrinsic dimension of the clean training set (how many directions "
        "its images vary along, whatever the embedding's size), overall with a 95% bootstrap interval: TwoNN "
        "(Facco et al. 2017) and the Levina-Bickel MLE, in the encoder's embeddings and in the top "
        f"{manifold['pixel_components']} principal components of the pixels. On datasets whose true dimension is "
        "known, the pixels' TwoNN figure lands within 1 of it; trained encoders' embeddings read higher "
        "(docs/manifold-lab.md).</p><table id=dimension><tr><th>estimator"
        "</th>" + "".join(f"<th>{_e(label)}</th>" for _, label in spaces) + "</tr>"
    ]
    for method, label in (("twonn", "TwoNN"), ("mle", "MLE (k = 10-20)")):
        cells = "".join(
            _dimension_cell(dims[s][method]["overall"], f"manifold/intrinsic_dimension/{s}/{method}/overall")
            for s, _ in spaces
        )
        parts.append(f"<tr><td>{label}</td>{cells}</tr>")
    parts.append("</table>")
    sizes, cov = curve["sizes"], curve["coverage"]
    fit = curve["fit"]
    growth = ""
    if fit.get("b") is not None:
        growth = (
            f"; the uncovered share falls as n<sup>&minus;{_num(fit['b'], 'manifold/curve/fit/b', '.2f')}</sup> "
            "near the full size"
        )
    parts.append(
        f"<p>Held-out coverage with all {sizes[-1]} training images: "
        f"{_num(cov[-1], f'manifold/curve/coverage/{len(cov) - 1}', '.1f', 100)}%; with "
        f"{sizes[0]}: {_num(cov[0], 'manifold/curve/coverage/0', '.1f', 100)}%{growth}.</p>"
    )
    sparse = [
        n for n in curve["class_needs"] if n["coverage"] is not None and n["coverage"] < curve["target"]
    ]
    if sparse:
        parts.append("<ul id=class-needs>")
        for i, n in enumerate(curve["class_needs"]):
            if n not in sparse:
                continue
            path = f"manifold/curve/class_needs/{i}"
            more = (
                "the fit cannot say how many more images"
                if n["multiple"] is None
                else (
                    f"more than {_num(n['multiple'], path + '/multiple', 'g')}x its images"
                    if n["beyond"]
                    else f"about {_num(n['multiple'], path + '/multiple', '.1f')}x its images "
                    f"(~{_num(n['needed'], path + '/needed', '.0f')})"
                )
            )
            recipe = ""
            if n.get("recipe"):
                rm = n.get("recipe_multiple")
                worth = (
                    ""
                    if rm is None
                    else f", worth more than {_num(rm, path + '/recipe_multiple', 'g')}x its images"
                    if rm >= MAX_MULTIPLIER
                    else f", worth about {_num(rm, path + '/recipe_multiple', '.1f')}x its images"
                )
                recipe = (
                    f"; or <b>{_e(n['recipe'])}</b>, whose views cover "
                    f"{_num(n['recipe_coverage'], path + '/recipe_coverage', '.1f', 100)}%{worth}"
                )
            parts.append(
                f"<li>class <b>{_e(n['class'])}</b> is sparse: {_num(n['coverage'], path + '/coverage', '.1f', 100)}% of "
                f"its held-out images covered; {more} would reach {curve['target']:.0%}{recipe}.</li>"
            )
        parts.append("</ul>")
    factor = manifold.get("factor_space") or {}
    truth = (
        "<th>coverage gain in factor space (truth)</th><th>densification in factor space (truth)</th>"
        if factor
        else ""
    )
    parts.append(
        "<table id=multipliers><tr><th>recipe</th><th>coverage-equivalent data</th><th>distance-equivalent data</th>"
        f"{truth}</tr>"
    )
    for name, m in manifold["multipliers"].items():
        cells = "".join(
            "<td>-</td>"
            if m[key] is None
            else f"<td>{'&ge;' if m[key] >= MAX_MULTIPLIER else ''}"
            f"{_num(m[key], f'manifold/multipliers/{name}/{key}', '.2f')}x"
            "</td>"
            for key in ("coverage", "distance")
        )
        if factor:
            f = factor.get(name) or {}
            if "unknown" in f:
                cells += f"<td colspan=2 class=meta>not exact in factor space: {_e(f['unknown'])}</td>"
            else:
                cells += "".join(
                    f"<td>{_num(f.get(key), f'manifold/factor_space/{name}/{key}', '.3f')}</td>"
                    for key in ("coverage_gain", "densification")
                )
        parts.append(f"<tr><td>{_e(name)}</td>{cells}</tr>")
    known = (
        " This dataset's images were rendered from known factors, so each recipe's coverage of the held-out "
        "factor vectors is also measured on the true manifold (docs/manifold-lab.md): where the two rankings "
        "differ, the encoder is misreading the data."
        if factor
        else ""
    )
    parts.append(
        "</table><p class=meta>How much real data a recipe's views are worth, read off the clean curves: the training "
        "size at which clean data alone would reach the held-out coverage (or bring held-out images as close) that "
        "the recipe reaches, as a multiple of the training set. Beyond the measured sizes these extrapolate the "
        "fitted laws; the trained effective-data multiplier (<code>densify train --scaling N,N,...</code>) is the measured "
        f"counterpart.{known}</p>"
    )
    return parts


def _quality_section(report: dict[str, Any], pngs: dict[str, bytes]) -> list[str]:
    """Likely label errors, duplicates, leakage and outliers (densify.quality), when the report has them."""
    q = report.get("data_quality")
    if not q:
        return []
    from densify.quality import summary_lines

    parts = [
        "<h2 id=data-quality>Data quality</h2><p class=meta>Samples that may hurt more than any augmentation helps, "
        f"found in label-free features (<code>{_e(q['encoder'])}</code>): likely label errors by confident "
        "learning on out-of-fold probabilities, exact and near duplicates (thumbnail correlation), held-out images "
        "that also occur in train, and outliers far from their class. Every flagged sample, with its scores, is in "
        "<code>data-issues.csv</code>.</p><ul>"
    ]
    parts += [f"<li>{_e(line)}</li>" for line in summary_lines(q)]
    parts.append("</ul>")
    key = "plots/data-issues.png"
    if key in pngs:
        caption = (
            "The most severe flagged samples of each kind: likely label errors (given label, then the one the probe "
            "suggests), held-out images beside their training copy, duplicate pairs, and outliers (distance to their "
            "class's samples as a multiple of the class's typical distance)."
        )
        parts.append(
            f"<figure>{_img('data-issues', pngs[key], caption)}<figcaption>{_e(caption)}</figcaption></figure>"
        )
    return parts


def _figures_section(report: dict[str, Any], pngs: dict[str, bytes]) -> list[str]:
    parts = ["<h2>Plots</h2>"]
    for name, caption in CAPTIONS.items():
        key = f"plots/{name}.png"
        if key in pngs:
            parts.append(
                f"<figure>{_img(name, pngs[key], caption)}<figcaption>{_e(caption)}</figcaption></figure>"
            )
    parts.append(
        "<h2>Samples</h2><p class=meta>Each row: a clean training image, then six of its views "
        "(exactly the views training uses for this seed).</p><div class=grid>"
    )
    for r in report["coverage"]:
        key = f"plots/samples-{r}.png"
        if key in pngs:
            intent = report["recipes"][r]["intent"]
            parts.append(
                f"<figure>{_img('samples-' + r, pngs[key], 'views of ' + r)}<figcaption><b>{_e(r)}</b>: "
                f"{_e(intent)}</figcaption></figure>"
            )
    parts.append("</div>")
    return parts


def _reproduce_section(report: dict[str, Any]) -> list[str]:
    data = report["data"]
    return [
        "<h2>Reproduce</h2>",
        f"<pre class=cmd>{_e(reproduce_command(report['settings']))}</pre>",
        f"<p class=meta>Data <code>{_e(data['spec'])}</code> from {_e(data['source'])} (fingerprint "
        f"<code>{_e(data['fingerprint'][:16])}</code>; held-out: {_e(data['heldout_origin'])}). Versions: "
        + ", ".join(f"{_e(k)} {_e(val)}" for k, val in report["versions"].items())
        + ". Wall time: "
        + ", ".join(
            f"{_e(k)} {val:.0f} s" for k, val in report["timings"].items() if k in ("coverage", "training")
        )
        + ". Every number, setting and recipe parameter is in <code>report.json</code>; a row per recipe in "
        "<code>metrics.csv</code>.</p>",
    ]
