"""Export to CTranslate2 (`python -m nmt.export`) and translation with an exported directory."""

import json
from pathlib import Path

import pytest
import torch
from conftest import PRE_NORM_ONLY, run_cli
from ctranslate2.specs.transformer_spec import TransformerSpec
from sacrebleu import corpus_bleu

from nmt.backends import Translator, load_translator
from nmt.backends.ct2 import CT2Translator
from nmt.backends.ct2_export import export_checkpoint
from nmt.choices import LengthNorm, Precision, Quantization
from nmt.config import SearchSettings
from nmt.data.builtin import generate_pairs

# A fixed set of sentences, drawn with another seed than the training corpus's.
SENTENCES, REFERENCES = map(list, zip(*generate_pairs(100, 99)))


def one_line_error(result) -> str:
    """The stderr of a failed command, which must be exactly one line."""
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr.decode()
    return lines[0]


def rescored(translator: Translator, line: str, tokens: list[int], settings: SearchSettings) -> float:
    """The score our model gives `tokens` (then EOS) as the translation of `line`: forced decoding."""
    ids, _ = translator.encode_lines([line])
    return translator.score_ids(ids, [tokens], settings, 8000, Precision.fp32, None)[0].score


def test_greedy_from_an_export_gives_the_same_tokens_as_ours(trained_transformer, exported):
    settings = SearchSettings(beam_size=1, length_norm=LengthNorm.average)
    ours = Translator.from_checkpoint(trained_transformer, "cpu").translate_hypotheses(SENTENCES, settings)
    theirs = CT2Translator.from_directory(exported, "cpu").translate_hypotheses(SENTENCES, settings)
    assert sum(a[0].tokens == b[0].tokens for a, b in zip(ours, theirs)) >= 0.99 * len(SENTENCES)


# average and power are the length normalizations both decoders share (CTranslate2's length_penalty=1 and
# length_penalty=alpha; beam 4 and alpha 0.2 are what Argos Translate decodes with).
@pytest.mark.parametrize("settings", [SearchSettings(beam_size=5, length_norm=LengthNorm.average),
                                      SearchSettings(beam_size=4, length_norm=LengthNorm.power, length_penalty=0.2)],
                         ids=["average", "power"])
def test_beam_search_from_an_export_gives_our_tokens_or_ours_scores_better(trained_transformer, exported, settings):
    # CTranslate2 stops a sentence early by a rule of thumb where our beam search stops only when nothing
    # can beat its best, so where the two differ, ours must score at least as well under our model.
    translator = Translator.from_checkpoint(trained_transformer, "cpu")
    ours = translator.translate_hypotheses(SENTENCES, settings)
    theirs = CT2Translator.from_directory(exported, "cpu").translate_hypotheses(SENTENCES, settings)
    differ = [(line, a[0], b[0]) for line, a, b in zip(SENTENCES, ours, theirs) if a[0].tokens != b[0].tokens]
    # How often that early stop bites depends on the tiny model trained: 1 to 6 of these 100 sentences
    # for the two models and two settings here. A broken export would differ on most.
    assert len(differ) <= 0.10 * len(SENTENCES)
    for line, our, their in differ:
        assert our.score >= rescored(translator, line, their.tokens, settings) - 1e-4


@PRE_NORM_ONLY
def test_the_loader_picks_the_backend_from_the_path(trained_transformer, exported):
    assert isinstance(load_translator(trained_transformer, "cpu"), Translator)
    assert isinstance(load_translator(exported, "cpu"), CT2Translator)


@PRE_NORM_ONLY
def test_an_export_keeps_our_per_sentence_length_caps(exported):
    settings = SearchSettings(beam_size=5, length_norm=LengthNorm.average, max_len_a=0.5, max_len_b=1)
    translator = CT2Translator.from_directory(exported, "cpu")
    hyps = translator.translate_hypotheses(SENTENCES, settings)
    caps = [int(0.5 * len(ids) + 1) for ids in translator.vocab.encode(SENTENCES)]
    assert all(len(h[0].tokens) <= cap for h, cap in zip(hyps, caps))
    assert sum(len(h[0].tokens) == cap for h, cap in zip(hyps, caps)) > len(SENTENCES) / 2  # the caps bind
    assert len(set(caps)) > 1


