"""Corpus sources: both hub layouts offline, the hub ids by default, one-line errors, and a
built-in corpus whose held-out splits are held out."""

import pytest
from conftest import ROOT, SHARED_DATA, run_cli
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nmt.choices import Source
from nmt.cli import CONFIG_DIR
from nmt.config import register_configs
from nmt.data import corpus_from_config
from nmt.data.sources import CorpusSpec, open_corpus
from nmt.errors import NmtError

HF_WMT = SHARED_DATA / "hf" / "wmt14"
HF_MULTI30K = SHARED_DATA / "hf" / "bentrevett-multi30k"
needs_shared = pytest.mark.skipif(not HF_WMT.is_dir(), reason="needs ../shared/data")


def _data_config(*overrides):
    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return OmegaConf.to_object(compose("prepare", overrides=list(overrides))).data


def test_wmt14_without_a_path_names_the_hub_dataset():
    data = _data_config("data=wmt14_en_de")
    assert (data.source, data.path, data.hf_config) == (Source.hf, "wmt/wmt14", "de-en")
    assert data.hf_splits == {"train": "train", "valid": "validation", "test": "test"}


def test_multi30k_without_a_path_names_the_hub_dataset():
    data = _data_config("data=multi30k")
    assert (data.source, data.path, data.hf_config) == (Source.hf_columns, "bentrevett/multi30k", None)


def test_a_misspelt_source_fails_at_composition_naming_the_key_and_the_choices(tmp_path):
    result = run_cli("prepare", "data.source=hub", cwd=tmp_path)
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert "data.source" in err and all(kind.value in err for kind in Source)


@needs_shared
def test_multi30k_local_copy_loads_offline_through_the_hub_code_path():
    corpus = corpus_from_config(_data_config("data=multi30k", f"data.path={HF_MULTI30K}"))
    multi30k = SHARED_DATA / "multi30k"
    for split, name in (("train", "train"), ("valid", "val"), ("test", "test_2016_flickr")):
        en = (multi30k / f"{name}.en").read_text(encoding="utf-8").splitlines()
        de = (multi30k / f"{name}.de").read_text(encoding="utf-8").splitlines()
        pairs = list(corpus.pairs(split))
        assert len(pairs) == len(en) and pairs[0] == (en[0], de[0]) and pairs[-1] == (en[-1], de[-1])


@needs_shared
@pytest.mark.parametrize("source,path,config,message", [
    ("hf", HF_MULTI30K, "null", "data.source=hf_columns"),
    ("hf_columns", HF_WMT, "de-en", "data.source=hf$"),
])
def test_the_wrong_hub_layout_names_the_right_source(source, path, config, message):
    with pytest.raises(NmtError, match=message):
        corpus_from_config(_data_config("data=multi30k", f"data.source={source}", f"data.path={path}",
                                        f"data.hf_config={config}"))


def test_builtin_valid_and_test_share_no_source_sentence_with_earlier_splits():
    corpus = open_corpus(CorpusSpec(Source.builtin, "en", "de",
                                    builtin_sizes={"train": 12000, "valid": 300, "test": 300}, builtin_seed=1234))
    train = {src for src, _ in corpus.pairs("train")}
    valid = [src for src, _ in corpus.pairs("valid")]
    test = [src for src, _ in corpus.pairs("test")]
    assert len(valid) == len(test) == 300
    assert not train & set(valid) and not (train | set(valid)) & set(test)


@needs_shared
def test_local_hub_layout_loads_offline_in_both_directions():
    corpus = corpus_from_config(_data_config("data=wmt14_en_de", f"data.path={HF_WMT}"))
    en, de = next(iter(corpus.pairs("test")))
    first = lambda lang: (SHARED_DATA / f"wmt14/newstest2014.{lang}").read_text(encoding="utf-8").splitlines()[0]  # noqa: E731
    assert (en, de) == (first("en"), first("de"))
    reverse = corpus_from_config(_data_config("data=wmt14_en_de", f"data.path={HF_WMT}", "data.src_lang=de",
                                              "data.tgt_lang=en"))
    assert next(iter(reverse.pairs("test"))) == (de, en)
    assert sum(1 for _ in corpus.pairs("valid")) == 3000


@needs_shared
@pytest.mark.parametrize("overrides,message", [
    (["data.hf_config=fr-en"], "fr-en"),
    (["data.src_lang=fr"], "language 'fr' is not in split"),
    (["data.path=/no/such/dataset"], "no such directory"),
])
def test_bad_dataset_settings_are_clear_errors(overrides, message):
    with pytest.raises(NmtError, match=message):
        corpus_from_config(_data_config("data=wmt14_en_de", f"data.path={HF_WMT}", *overrides))


def test_an_unreachable_hub_says_to_pass_a_local_path(tmp_path):
    result = run_cli("prepare", "data=wmt14_en_de", "data.path=wmt/wmt14", cwd=tmp_path,
                     env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    err = result.stderr.decode().strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert "data.path=" in err


@needs_shared
def test_prepare_cli_runs_offline_on_the_local_wmt14_copy(tmp_path):
    result = run_cli("prepare", "data=wmt14_en_de", f"data.path={HF_WMT}", "data.vocab_size=2000",
                     "data.spm_sample_sentences=20000", cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 0, result.stderr.decode()
    cache = tmp_path / result.stdout.decode().strip().splitlines()[-1]
    assert (cache / "valid.tgt.txt").read_text(encoding="utf-8").count("\n") == 3000
    assert (cache / "test.src.txt").read_text(encoding="utf-8").count("\n") == 3003


def test_no_product_file_names_this_machines_data_directory():
    files = [p for folder in ("nmt", "configs") for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".yaml")]
    assert files and not [p for p in files if "shared/data" in p.read_text(encoding="utf-8")]
