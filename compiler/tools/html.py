"""The report to look at: one self-contained HTML file (inline SVG drawn by matplotlib, inline
CSS, no script, nothing fetched), with the same figures as PNG beside it for READMEs and CI
artifacts. Everything comes from the output directory's records (report.json, and profile.json
when `tvc run --profile` stored one), so a report can be drawn again at any time."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

from compiler.errors import UsageError
from compiler.outdir import records_dir
from compiler.tools.report import layer_of

PROFILE_FILE = "profile.json"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1240px;
       color: #1d2329; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #5b6670; margin-top: 0; }
table { border-collapse: collapse; font-size: 12.5px; }
td, th { border-bottom: 1px solid #e3e6e8; padding: 3px 10px; text-align: right; }
th { background: #f4f6f7; } td.l, th.l { text-align: left; }
.kv td:first-child { text-align: left; color: #5b6670; }
figure { margin: 8px 0 18px; } figcaption { color: #5b6670; font-size: 12.5px; }
svg { max-width: 100%; height: auto; }
.over { color: #b3261e; font-weight: 600; }
"""


def _pyplot():  # type: ignore[no-untyped-def]
    """matplotlib with a file-only backend and fixed SVG ids, so a report is deterministic."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - a dependency of tvc; a broken install only
        raise UsageError(
            "the HTML report draws with matplotlib, which is not installed",
            "pip install matplotlib (it is one of tvc's dependencies)",
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10})
    return plt


def load_records(outdir: Path) -> tuple[dict, dict | None]:  # type: ignore[type-arg]
    """report.json (with its memory map) and the stored profile, if any."""
    rec = records_dir(outdir)
    path = rec / "report.json"
    if not path.is_file():
        raise UsageError(f"{outdir}: no report.json (not a tvc compile output directory)")
    report = json.loads(path.read_text())
    if "memory" not in report:
        raise UsageError(
            f"{outdir}: written by an older tvc, without the memory map the report draws",
            "compile the model again",
        )
    prof = rec / PROFILE_FILE
    return report, (json.loads(prof.read_text()) if prof.is_file() else None)


def _svg(fig, prefix: str) -> str:  # type: ignore[no-untyped-def]
    """The figure as inline SVG, its ids prefixed so that several figures share one page."""
    plt = _pyplot()
    plt.rcParams["svg.hashsalt"] = f"tvc-{prefix}"
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", text)
    return re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{prefix}-\1"', text)


def _colours(layers: list[str]) -> dict[str, tuple[float, float, float, float]]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab20")
    order = list(dict.fromkeys(layers))
    return {name: cmap(k % 20) for k, name in enumerate(order)}


def memory_figure(report: dict):  # type: ignore[no-untyped-def, type-arg]
    """Every planned buffer (each piece of one) as a rectangle over steps × arena offset,
    coloured by layer; the peak step, the lower bound and the patch-based stages marked."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    mem = report["memory"]
    steps, buffers = mem["steps"], mem["buffers"]
    regions = sorted({b["region"] for b in buffers})
    names = ["arena"] + list((report["ram"].get("regions") or {}).keys())
    fig, axes = plt.subplots(
        len(regions),
        1,
        figsize=(12, 4.6 + 1.6 * (len(regions) - 1)),
        squeeze=False,
        height_ratios=[3] + [1] * (len(regions) - 1),
    )
    colours = _colours([b["layer"] for b in buffers if b["kind"] != "input"])
    n = len(steps)
    for ax, region in zip(axes[:, 0], regions, strict=True):
        top = 0
        for k, b in enumerate(buffers):
            if b["region"] != region:
                continue
            colour = (0.62, 0.66, 0.70, 1.0) if b["kind"] == "input" else colours[b["layer"]]
            for p, (lo, hi, first, last) in enumerate(b["pieces"]):
                rect = Rectangle(
                    (first - 0.45, (b["offset"] + lo) / 1024),
                    last - first + 0.9,
                    (hi - lo) / 1024,
                    facecolor=colour,
                    edgecolor="#1d2329",
                    linewidth=0.3,
                    hatch="///" if b["kind"] == "scratch" else None,
                )
                rect.set_gid(f"buf-{k}-{p}")
                ax.add_patch(rect)
                top = max(top, b["offset"] + hi)
        size = mem["arena_bytes"] if region == 0 else mem["region_sizes"][region - 1]
        ax.set_xlim(-1.6, n - 0.4)
        ax.set_ylim(0, max(size, top, 1) / 1024 * (1.22 if region == 0 else 1.06))
        ax.set_ylabel(f"{names[region] if region < len(names) else region} offset (KB)")
        if region == 0:
            _stages(ax, steps)
            ax.axhline(size / 1024, color="#1d2329", linewidth=0.8)
            ax.axhline(mem["lower_bound_bytes"] / 1024, color="#2463eb", linestyle="--", lw=1)
            peak = mem["peak_step"]
            ax.axvline(peak, color="#b3261e", linestyle=":", linewidth=1.2)
            ax.text(
                peak + 0.3,
                size / 1024 * 1.04,
                f"peak at step {peak}: {mem['live_bytes'][peak + 1]:,} B live",
                color="#b3261e",
                va="bottom",
            )
            ax.set_title(
                f"Memory timeline: arena {size:,} B (solid), lower bound "
                f"{mem['lower_bound_bytes']:,} B (dashed); grey = input, hatched = scratch"
            )
    axes[-1, 0].set_xlabel("schedule step (-1: the input arrives)")
    fig.tight_layout()
    return fig


