"""The breakpoint heatmap: counts by breakpoint rule x region, as a text table and a PNG.

The PNG uses a Chinese font when one is installed (Noto Sans CJK, Source Han Sans, WenQuanYi,
SimHei, or the fonts of the optional ``mplfonts`` package); without one it labels rows with rule
ids and columns R1, R2 ... and returns the legend, so nothing renders as empty boxes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import Breakpoint

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC",
             "Noto Sans Mono CJK SC",
             "Noto Serif CJK SC")


@dataclass
class Heatmap:
    rules: list[str]  # rule ids, most breakpoints first
    regions: list[str]
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.counts.values())


def heatmap_counts(session: Session, since: datetime | None = None, until: datetime | None = None) -> Heatmap:
    query = select(Breakpoint.rule_id, Breakpoint.region, func.count()).group_by(Breakpoint.rule_id,
                                                                                 Breakpoint.region)
    if since is not None:
        query = query.where(col(Breakpoint.at) >= since)
    if until is not None:
        query = query.where(col(Breakpoint.at) < until)
    counts = {(rule, region): n for rule, region, n in session.exec(query)}
    by_rule: dict[str, int] = {}
    by_region: dict[str, int] = {}
    for (rule, region), n in counts.items():
        by_rule[rule] = by_rule.get(rule, 0) + n
        by_region[region] = by_region.get(region, 0) + n
    return Heatmap(sorted(by_rule, key=lambda r: (-by_rule[r], r)),
                   sorted(by_region, key=lambda r: (-by_region[r], r)), counts)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(0, width - _width(text))
    return gap + text if right else text + gap


def format_table(h: Heatmap, names: dict[str, str]) -> str:
    """Rows: breakpoints (name and id); columns: regions; a total column and row."""
    head = ["断点", *h.regions, "合计"]
    rows = [[f"{names.get(r, r)} ({r})", *[str(h.counts.get((r, g), 0)) for g in h.regions],
             str(sum(h.counts.get((r, g), 0) for g in h.regions))] for r in h.rules]
    totals = [str(sum(h.counts.get((r, g), 0) for r in h.rules)) for g in h.regions]
    rows.append(["合计", *totals, str(h.total())])
    table = [head, *rows]
    widths = [max(_width(row[i]) for row in table) for i in range(len(head))]
    return "\n".join("  ".join(_pad(cell, widths[i], right=i > 0) for i, cell in enumerate(row))
                     for row in table)


def chinese_font() -> str | None:
    """Name of an installed font with Chinese glyphs, registering mplfonts' fonts when present."""
    from matplotlib import font_manager

    try:  # optional: pip install mplfonts brings Noto Sans CJK
        import mplfonts

        fonts_dir = Path(mplfonts.__file__).parent / "fonts"
        for path in sorted(fonts_dir.glob("NotoSansCJK*")):
            font_manager.fontManager.addfont(str(path))
    except Exception:
        pass
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def render_png(h: Heatmap, names: dict[str, str], path: Path, *, title: str = "客户旅程断点热力图",
               font: str | None = "auto") -> dict[str, str]:
    """Write the heatmap PNG; returns the legend used for labels when no Chinese font exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    family = chinese_font() if font == "auto" else font
    legend: dict[str, str] = {}
    if family:
        row_labels = [f"{names.get(r, r)}" for r in h.rules]
        col_labels = list(h.regions)
        heading = title
    else:
        row_labels = list(h.rules)
        col_labels = [f"R{i}" for i in range(1, len(h.regions) + 1)]
        legend = {f"R{i}": region for i, region in enumerate(h.regions, 1)}
        legend.update({r: names.get(r, r) for r in h.rules})
        heading = "Journey breakpoints: rule x region"
    grid = [[h.counts.get((r, g), 0) for g in h.regions] for r in h.rules] or [[0]]
    rc = {"font.family": [family, "DejaVu Sans"]} if family else {}
    with plt.rc_context(rc):
        label = max((_width(x) for x in row_labels), default=4) * (0.085 if family else 0.075)
        size = (max(5.0, 1.6 + label + 1.2 * max(1, len(h.regions))), 1.6 + 0.55 * max(1, len(h.rules)))
        fig, ax = plt.subplots(figsize=size, dpi=120)
        image = ax.imshow(grid, cmap="YlOrRd", aspect="auto", vmin=0)
        ax.set_xticks(range(len(col_labels)), col_labels)
        ax.set_yticks(range(len(row_labels)), row_labels)
        ax.xaxis.tick_top()
        peak = max(max(row) for row in grid) or 1
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center",
                        color="white" if value > peak * 0.6 else "black", fontsize=11)
        fig.suptitle(heading)
        bar = fig.colorbar(image, ax=ax, fraction=0.04)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        plt.close(fig)
    return legend
