"""An export as an Argos Translate package, which Argos Translate and LibreTranslate install as they
install their own: `translate-<src>_<tgt>-<version>.argosmodel`, a zip of one directory that holds
`metadata.json`, `sentencepiece.model`, the CTranslate2 directory as `model/`, and a `README.md`.

What Argos does with a package (argos-translate-lt 1.12.1, the Argos of LibreTranslate 1.9.6):
- translate.py decodes each sentence with `translate_batch(beam_size=4, length_penalty=0.2,
  replace_unknowns=True)` and CTranslate2's defaults otherwise (at most 256 output tokens), which is
  our decode.beam_size=4 decode.length_norm=power decode.length_penalty=0.2;
- tokenizer.py joins the output pieces with sentencepiece and turns every `_` into a space;
- sbd.py splits a paragraph into sentences with MiniSBD, whose model for the source language it
  downloads on first use unless the package holds one as `minisbd/*.onnx`.
Argos cannot be told what our decoders forbid, so the package's model itself never produces PAD, BOS
or UNK (a logit bias, see ct2_export.transformer_spec): it translates as `nmt.translate` does with the
plain export, and replace_unknowns never has an UNK to replace.
"""

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from nmt.backends.ct2_export import METADATA, VOCAB_FILE, export_checkpoint
from nmt.choices import Quantization
from nmt.data.vocab import NEVER_PRODUCED
from nmt.errors import NmtError

# Argos reads the field and checks nothing (package.py); this is the Argos the tests install.
ARGOS_VERSION = "1.12.1"
# English names of ISO 639-1 codes, LibreTranslate's languages among them; others come from the config.
LANGUAGE_NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "ga": "Irish", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian",
    "nb": "Norwegian Bokmål", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian",
    "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sq": "Albanian", "sv": "Swedish", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}
# Where in a package Argos looks for its files (package.py, translate.py).
ARGOS_METADATA, ARGOS_VOCAB, ARGOS_MODEL, ARGOS_README = "metadata.json", "sentencepiece.model", "model", "README.md"


def package_name(src: str, tgt: str, version: str) -> str:
    return f"translate-{src}_{tgt}-{version}"


def _language_name(code: str, given: str | None, key: str) -> str:
    if given:
        return given
    if code not in LANGUAGE_NAMES:
        raise NmtError(f"{key}: no name known for the language code {code!r}; give the name Argos and "
                       f"LibreTranslate show, as {key}=...")
    return LANGUAGE_NAMES[code]


def _readme(src: tuple[str, str], tgt: tuple[str, str], export: dict, version: str) -> str:
    return (f"# {src[1]} → {tgt[1]}\n\n"
            f"A Transformer trained with nmt ({export['parameters']:,} parameters, step {export['step']}), "
            f"exported to CTranslate2 ({export['quantization']}) as package version {version}.\n\n"
            "Argos Translate decodes each sentence with beam 4 and CTranslate2's length_penalty=0.2, which "
            "`python -m nmt.translate checkpoint=model decode.beam_size=4 decode.length_norm=power "
            "decode.length_penalty=0.2 decode.max_len_a=0 decode.max_len_b=255` repeats, but for `_`, which Argos "
            "turns into a space. The model never produces `<unk>`, `<s>` or `<pad>`.\n")


def write_argos_package(checkpoint: str | Path, output: str | Path, languages: tuple[str | None, str | None],
                        names: tuple[str | None, str | None] = (None, None), version: str = "1.0",
                        quantization: Quantization = Quantization.none, overwrite: bool = False,
                        alignment_layer: int = -1) -> Path:
    """Write output/translate-<src>_<tgt>-<version>.argosmodel for a Transformer checkpoint; returns its path.
    It is built in a temporary directory beside it and renamed into place: nothing half-written is left."""
    src, tgt = languages
    if not src or not tgt:
        raise NmtError(f"checkpoint {checkpoint}: its languages are unknown (no run config.yaml beside "
                       "checkpoints/), and an Argos package needs them; pass src_lang=... tgt_lang=...")
    src_name, tgt_name = _language_name(src, names[0], "src_name"), _language_name(tgt, names[1], "tgt_name")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise NmtError(f"output={output}: a file is in the way; package=argos writes its package into a directory")
    name = package_name(src, tgt, version)
    path = output / f"{name}.argosmodel"
    if path.exists() and not overwrite:
        raise NmtError(f"output={output}: {path.name} exists; pass overwrite=true to replace it, or another "
                       "package_version")
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=output) as work:
        top = Path(work) / name
        top.mkdir()
        model = export_checkpoint(checkpoint, top / ARGOS_MODEL, quantization, languages=(src, tgt),
                                  alignment_layer=alignment_layer, never_produced=NEVER_PRODUCED)
        shutil.copyfile(model / VOCAB_FILE, top / ARGOS_VOCAB)
        metadata = {"package_version": version, "argos_version": ARGOS_VERSION, "from_code": src,
                    "from_name": src_name, "to_code": tgt, "to_name": tgt_name, "type": "translate"}
        (top / ARGOS_METADATA).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        export = json.loads((model / METADATA).read_text(encoding="utf-8"))
        (top / ARGOS_README).write_text(_readme((src, src_name), (tgt, tgt_name), export, version), encoding="utf-8")
        built = Path(work) / "package.zip"
        with zipfile.ZipFile(built, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(top.rglob("*")):
                archive.write(file, file.relative_to(work))
        os.replace(built, path)
    return path
