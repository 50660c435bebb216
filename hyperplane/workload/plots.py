"""A load report's plots (PNG) and its one self-contained HTML page; needs matplotlib
(``pip install 'hyperplane[report]'``). Every line drawn is a series of the report, as
``series.json`` and the page's embedded data hold it."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from hyperplane.tables.nat import NAT_GATEWAY_MAX_PER_DESTINATION

__all__ = ["write_plots", "PLOTS"]

#: file name -> (title, the series categories it draws)
PLOTS = {
    "executions.png": ("Concurrent executions, refused and cut connections", ("executions", "refused", "cut")),
    "connections.png": ("Connections per Hyperplane ENI", ("connections", "eni_connections")),
    "enis.png": ("Hyperplane ENIs and subnet addresses left", ("enis", "subnet_addresses_left")),
    "nat_ports.png": ("NAT gateway connections per address and destination", ("nat_destination_connections",)),
}
TOP = 6  # destinations drawn on the NAT plot (the busiest)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("the report's plots need matplotlib: pip install 'hyperplane[report]' "
                          "(the text summary works without it)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plotted(report: Any) -> dict[str, dict[str, list[float]]]:
    """The series each plot draws, by file name (what the page embeds)."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, (_, categories) in PLOTS.items():
        lines: dict[str, list[float]] = {}
        for category in categories:
            values = report.series.get(category, {})
            keys = sorted(values, key=lambda k: -max(values[k], default=0))
            if category == "nat_destination_connections":
                keys = keys[:TOP]
            for key in keys:
                lines[f"{category}: {key}"] = values[key]
        out[name] = lines
    return out


def write_plots(report: Any, folder: Path) -> list[Path]:
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter
    clock = report.workload.clock
    x = [t + clock for t in report.times]  # seconds of the day
    hhmm = FuncFormatter(lambda v, _: f"{int(v) // 3600 % 24:02d}:{int(v) % 3600 // 60:02d}")
    series = plotted(report)
    written = []
    for name, (title, _) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(9, 4.2))
        right = None
        for label, values in series[name].items():
            category = label.split(":", 1)[0]
            target = ax
            if category in ("refused", "cut", "subnet_addresses_left"):
                right = right or ax.twinx()
                target = right
            style = "--" if category in ("refused", "cut") else "-"
            target.plot(x, values, style, label=label.replace("_", " "), linewidth=1.4)
        if name == "nat_ports.png" and series[name]:
            ax.axhline(NAT_GATEWAY_MAX_PER_DESTINATION, color="red", linestyle=":", label="limit 55,000 per destination")
        if name == "connections.png" and report.enis:
            limit = report.enis[0]["limit"]
            ax.axhline(limit, color="red", linestyle=":", label=f"limit {limit:,} per ENI")
        ax.set_title(title)
        ax.xaxis.set_major_formatter(hhmm)
        ax.set_xlabel("time of day" if clock else "time (HH:MM from the start)")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if right is not None:
            h2, l2 = right.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        if handles:
            ax.legend(handles, labels, fontsize=7, loc="upper left")
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    page = folder / "report.html"
    page.write_text(_page(report, series, written))
    return written + [page]


def _page(report: Any, series: dict[str, Any], pngs: list[Path]) -> str:
    images = "\n".join(
        f'<h2>{html.escape(PLOTS[p.name][0])}</h2>\n<img alt="{html.escape(p.name)}" '
        f'src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in pngs)
    data = json.dumps({"times": report.times, "plots": series}).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hyperplane load report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}pre{{background:#f4f4f4;padding:1em;overflow:auto}}
img{{max-width:100%}}</style></head>
<body>
<h1>hyperplane load report</h1>
<pre id="summary">{html.escape(report.summary())}</pre>
{images}
<script type="application/json" id="series">{data}</script>
</body></html>
"""
