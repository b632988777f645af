"""Pictures for reports: attention heatmaps and score charts. matplotlib is an optional extra."""

import logging
from pathlib import Path

from nmt.io import atomic_open

log = logging.getLogger(__name__)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> None:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    _pyplot().close(fig)


def attention_figure(weights, src_pieces: list[str], tgt_pieces: list[str], title: str = ""):
    """Target pieces down the side, source pieces along the top; darker is more attention.
    None when matplotlib is not installed."""
    plt = _pyplot()
    if plt is None:
        log.warning("matplotlib is not installed (pip install 'nmt[plots]'); no attention picture")
        return None
    rows, cols = len(tgt_pieces), len(src_pieces)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * cols + 2), max(3.0, 0.4 * rows + 1.5)), dpi=100)
    image = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), src_pieces, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(rows), tgt_pieces, fontsize=9)
    ax.set_xlabel("source pieces")
    ax.set_ylabel("target pieces")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return fig


def attention_heatmap(weights, src_pieces: list[str], tgt_pieces: list[str], path: Path, title: str = "") -> bool:
    """Write the attention picture as a PNG; False when matplotlib is missing."""
    fig = attention_figure(weights, src_pieces, tgt_pieces, title)
    if fig is None:
        return False
    _save(fig, path)
    return True


def write_attention_maps(directory: Path, lines: list[str], hyps, translator, count: int) -> None:
    """Heatmaps for the first `count` non-empty sentences: attention_<line>.png."""
    written = 0
    for number, (line, best) in enumerate(zip(lines, hyps), start=1):
        if written >= count:
            break
        if not line.strip() or best[0].attention is None:
            continue
        ids, _ = translator.encode_lines([line])
        src_pieces = translator.vocab.pieces_with_end(ids[0])
        tgt_pieces = translator.vocab.pieces_with_end(best[0].tokens)
        weights = best[0].attention[:len(tgt_pieces), :len(src_pieces)].float().numpy()
        if attention_heatmap(weights, src_pieces, tgt_pieces, directory / f"attention_{number}.png", f"line {number}"):
            written += 1


def bar_chart(categories: list[str], series: dict[str, list[float]], path: Path, ylabel: str, title: str,
              errors: dict[str, list[tuple[float, float]]] | None = None) -> bool:
    """Grouped bars, one group per category and one colour per series, with optional
    asymmetric error bars (e.g. 95% confidence intervals); each bar is labelled with its value."""
    plt = _pyplot()
    if plt is None:
        return False
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(categories) * max(1, len(series) / 2) + 2), 3.8), dpi=100)
    for s_index, (name, values) in enumerate(series.items()):
        xs = [i + (s_index - (len(series) - 1) / 2) * width for i in range(len(categories))]
        bounds = (errors or {}).get(name)
        yerr = None
        if bounds:
            yerr = [[v - lo for v, (lo, _) in zip(values, bounds)], [hi - v for v, (_, hi) in zip(values, bounds)]]
        ax.bar(xs, values, width=width, yerr=yerr, capsize=4, label=name)
        for i, (x, v) in enumerate(zip(xs, values)):
            top = bounds[i][1] if bounds else v  # above the error bar, not on it
            ax.annotate(f"{v:.1f}", (x, top), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_xticks(range(len(categories)), categories, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(y=0.12)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return True