def _stages(ax, steps: list[dict]) -> None:  # type: ignore[no-untyped-def, type-arg]
    """Shade each run of banded steps (a patch-based stage) and say how many bands."""
    k = 0
    while k < len(steps):
        if steps[k]["band"] is None:
            k += 1
            continue
        start = k
        bands = set()
        while k < len(steps) and steps[k]["band"] is not None:
            bands.add(steps[k]["band"])
            k += 1
        ax.axvspan(start - 0.5, k - 0.5, color="#eef2f6", zorder=0)
        ax.text(
            (start + k - 1) / 2,
            0.985,
            f"patch-based stage: {len(bands)} bands",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            color="#5b6670",
        )


def budget_figure(report: dict):  # type: ignore[no-untyped-def, type-arg]
    """RAM (arena, stack, I/O, each extra region) and flash (weights, code, startup) as stacked
    bars against the board's budgets."""
    plt = _pyplot()
    ram, flash = report["ram"], report["flash"]
    rows = [
        (
            "RAM",
            [
                ("arena", ram["arena_bytes"]),
                ("stack", ram["stack_bytes"]),
                ("I/O", ram["io_bytes"]),
            ],
            ram["budget_bytes"],
        )
    ]
    for name, reg in (ram.get("regions") or {}).items():
        rows.append((name, [("buffers", reg["arena_bytes"])], reg["size_bytes"]))
    rows.append(
        (
            "flash",
            [
                ("weights", flash["weights_bytes"]),
                ("code", flash["code_bytes"]),
                ("startup", flash["probe_overhead_bytes"]),
            ],
            flash["budget_bytes"],
        )
    )
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 0.95 * len(rows) + 0.5), squeeze=False)
    palette = ["#2463eb", "#f59e0b", "#10b981", "#8b5cf6"]
    from matplotlib.ticker import FuncFormatter

    for ax, (label, parts, budget) in zip(axes[:, 0], rows, strict=True):
        left = 0
        for k, (part, value) in enumerate(parts):
            ax.barh(
                0,
                value / 1024,
                left=left / 1024,
                color=palette[k % len(palette)],
                height=0.6,
                label=f"{part} {value:,} B",
            )
            left += value
        ax.barh(0, budget / 1024, fill=False, edgecolor="#1d2329", height=0.6, linewidth=0.8)
        used = sum(v for _, v in parts)
        ax.set_xlim(0, max(budget, used) / 1024 * 1.02)
        ax.set_yticks([])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f} KB"))
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.set_title(
            f"{label}: {used:,} B of {budget:,} B ({100 * used / budget:.1f}%)"
            + ("  OVER BUDGET" if used > budget else ""),
            loc="left",
            color="#b3261e" if used > budget else "#1d2329",
        )
    fig.tight_layout()
    return fig


def profile_by_layer(profile: dict | None) -> dict[str, int]:  # type: ignore[type-arg]
    """Instructions per layer (a patch-based stage's bands summed into their layer)."""
    out: dict[str, int] = {}
    for s in (profile or {}).get("steps", []):
        layer, _ = layer_of(s["label"])
        out[layer] = out.get(layer, 0) + int(s["instructions"])
    return out