@PRE_NORM_ONLY
def test_an_export_returns_nbest_ranked_with_length_normalized_scores(exported):
    settings = SearchSettings(beam_size=5, length_norm=LengthNorm.average, nbest=3)
    hyps = CT2Translator.from_directory(exported, "cpu").translate_hypotheses(SENTENCES[:10], settings)
    for nbest in hyps:
        assert len(nbest) == 3
        assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
        # average: the log-probability over the length with the EOS counted.
        assert nbest[0].score == pytest.approx(nbest[0].log_prob / (len(nbest[0].tokens) + 1))


@PRE_NORM_ONLY
def test_an_int8_export_loads_and_translates_about_as_well(trained_transformer, exported, tmp_path):
    int8 = export_checkpoint(trained_transformer, tmp_path / "int8", Quantization.int8)
    assert (int8 / "model.bin").stat().st_size < (exported / "model.bin").stat().st_size / 2
    settings = SearchSettings(beam_size=1, length_norm=LengthNorm.average)
    float32 = CT2Translator.from_directory(exported, "cpu").translate(SENTENCES, settings)
    quantized = CT2Translator.from_directory(int8, "cpu").translate(SENTENCES, settings)
    assert all(quantized)
    # A 64-wide model is fragile under int8; its BLEU still stays within a few points.
    assert corpus_bleu(quantized, [REFERENCES]).score >= corpus_bleu(float32, [REFERENCES]).score - 3


@PRE_NORM_ONLY
@pytest.mark.parametrize("quantization", [Quantization.int16, Quantization.float16])
def test_every_other_quantization_exports_a_model_that_translates(trained_transformer, tmp_path, quantization):
    directory = export_checkpoint(trained_transformer, tmp_path / "ct2", quantization)
    assert json.loads((directory / "nmt_export.json").read_text())["quantization"] == quantization.value
    settings = SearchSettings(beam_size=1, length_norm=LengthNorm.average)
    assert all(CT2Translator.from_directory(directory, "cpu").translate(SENTENCES[:10], settings))


@PRE_NORM_ONLY
def test_the_export_command_writes_model_vocabulary_and_metadata(trained_transformer, tmp_path):
    result = run_cli("export", f"checkpoint={trained_transformer}", "output=ct2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    files = {p.name for p in (tmp_path / "ct2").iterdir()}
    assert {"model.bin", "config.json", "shared_vocabulary.json", "spm.model", "nmt_export.json"} <= files
    metadata = json.loads((tmp_path / "ct2" / "nmt_export.json").read_text())
    assert (metadata["src_lang"], metadata["tgt_lang"], metadata["step"]) == ("en", "de", 180)
    assert metadata["model_config"]["d_model"] == 64 and metadata["quantization"] == "none"


@PRE_NORM_ONLY
def test_translate_accepts_an_export_with_one_line_per_input_and_nbest_scores(exported, tmp_path):
    result = run_cli("translate", f"checkpoint={exported}", "decode.length_norm=average", "decode.nbest=2",
                     cwd=tmp_path, stdin="A red book finds the new man.\n\nTwo dogs.\n".encode())
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().split("\n")[:-1]
    assert len(lines) == 3 and lines[1].split("\t")[0] == ""  # a blank line's translation is empty
    fields = lines[0].split("\t")
    assert len(fields) == 4 and float(fields[1]) >= float(fields[3])


@PRE_NORM_ONLY
def test_an_export_translates_with_the_default_settings_saying_how_it_approximates_gnmt(exported, tmp_path):
    result = run_cli("translate", f"checkpoint={exported}", "decode.nbest=3", cwd=tmp_path,
                     stdin=b"A red book finds the new man.\n\nTwo dogs.\n")
    assert result.returncode == 0, result.stderr.decode()
    notes = [line for line in result.stderr.decode().splitlines() if "length_norm=gnmt" in line]
    assert len(notes) == 1 and "length_penalty=0.6" in notes[0]
    lines = result.stdout.decode().split("\n")[:-1]
    assert len(lines) == 3 and lines[1].split("\t")[0] == ""
    scores = [float(x) for x in lines[0].split("\t")[1::2]]
    assert scores == sorted(scores, reverse=True)  # GNMT scores, best first


def test_exporting_a_gru_is_refused_with_one_line_saying_what_to_use(tiny_gru_checkpoint, tmp_path):
    line = one_line_error(run_cli("export", f"checkpoint={tiny_gru_checkpoint}", "output=ct2", cwd=tmp_path))
    assert "no CTranslate2 counterpart" in line and "nmt.translate" in line and "decode.quantize=int8" in line
    assert not (tmp_path / "ct2").exists()


@pytest.mark.parametrize("case", ["missing checkpoint", "corrupt checkpoint", "non-empty output", "quantization"])
def test_bad_export_inputs_are_one_line(tmp_path, case):
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    checkpoint, output, extra, named = {
        "missing checkpoint": ("missing.pt", "out", [], "missing.pt"),
        "corrupt checkpoint": ("corrupt.pt", "out", [], "corrupt.pt"),
        "non-empty output": ("corrupt.pt", "full", [], "overwrite=true"),
        "quantization": ("corrupt.pt", "out", ["quantization=int4"], "quantization"),
    }[case]
    result = run_cli("export", f"checkpoint={checkpoint}", f"output={output}", *extra, cwd=tmp_path)
    assert named in one_line_error(result)
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


@PRE_NORM_ONLY
def test_a_failed_export_leaves_the_previous_directory_and_no_half_written_one(trained_transformer, tmp_path,
                                                                                monkeypatch):
    output = tmp_path / "exports" / "ct2"
    output.mkdir(parents=True)
    (output / "model.bin").write_text("the previous export")

    def save_half_then_fail(self, directory):
        (Path(directory) / "model.bin").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TransformerSpec, "save", save_half_then_fail)
    with pytest.raises(OSError):
        export_checkpoint(trained_transformer, output, overwrite=True)
    assert [p.name for p in output.parent.iterdir()] == ["ct2"]
    assert (output / "model.bin").read_text() == "the previous export"


