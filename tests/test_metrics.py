"""Evaluation equals sacreBLEU (API and command line), tests significance sensibly, reports fully."""

import json
import subprocess
import sys

import pytest
import sacrebleu
from conftest import SHARED_DATA, run_cli

from nmt.config import EvalSetConfig
from nmt.errors import NmtError
from nmt.evaluation.metrics import read_segments
from nmt.evaluation.report import REPORT_KEYS, build_report, eval_set_files

REFS = ["Ein Mann fährt mit dem Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau liest ein Buch im Park.",
        "Kinder spielen Fußball auf der Wiese.", "Der alte Mann sitzt auf einer Bank."] * 8
GOOD = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau liest ein Buch.",
        "Kinder spielen Fußball auf der Wiese.", "Der alte Mann sitzt auf der Bank."] * 8
BAD = ["Mann.", "Hunde Schnee spielen.", "Buch.", "Fußball.", "Eine Bank."] * 8


@pytest.fixture
def files(tmp_path):
    for name, lines in (("ref", REFS), ("good", GOOD), ("bad", BAD)):
        (tmp_path / name).write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    return tmp_path


def test_scores_equal_sacrebleus_api(files):
    report = build_report([str(files / "good")], [str(files / "ref")], None, 0, 0, 3)
    assert report["bleu"]["score"] == sacrebleu.corpus_bleu(GOOD, [REFS]).score
    assert report["chrf"]["score"] == sacrebleu.corpus_chrf(GOOD, [REFS]).score
    assert report["ter"]["score"] == sacrebleu.corpus_ter(GOOD, [REFS]).score


def test_scores_equal_the_sacrebleu_command_line_to_the_printed_digit(files):
    cli = subprocess.run([sys.executable, "-m", "sacrebleu", str(files / "ref"), "-i", str(files / "good"),
                          "-m", "bleu", "chrf", "ter", "-b", "-w", "4"], capture_output=True, text=True, check=True)
    printed = json.loads(cli.stdout)
    report = build_report([str(files / "good")], [str(files / "ref")], None, 0, 0, 3)
    ours = [round(report[m]["score"], 4) for m in ("bleu", "chrf", "ter")]
    assert ours == printed
    signature = subprocess.run([sys.executable, "-m", "sacrebleu", str(files / "ref"), "-i", str(files / "good"),
                                "-m", "bleu"], capture_output=True, text=True, check=True).stdout
    assert json.loads(signature)["signature"] == report["bleu"]["signature"]


def test_several_references_per_segment(files):
    (files / "ref2").write_text("".join(l + "\n" for l in GOOD), encoding="utf-8")
    report = build_report([str(files / "good")], [str(files / "ref"), str(files / "ref2")], None, 0, 0, 3)
    assert report["bleu"]["score"] == sacrebleu.corpus_bleu(GOOD, [REFS, GOOD]).score == pytest.approx(100.0)
    assert report["bleu"]["signature"].startswith("nrefs:2")


def test_identical_systems_are_not_significantly_different(files):
    report = build_report([str(files / "good"), str(files / "good")], [str(files / "ref")], None, 200, 200, 3)
    comparison = report["comparisons"][0]
    assert comparison["bleu"]["p_bootstrap"] > 0.05 and comparison["bleu"]["p_randomization"] > 0.05


def test_a_clearly_worse_system_is_significantly_different(files):
    report = build_report([str(files / "good"), str(files / "bad")], [str(files / "ref")], None, 200, 200, 3)
    comparison = report["comparisons"][0]
    for metric in ("bleu", "chrf", "ter"):
        assert comparison[metric]["p_bootstrap"] < 0.05 and comparison[metric]["p_randomization"] < 0.05


def test_report_json_has_its_documented_keys(files, tmp_path):
    (files / "src").write_text("".join(f"{' '.join(['w'] * (i % 25 + 1))}\n" for i in range(len(REFS))))
    result = run_cli("evaluate", f"hyp=[{files}/good,{files}/bad]", f"ref={files}/ref", f"src={files}/src",
                     "report_dir=out", "bootstrap=100", "randomization=100", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert set(report) == set(REPORT_KEYS)
    for metric in ("bleu", "chrf", "ter"):
        assert {"score", "signature", "mean", "ci95"} <= set(report[metric])
    assert [s["name"] for s in report["systems"]] == ["good", "bad"]
    assert {b["range"] for b in report["length_buckets"]} == {"1-10", "11-20", "21-30"}
    assert len(report["worst_chrf"]) == 10 and report["worst_chrf"][0]["chrf"] <= report["worst_chrf"][-1]["chrf"]
    assert "systems.png" in report["plots"] and (tmp_path / "out/systems.png").is_file()


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(NmtError, match="empty"):
        read_segments(tmp_path / "empty")


needs_multi30k = pytest.mark.skipif(not (SHARED_DATA / "multi30k").is_dir(), reason="needs ../shared/data")


@needs_multi30k
def test_test_set_shortcut_reads_a_local_copy_under_test_root(tmp_path):
    ref = SHARED_DATA / "multi30k/test_2016_flickr.de"
    result = run_cli("evaluate", f"hyp={ref}", "test=multi30k_2016", f"test_root={SHARED_DATA}",
                     "report_dir=out", "bootstrap=0", "randomization=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["bleu"]["score"] == pytest.approx(100.0) and report["lines"] == 1000 and report["length_buckets"]


@needs_multi30k
def test_test_set_shortcut_reads_sacrebleus_copy_by_default(tmp_path):
    # sacreBLEU keeps processed test sets as $SACREBLEU/<name>/<name_>.<langpair>.{src,ref}; with
    # them in place it downloads nothing, so this runs offline through the default path.
    cached = tmp_path / "sacrebleu/multi30k/2016"
    cached.mkdir(parents=True)
    for field, lang in (("src", "en"), ("ref", "de")):
        original = SHARED_DATA / f"multi30k/test_2016_flickr.{lang}"
        (cached / f"multi30k_2016.en-de.{field}").write_bytes(original.read_bytes())
    hyp = SHARED_DATA / "multi30k/test_2016_flickr.de"
    result = run_cli("evaluate", f"hyp={hyp}", "test=multi30k_2016", "report_dir=out", "bootstrap=0",
                     "randomization=0", cwd=tmp_path, env={"SACREBLEU": str(tmp_path / "sacrebleu")})
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert report["references"] == [str(cached / "multi30k_2016.en-de.ref")] and report["length_buckets"]


def test_a_test_set_that_cannot_be_downloaded_says_to_pass_local_files(monkeypatch):
    import urllib.error

    import sacrebleu.utils

    def offline(*args):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(sacrebleu.utils, "get_reference_files", offline)
    test = EvalSetConfig(sacrebleu="wmt14/full", langpair="en-de", local="wmt14/newstest2014")
    with pytest.raises(NmtError, match="test_root=DIR holding wmt14/newstest2014.en and .de, or ref=FILE"):
        eval_set_files(test, None)