def layers_figure(report: dict, profile: dict | None):  # type: ignore[no-untyped-def, type-arg]
    """Per layer: MACs (and instructions when profiled), output bytes, SQNR against float."""
    plt = _pyplot()
    layers = report["layers"]
    x = list(range(len(layers)))
    instr = profile_by_layer(profile)
    has_sqnr = any(r.get("sqnr_db") is not None for r in layers)
    panels = 2 + int(has_sqnr)
    fig, axes = plt.subplots(panels, 1, figsize=(12, 2.2 * panels + 0.6), sharex=True)
    colours = _colours([r["name"] for r in layers])
    ax = axes[0]
    width = 0.4 if instr else 0.8
    ax.bar(
        [k - width / 2 if instr else k for k in x],
        [r["macs"] for r in layers],
        width,
        color=[colours[r["name"]] for r in layers],
        label="MACs",
    )
    if instr:
        ax.bar(
            [k + width / 2 for k in x],
            [instr.get(r["name"], 0) for r in layers],
            width,
            color="#1d2329",
            label="instructions (QEMU)",
        )
        ax.legend(loc="upper right")
    ax.set_ylabel("MACs" + (" / instructions" if instr else ""))
    ax.set_title("Per layer")
    axes[1].bar(x, [r["output_bytes"] for r in layers], color=[colours[r["name"]] for r in layers])
    axes[1].set_ylabel("output bytes")
    if has_sqnr:
        axes[2].bar(x, [r.get("sqnr_db") or 0 for r in layers], color="#2463eb")
        axes[2].set_ylabel("SQNR vs float (dB)")
    axes[-1].set_xlabel("layer (# in the table below)")
    fig.tight_layout()
    return fig


def _e(x: object) -> str:
    return html.escape(str(x))


def _kv(rows: list[tuple[str, str]]) -> str:
    return (
        '<table class="kv">'
        + "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows)
        + "</table>"
    )