@PRE_NORM_ONLY
def test_overwrite_replaces_a_previous_export(trained_transformer, tmp_path):
    output = tmp_path / "ct2"
    output.mkdir()
    (output / "stale.txt").write_text("old")
    export_checkpoint(trained_transformer, output, overwrite=True)
    assert not (output / "stale.txt").exists() and (output / "model.bin").is_file()


@pytest.mark.parametrize("layer", [-1, 0])
@PRE_NORM_ONLY
def test_an_export_returns_the_attention_of_the_layer_chosen_at_export_as_ours(trained_transformer, tmp_path, layer):
    exported_here = export_checkpoint(trained_transformer, tmp_path / "ct2", alignment_layer=layer)
    settings = SearchSettings(beam_size=1, length_norm=LengthNorm.average)
    theirs = load_translator(exported_here, "cpu").translate_hypotheses(SENTENCES[:8], settings, attention_layer=layer)
    ours = Translator.from_checkpoint(trained_transformer, "cpu").translate_hypotheses(SENTENCES[:8], settings,
                                                                                        attention_layer=layer)
    same = [(mine[0], other[0]) for mine, other in zip(ours, theirs) if mine[0].tokens == other[0].tokens]
    assert len(same) >= 7  # greedy search on the same weights; a near tie may go either way
    for mine, other in same:
        rows, columns = other.attention.shape  # the source and its EOS; ours are padded to the batch's longest
        assert torch.allclose(other.attention, mine.attention[:rows, :columns], atol=1e-5)


@PRE_NORM_ONLY
def test_asking_an_export_for_another_layers_attention_is_one_line_saying_to_export_again(exported, tmp_path):
    (tmp_path / "in.txt").write_text("the dog\n")
    result = run_cli("translate", f"checkpoint={exported}", "input=in.txt", "decode.length_norm=average",
                     "attention_dir=att", "attention_layer=0", cwd=tmp_path)
    assert "export again with alignment_layer=0" in one_line_error(result)


@PRE_NORM_ONLY
def test_an_alignment_layer_the_model_lacks_is_refused_with_one_line(trained_transformer, tmp_path):
    result = run_cli("export", f"checkpoint={trained_transformer}", "output=out", "alignment_layer=5", cwd=tmp_path)
    assert "alignment_layer=5: the model has 2 decoder layers" in one_line_error(result)
