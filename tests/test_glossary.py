"""Glossary terms are found as whole words, longest first, overlaps resolved, case as asked; bad glossary
and constraint files are one line naming the file and line; translate keeps every term."""

import pytest
from conftest import run_cli

from nmt.config import DecodeConfig
from nmt.decoding.glossary import Glossary, line_constraints, load_constraints, load_glossary
from nmt.errors import NmtError


def glossary(ignore_case: bool = False, **pairs: str) -> Glossary:
    return Glossary.from_pairs({k.replace("_", " "): v for k, v in pairs.items()}, ignore_case)


def test_terms_match_whole_words_only():
    terms = glossary(cat="Katze")
    assert terms.targets("the cat sleeps.") == ["Katze"]
    assert terms.targets("a category of cats") == []


def test_the_longest_match_wins_where_terms_overlap():
    terms = glossary(New_York="New York", New_York_City="NYC", City_Hall="Rathaus")
    # "New York City" (3 words) beats "New York"; "City Hall" overlaps it and is dropped.
    assert terms.targets("New York City Hall opens") == ["NYC"]
    assert terms.targets("New York and City Hall") == ["New York", "Rathaus"]


def test_terms_are_listed_in_the_order_they_occur_and_each_once():
    terms = glossary(dog="Hund", cat="Katze")
    assert terms.targets("the cat sees the dog and the cat") == ["Katze", "Hund"]


def test_matching_is_case_sensitive_unless_asked():
    assert glossary(Apple="Apple Inc.").targets("an apple") == []
    assert glossary(True, Apple="Apple Inc.").targets("an APPLE") == ["Apple Inc."]


def test_punctuation_in_a_term_is_matched_as_written():
    assert glossary(**{"C++": "C++"}).targets("I write C++ code") == ["C++"]


@pytest.mark.parametrize("content,where", [
    (b"cat\tKatze\ndog\n", "g.tsv:2"),
    (b"cat\tKatze\ndog\tHund\textra\n", "g.tsv:2"),
    (b"cat\tKatze\n\tHund\n", "g.tsv:2"),
    (b"cat\tKatze\ndog\tHund\n\xff\tx\n", "g.tsv"),
])
def test_a_bad_glossary_line_is_one_error_naming_file_and_line(tmp_path, content, where):
    (tmp_path / "g.tsv").write_bytes(content)
    with pytest.raises(NmtError, match=where):
        load_glossary(tmp_path / "g.tsv")


def test_a_glossary_skips_blank_lines(tmp_path):
    (tmp_path / "g.tsv").write_text("cat\tKatze\n\ndog\tHund\n", encoding="utf-8")
    assert load_glossary(tmp_path / "g.tsv").targets("cat and dog") == ["Katze", "Hund"]


def test_constraint_files_need_one_line_per_input_line(tmp_path):
    (tmp_path / "c.txt").write_text("Hund\tKatze\n\nVogel\n", encoding="utf-8")
    assert load_constraints(tmp_path / "c.txt", 3) == [["Hund", "Katze"], [], ["Vogel"]]
    with pytest.raises(NmtError, match="3 lines for 2 input lines"):
        load_constraints(tmp_path / "c.txt", 2)


def test_glossary_and_constraint_file_together_give_each_line_both(tmp_path):
    (tmp_path / "g.tsv").write_text("dog\tHund\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("Katze\n\n", encoding="utf-8")
    decode = DecodeConfig(glossary=str(tmp_path / "g.tsv"), constraints=str(tmp_path / "c.txt"))
    assert line_constraints(decode, ["the dog", "a dog"]) == [["Katze", "Hund"], ["Hund"]]
    assert line_constraints(DecodeConfig(), ["the dog"]) is None


def test_translate_keeps_every_glossary_term_and_one_line_per_line(trained_run, tmp_path):
    (tmp_path / "g.tsv").write_text("cat\tVogel\nbook\tHund\n", encoding="utf-8")
    lines = "the cat sees the dog .\n\na man reads a book .\nhello\n"
    result = run_cli("translate", f"checkpoint={trained_run / 'checkpoints' / 'best.pt'}",
                     f"decode.glossary={tmp_path / 'g.tsv'}", cwd=tmp_path, stdin=lines.encode())
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode().split("\n")
    assert len(out) == 5 and out[1] == "" and out[4] == ""
    assert "Vogel" in out[0] and "Hund" in out[2]


def test_an_export_refuses_a_glossary_with_one_line(tmp_path, trained_transformer):
    from nmt.backends.ct2_export import export_checkpoint

    export_checkpoint(trained_transformer, tmp_path / "ct2")
    (tmp_path / "g.tsv").write_text("cat\tVogel\n", encoding="utf-8")
    result = run_cli("translate", f"checkpoint={tmp_path / 'ct2'}", f"decode.glossary={tmp_path / 'g.tsv'}",
                     "decode.length_norm=average", cwd=tmp_path, stdin=b"the cat\n")
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and "no constrained search" in err
