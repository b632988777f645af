"""Our models in Argos Translate and LibreTranslate themselves (`python -m nmt.export package=argos`): the
package's layout, Argos's Python API translating as `nmt.translate` does, and LibreTranslate serving it.

Argos and LibreTranslate pin dependencies of their own, so they live in .venv-libretranslate
(scripts/setup_libretranslate.sh, which scripts/test.sh calls) and run as subprocesses through
tests/argos_harness.py, offline: a rule stands in for the sentence splitter Argos would download, and
every connection off the machine is refused. Without that venv those tests skip, saying so.
"""

import json
import os
import socket
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import ctranslate2
import pytest
from conftest import PRE_NORM_ONLY, ROOT, SHARED_DATA, run_cli

from nmt.backends.ct2 import CT2Translator
from nmt.choices import LengthNorm
from nmt.cli import compose_config
from nmt.config import SearchSettings
from nmt.data.builtin import generate_pairs
from nmt.errors import NmtError

ARGOS_PYTHON = ROOT / ".venv-libretranslate" / "bin" / "python"
HARNESS = ROOT / "tests" / "argos_harness.py"
needs_argos = pytest.mark.skipif(not ARGOS_PYTHON.is_file(),
                                 reason="needs .venv-libretranslate: bash scripts/setup_libretranslate.sh")
MULTI30K = SHARED_DATA / "multi30k" / "test_2016_flickr.en"
needs_multi30k = pytest.mark.skipif(not MULTI30K.is_file(), reason="needs ../shared/data/multi30k")
# How Argos decodes (argostranslate/translate.py): beam 4, CTranslate2's length_penalty=0.2 and its default
# cap of 256 decoding steps, in our settings. The CLI runs one thread, as the harness's Argos does.
ARGOS_SETTINGS = SearchSettings(beam_size=4, length_norm=LengthNorm.power, length_penalty=0.2, max_len_a=0,
                                max_len_b=255)
ARGOS_DECODING = tuple(f"decode.{key}={getattr(ARGOS_SETTINGS, key)}" for key in ("beam_size", "length_penalty",
                                                                                "max_len_a", "max_len_b")) + (
    f"decode.length_norm={ARGOS_SETTINGS.length_norm.value}",)
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
PACKAGE = "translate-en_de-1.0"


@pytest.fixture(scope="module")
def package(trained_transformer, tmp_path_factory) -> Path:
    """trained_transformer as an Argos package, written by the export command; its path."""
    output = tmp_path_factory.mktemp("packages")
    result = run_cli("export", f"checkpoint={trained_transformer}", f"output={output}", "package=argos", cwd=output,
                     env=ONE_THREAD)
    assert result.returncode == 0, result.stderr.decode()
    return output / f"{PACKAGE}.argosmodel"


