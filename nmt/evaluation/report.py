"""The evaluation report: sacreBLEU scores of one or more systems against one or more references,
paired significance tests, BLEU by source length, the worst segments, and its Markdown and JSON
forms. Reads text files only."""

import logging
from pathlib import Path

from nmt.config import EvalSetConfig
from nmt.errors import NmtError
from nmt.evaluation.metrics import (
    check_aligned,
    corpus_scores,
    length_breakdown,
    paired_tests,
    read_segments,
    worst_segments,
)
from nmt.evaluation.plots import bar_chart

# The keys report.json always has; README "Evaluation report" documents each.
REPORT_KEYS = ("bleu", "chrf", "ter", "systems", "comparisons", "references", "lines",
               "length_buckets", "worst_chrf", "plots")


def paths(value) -> list[str]:
    """hyp= and ref= as a list of paths: one path, or a list of them."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def eval_set_files(test: EvalSetConfig, test_root: str | None) -> tuple[list[str], str]:
    """Reference files and source file of a standard test set: from `test_root` when given, else
    sacreBLEU's copy, downloaded on first use."""
    src_lang, _, tgt_lang = test.langpair.partition("-")
    if test_root:
        root = Path(test_root).expanduser()
        return [str(root / f"{test.local}.{tgt_lang}")], str(root / f"{test.local}.{src_lang}")
    import sacrebleu.utils

    # Its "Downloading URL" line would come before our one-line error when there is no network.
    logging.getLogger("sacrebleu").setLevel(logging.WARNING)
    try:
        return (sacrebleu.utils.get_reference_files(test.sacrebleu, test.langpair),
                sacrebleu.utils.get_source_file(test.sacrebleu, test.langpair))
    # sacreBLEU exits on a bad download (SystemExit) and lets urllib's errors through (OSError).
    except (OSError, SystemExit) as error:
        raise NmtError(f"test: sacreBLEU could not fetch {test.sacrebleu} {test.langpair} ({error}); without "
                       f"internet pass test_root=DIR holding {test.local}.{src_lang} and .{tgt_lang}, "
                       "or ref=FILE src=FILE") from None


def _system_names(paths: list[str]) -> list[str]:
    names = []
    for path in paths:
        name = Path(path).name
        names.append(name if name not in names else f"{name}#{len(names) + 1}")
    return names


def build_report(hyp_paths: list[str], ref_paths: list[str], src_path: str | None, n_bootstrap: int,
                 n_randomization: int, worst: int) -> dict:
    if not hyp_paths:
        raise NmtError("hyp is not set: give hyp=FILE or hyp=[A,B] for a comparison")
    if not ref_paths:
        raise NmtError("ref is not set: give ref=FILE, ref=[R1,R2], or test=NAME (see configs/test)")
    systems = dict(zip(_system_names(hyp_paths), (read_segments(p) for p in hyp_paths)))
    references = [read_segments(p) for p in ref_paths]
    sources = read_segments(src_path) if src_path else None
    named = {p: lines for p, lines in zip(ref_paths, references)}
    named.update({p: lines for p, lines in zip(hyp_paths, systems.values())})
    if src_path:
        named[src_path] = sources
    check_aligned(named)

    entries = []
    for (name, hyps), path in zip(systems.items(), hyp_paths):
        entries.append({"name": name, "hyp": path} | corpus_scores(hyps, references, n_bootstrap))
    baseline = entries[0]
    return {
        "bleu": baseline["bleu"], "chrf": baseline["chrf"], "ter": baseline["ter"],
        "systems": entries,
        "comparisons": paired_tests(systems, references, n_bootstrap, n_randomization),
        "references": ref_paths, "lines": len(references[0]),
        "length_buckets": length_breakdown(systems, references, sources) if sources else [],
        "worst_chrf": worst_segments(next(iter(systems.values())), references, sources, worst),
        "plots": [],
    }


def write_plots(report: dict, directory: Path) -> None:
    systems = report["systems"]
    labels = [s["name"] for s in systems]
    errors = None
    if "ci95" in systems[0]["bleu"]:
        errors = {"BLEU": [(s["bleu"]["mean"] - s["bleu"]["ci95"], s["bleu"]["mean"] + s["bleu"]["ci95"])
                           for s in systems]}
    if bar_chart(labels, {"BLEU": [s["bleu"]["score"] for s in systems]}, directory / "systems.png", "BLEU",
                 "BLEU with 95% confidence interval", errors):
        report["plots"].append("systems.png")
    buckets = report["length_buckets"]
    if buckets and bar_chart([f"{b['range']} ({b['sentences']})" for b in buckets],
                             {name: [b["bleu"][name] for b in buckets] for name in labels},
                             directory / "length.png", "BLEU", "BLEU by source length in words (sentences)"):
        report["plots"].append("length.png")


def render_markdown(report: dict) -> str:
    lines = ["# Evaluation report", "", f"{report['lines']} segments; references: "
             + ", ".join(f"`{r}`" for r in report["references"]), "",
             "| system | BLEU | 95% CI | chrF | TER |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in report["systems"]:
        ci = f"{s['bleu']['mean']:.1f} ± {s['bleu']['ci95']:.1f}" if "ci95" in s["bleu"] else "–"
        lines.append(f"| {s['name']} | {s['bleu']['score']:.1f} | {ci} | {s['chrf']['score']:.1f} | {s['ter']['score']:.1f} |")
    lines += ["", "Signatures:", ""]
    for metric in ("bleu", "chrf", "ter"):
        lines.append(f"- {metric}: `{report['systems'][0][metric]['signature']}`")
    if report["comparisons"]:
        lines += ["", f"## Paired significance against {report['comparisons'][0]['baseline']}", "",
                  "| system | metric | p (paired bootstrap) | p (approximate randomization) |",
                  "| --- | --- | ---: | ---: |"]
        for c in report["comparisons"]:
            for metric in ("bleu", "chrf", "ter"):
                lines.append(f"| {c['system']} | {metric} | {c[metric]['p_bootstrap']:.4f} | "
                             f"{c[metric]['p_randomization']:.4f} |")
    if report["length_buckets"]:
        names = [s["name"] for s in report["systems"]]
        lines += ["", "## BLEU by source length (words)", "", "| words | sentences | " + " | ".join(names) + " |",
                  "| --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
        for b in report["length_buckets"]:
            lines.append(f"| {b['range']} | {b['sentences']} | " + " | ".join(f"{b['bleu'][n]:.1f}" for n in names) + " |")
    if report["worst_chrf"]:
        lines += ["", f"## Lowest sentence chrF ({report['systems'][0]['name']})", "",
                  "| line | chrF | hypothesis | reference |", "| ---: | ---: | --- | --- |"]
        for w in report["worst_chrf"]:
            cell = lambda text: text.replace("|", "\\|")  # noqa: E731
            lines.append(f"| {w['line']} | {w['chrf']:.1f} | {cell(w['hyp'])} | {cell(w['ref'])} |")
    for plot in report["plots"]:
        lines += ["", f"![{plot}]({plot})"]
    return "\n".join(lines) + "\n"