def write_html(outdir: Path, dest: Path | None = None) -> list[Path]:
    """Write the report (default: report.html among the output directory's records) and its
    figures as PNG beside it; returns the files written."""
    report, profile = load_records(outdir)
    dest = dest or records_dir(outdir) / "report.html"
    if dest.is_dir():
        dest = dest / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    figures = {
        "memory": memory_figure(report),
        "budget": budget_figure(report),
        "layers": layers_figure(report, profile),
    }
    written = []
    svgs = {}
    for key, fig in figures.items():
        svgs[key] = _svg(fig, key)
        png = dest.with_name(f"{dest.stem}-{key}.png")
        fig.savefig(png, format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        written.append(png)
    dest.write_text(_page(report, profile, svgs))
    return [dest, *written]


def _page(report: dict, profile: dict | None, svgs: dict[str, str]) -> str:  # type: ignore[type-arg]
    ram, flash, mem = report["ram"], report["flash"], report["memory"]
    acc = report.get("accuracy") or {}
    patch = ram.get("patch") or {}
    total_instr = (profile or {}).get("instructions")
    facts = [
        (
            "peak RAM",
            f"{ram['peak_bytes']:,} B (arena {ram['arena_bytes']:,} + stack "
            f"{ram['stack_bytes']:,} + I/O {ram['io_bytes']:,})",
        ),
        ("arena lower bound", f"{mem['lower_bound_bytes']:,} B"),
        (
            "flash",
            f"{flash['total_bytes']:,} B (weights {flash['weights_bytes']:,} + code "
            f"{flash['code_bytes']:,} + startup {flash['probe_overhead_bytes']:,})",
        ),
        ("input in the arena", "yes" if ram.get("input_in_arena") else "no"),
        ("input by rows (reader)", ", ".join(ram.get("input_rows") or []) or "no"),
    ]
    if patch.get("used"):
        facts.append(
            (
                "patch-based stages",
                f"peak {patch['peak_bytes']:,} B vs {patch['layerwise_peak_bytes']:,} B layer by "
                f"layer, +{patch['extra_macs']:,} MACs ({patch['extra_macs_pct']}%)",
            )
        )
    if total_instr:
        facts.append(
            (
                "instructions per inference",
                f"{total_instr:,} on {_e(profile.get('emulator', ''))} (QEMU, -icount)",
            )
        )  # type: ignore[union-attr]
    instr = profile_by_layer(profile)
    head = ["#", "layer", "op", "output shape", "MACs", "output B", "SQNR dB"]
    if instr:
        head += ["instructions", "instr/MAC"]
    rows = []
    for k, r in enumerate(report["layers"]):
        cells = [
            str(k),
            f'<td class="l">{_e(r["name"])}</td>',
            f'<td class="l">{_e(r["op"])}</td>',
            _e("x".join(str(d) for d in r.get("output_shape", []))),
            f"{r['macs']:,}",
            f"{r['output_bytes']:,}",
            "" if r.get("sqnr_db") is None else f"{r['sqnr_db']:.2f}",
        ]
        if instr:
            n = instr.get(r["name"], 0)
            fused = next((f for f in instr if "+" in f and r["name"] in f.split("+")), None)
            cells += (
                [f'<td class="l">in the fused step {_e(fused)}</td>', ""]
                if fused and not n
                else [f"{n:,}", f"{n / r['macs']:.2f}" if r["macs"] else ""]
            )
        rows.append(
            "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    # steps that are no layer of the table: fused layers (conv + RNNPool computed together)
    # get a row each; views and band assembly (no code, only timer granularity) share one
    names = {r["name"] for r in report["layers"]}
    ops = {layer_of(s["label"])[0]: s["op"] for s in (profile or {}).get("steps", [])}
    pad = "<td></td>" * (len(head) - 4)
    other = 0
    for layer, n in instr.items():
        if layer in names:
            continue
        if ops.get(layer) in ("row_view", "row_concat"):
            other += n
            continue
        rows.append(
            f'<tr><td></td><td class="l">{_e(layer)}</td><td class="l">{_e(ops.get(layer))}'
            f"</td>{pad[: -len('<td></td>')]}<td>{n:,}</td><td></td></tr>"
        )
    if other:
        rows.append(
            f'<tr><td></td><td class="l">other steps: row views and band assembly (no code; '
            f"timing resolution 40 instructions)</td>{pad}<td>{other:,}</td><td></td></tr>"
        )
    table = (
        "<table><tr>"
        + "".join(f'<th class="{"l" if h in ("layer", "op") else ""}">{_e(h)}</th>' for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )
    worst = sorted(
        (r for r in report["layers"] if r.get("sqnr_db") is not None), key=lambda r: r["sqnr_db"]
    )[:5]
    if acc:
        top1 = acc.get("top1_agreement")
        accuracy = _kv(
            [
                ("samples", _e(acc.get("samples"))),
                ("top-1 agreement with float", "" if top1 is None else f"{100 * top1:.1f}%"),
                ("output SQNR vs float", f"{_e(acc.get('sqnr_db'))} dB"),
            ]
            + [(f"low SQNR: {r['name']} ({r['op']})", f"{r['sqnr_db']:.2f} dB") for r in worst]
        )
    else:
        accuracy = "<p>Imported integer model: no float reference to compare with.</p>"
    profile_note = (
        ""
        if instr
        else "<p>Instructions per layer appear here after <code>tvc run OUTDIR --engine qemu "
        "--profile --input X</code> and <code>tvc report OUTDIR --html</code>.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>tvc report: {_e(report["name"])}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_e(report["name"])} on {_e(report["target"])}</h1>
<p class="sub">{_e(report["model"])}: {_e(report["quant"])} quantization,
{_e(report.get("kernels", ""))} kernels, --optimize {_e(report.get("optimize", ""))};
{len(report["layers"])} layers, {sum(r["macs"] for r in report["layers"]):,} MACs</p>
{_kv(facts)}
<h2 id="memory">Memory timeline</h2>
<figure>{svgs["memory"]}
<figcaption>Each rectangle is one planned buffer (or one piece of a buffer that is consumed or
assembled band by band) from the step that writes it to the last step that reads it, at its
offset in the arena; colours are layers. {len(mem["buffers"])} buffers over
{len(mem["steps"])} steps.</figcaption></figure>
<h2 id="budgets">Budgets</h2>
<figure>{svgs["budget"]}<figcaption>Measured from the linked ELF of the probe firmware for
{_e(report["target"])}.</figcaption></figure>
<h2 id="layers">Layers</h2>
<figure>{svgs["layers"]}</figure>
{profile_note}
{table}
<h2 id="accuracy">Accuracy</h2>
{accuracy}
</body>
</html>
"""