def argos_environment(home: Path, **extra: str) -> dict[str, str]:
    """Argos keeps its settings, packages and downloads under these; a test's own directory holds them all."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return environment | {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
                          "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
                          "ARGOS_PACKAGES_DIR": str(home / "packages"), "ARGOS_INTRA_THREADS": "1"} | extra


@PRE_NORM_ONLY
def test_the_package_is_one_directory_with_argos_metadata_vocabulary_model_and_readme(package, trained_transformer):
    assert [p.name for p in package.parent.iterdir()] == [package.name]  # nothing else left beside it
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        assert {name.split("/")[0] for name in names} == {PACKAGE}
        assert {f"{PACKAGE}/{name}" for name in ("metadata.json", "sentencepiece.model", "README.md",
                                                 "model/model.bin", "model/config.json")} <= names
        metadata = json.loads(archive.read(f"{PACKAGE}/metadata.json"))
        assert archive.read(f"{PACKAGE}/sentencepiece.model") == archive.read(f"{PACKAGE}/model/spm.model")
        assert "English → German" in archive.read(f"{PACKAGE}/README.md").decode()
    assert metadata == {"package_version": "1.0", "argos_version": "1.12.1", "from_code": "en",
                        "from_name": "English", "to_code": "de", "to_name": "German", "type": "translate"}


@PRE_NORM_ONLY
def test_the_packages_model_never_produces_pad_bos_or_unk_and_decodes_past_its_positions(package, tmp_path):
    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path)
    model = ctranslate2.Translator(str(tmp_path / PACKAGE / "model"), intra_threads=1)
    source = [["▁A", "▁red", "▁book", "."]]
    for special in ("<pad>", "<s>", "<unk>"):
        assert model.score_batch(source, [[special]])[0].log_probs[0] < -1000
    # The model has 128 positions; Argos lets CTranslate2 decode up to 256 tokens.
    long = model.translate_batch(source, beam_size=1, min_decoding_length=200, max_decoding_length=256)
    assert len(long[0].hypotheses[0]) >= 200


def test_package_settings_are_checked_when_the_config_is_composed():
    with pytest.raises(NmtError, match="package_version"):
        compose_config("export", ["checkpoint=x", "output=y", "package=argos", "package_version=v1"])
    with pytest.raises(NmtError, match="src_name/tgt_name"):
        compose_config("export", ["checkpoint=x", "output=y", "src_name=English"])


@PRE_NORM_ONLY
def test_a_language_without_a_known_name_or_an_existing_package_is_one_line(package, trained_transformer, tmp_path):
    unnamed = run_cli("export", f"checkpoint={trained_transformer}", "output=out", "package=argos", "tgt_lang=xx",
                      cwd=tmp_path)
    assert unnamed.returncode != 0 and unnamed.stderr.decode().strip().splitlines() == [
        ("error: tgt_name: no name known for the language code 'xx'; give the name Argos and LibreTranslate show, "
         "as tgt_name=...")]
    again = run_cli("export", f"checkpoint={trained_transformer}", f"output={package.parent}", "package=argos",
                    cwd=tmp_path)
    assert again.returncode != 0 and len(again.stderr.decode().strip().splitlines()) == 1
    assert "overwrite=true" in again.stderr.decode()


@needs_argos
@needs_multi30k
@PRE_NORM_ONLY
def test_argos_translates_multi30k_as_nmt_translate_does_with_its_settings(package, exported, tmp_path):
    # The tiny model learned the built-in corpus, not Multi30k: its outputs are German-like words, yet
    # they end with EOS well before the cap, so the two decoders are compared on real search.
    sources = MULTI30K.read_text(encoding="utf-8").splitlines()[:100]
    (tmp_path / "src.en").write_text("\n".join(sources) + "\n", encoding="utf-8")
    ours = run_cli("translate", f"checkpoint={exported}", "input=src.en", "output=ours.de", *ARGOS_DECODING,
                   cwd=tmp_path, env=ONE_THREAD)
    assert ours.returncode == 0, ours.stderr.decode()
    argos = subprocess.run([ARGOS_PYTHON, HARNESS, "translate", package, "en", "de"], input="\n".join(sources).encode(),
                           capture_output=True, env=argos_environment(tmp_path / "argos"), timeout=300, check=False)
    assert argos.returncode == 0, argos.stderr.decode()
    theirs = argos.stdout.decode().splitlines()
    # Argos turns every "_" into a space (argostranslate/tokenizer.py); no Multi30k line has two sentences.
    ours_as_argos = [line.replace("_", " ") for line in (tmp_path / "ours.de").read_text(encoding="utf-8").splitlines()]
    assert len(theirs) == len(ours_as_argos) == 100
    agreed = sum(a == b for a, b in zip(ours_as_argos, theirs))
    assert agreed >= 99, f"Argos and nmt.translate agree on {agreed} of 100 sentences"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@needs_argos
@PRE_NORM_ONLY
def test_libretranslate_serves_the_package_offline_as_nmt_translates(package, exported, tmp_path):
    home, index = tmp_path / "argos", tmp_path / "index"
    install = subprocess.run([ARGOS_PYTHON, HARNESS, "translate", package, "en", "de"], input=b"",
                             capture_output=True, env=argos_environment(home), timeout=120, check=False)
    assert install.returncode == 0, install.stderr.decode()
    # With fewer than two packages LibreTranslate fetches its index and downloads models (libretranslate/init.py).
    # An empty local index and --load-only en,de end that at once: "Unavailable language codes: de,en".
    index.mkdir()
    (index / "index.json").write_text("[]", encoding="utf-8")
    port = _free_port()
    log = tmp_path / "libretranslate.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([ARGOS_PYTHON, HARNESS, "libretranslate", "--host", "127.0.0.1", "--port", str(port),
                                   "--load-only", "en,de", "--disable-files-translation"],
                                  stdout=output, stderr=subprocess.STDOUT,
                                  env=argos_environment(home, ARGOS_PACKAGE_INDEX=index.as_uri() + "/"))
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                languages = _get(f"{url}/languages")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert {(lang["code"], lang["name"]) for lang in languages} == {("en", "English"), ("de", "German")}
        # Sentences the model knows, whose translations end as their sources do: LibreTranslate's
        # improve_translation_formatting (libretranslate/language.py) leaves them as they are.
        sentences = [source for source, _ in generate_pairs(3, 7)]
        answer = _get(f"{url}/translate", {"q": sentences, "source": "en", "target": "de"})
    finally:
        server.terminate()
        server.wait(timeout=30)
    ours = CT2Translator.from_directory(exported, "cpu", threads=1).translate(sentences, ARGOS_SETTINGS)
    assert answer == {"translatedText": ours}
    assert all(line.endswith(".") for line in ours)
    served = log.read_text()
    assert "Unavailable language codes: de,en" in served and "Downloading" not in served
