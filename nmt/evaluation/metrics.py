"""sacreBLEU metrics on detokenized text: scores with signatures, bootstrap confidence
intervals, paired significance tests, and breakdowns. Needs no model and no torch."""

from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.significance import PairedTest

from nmt.errors import NmtError
from nmt.io import read_lines

METRICS = {"bleu": BLEU, "chrf": CHRF, "ter": TER}
LENGTH_BUCKETS = [(1, 10), (11, 20), (21, 30), (31, 40), (41, None)]


def read_segments(path: str | Path) -> list[str]:
    """One segment per line of a UTF-8 file; an empty or unreadable file is a user error."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"{path}: no such file")
    data = path.read_bytes()
    if not data:
        raise NmtError(f"{path}: the file is empty")
    return read_lines(data, str(path))[0]


def check_aligned(named: dict[str, list[str]]) -> None:
    """Every file must have as many lines as the first one."""
    (first, first_lines), *rest = named.items()
    for name, lines in rest:
        if len(lines) != len(first_lines):
            raise NmtError(f"{name} has {len(lines)} lines but {first} has {len(first_lines)}; "
                           "hypotheses and references must be line-aligned")


def corpus_scores(hypotheses: list[str], references: list[list[str]], n_bootstrap: int) -> dict:
    """BLEU, chrF and TER with signatures, plus a bootstrap 95% interval (mean ± half-width)."""
    result = {}
    for name, metric_type in METRICS.items():
        metric = metric_type()
        score = metric.corpus_score(hypotheses, references)
        entry = {"score": float(score.score), "signature": str(metric.get_signature())}
        if n_bootstrap > 1:
            resampled = metric_type().corpus_score(hypotheses, references, n_bootstrap=n_bootstrap)
            entry["mean"], entry["ci95"] = float(resampled._mean), float(resampled._ci)
        result[name] = entry
    return result


def paired_tests(systems: dict[str, list[str]], references: list[list[str]], n_bootstrap: int,
                 n_randomization: int) -> list[dict]:
    """p-values of every system against the first (the baseline), by paired bootstrap
    resampling and by approximate randomization, for each metric."""
    if len(systems) < 2:
        return []
    named = list(systems.items())
    comparisons = [{"system": name, "baseline": named[0][0]} for name, _ in named[1:]]
    for test_type, samples, key in (("bs", n_bootstrap, "p_bootstrap"), ("ar", n_randomization, "p_randomization")):
        metrics = {name: metric_type(references=references) for name, metric_type in METRICS.items()}
        _, results = PairedTest(named, metrics, references=None, test_type=test_type, n_samples=samples)()
        for metric_name in METRICS:
            column = results[_column(results, metric_name)]
            baseline_score = column[0].score
            for comparison, result in zip(comparisons, column[1:]):
                # sacreBLEU (after MultEval) counts only samples strictly above the observed difference,
                # so a system scored against an identical one gets p = 1/(n+1). No observed difference
                # is no evidence of one: we report p = 1 there.
                p_value = 1.0 if result.score == baseline_score else float(result.p_value)
                comparison.setdefault(metric_name, {})[key] = p_value
    return comparisons


def _column(results: dict, metric_name: str) -> str:
    """PairedTest names its columns by the metric's display name (BLEU, chrF2, TER)."""
    wanted = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}[metric_name]
    return next(key for key in results if key.startswith(wanted))


def length_breakdown(systems: dict[str, list[str]], references: list[list[str]], sources: list[str]) -> list[dict]:
    """Corpus BLEU of each system over the sentences whose source has n words, by bucket."""
    rows = []
    lengths = [len(s.split()) for s in sources]
    for low, high in LENGTH_BUCKETS:
        picked = [i for i, n in enumerate(lengths) if n >= low and (high is None or n <= high)]
        if not picked:
            continue
        refs = [[ref[i] for i in picked] for ref in references]
        scores = {name: float(BLEU().corpus_score([hyps[i] for i in picked], refs).score) for name, hyps in systems.items()}
        rows.append({"range": f"{low}-{high}" if high else f"{low}+", "sentences": len(picked), "bleu": scores})
    return rows


def worst_segments(hypotheses: list[str], references: list[list[str]], sources: list[str] | None,
                   count: int) -> list[dict]:
    """The `count` segments with the lowest sentence-level chrF."""
    chrf = CHRF()
    scored = [(chrf.sentence_score(h, [ref[i] for ref in references]).score, i) for i, h in enumerate(hypotheses)]
    rows = []
    for score, i in sorted(scored)[:count]:
        row = {"line": i + 1, "chrf": float(score), "hyp": hypotheses[i], "ref": references[0][i]}
        if sources is not None:
            row["src"] = sources[i]
        rows.append(row)
    return rows
