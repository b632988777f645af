"""Runs Argos Translate or LibreTranslate for tests/test_argos.py, with .venv-libretranslate's Python, offline:

    python tests/argos_harness.py translate PACKAGE FROM TO < lines   install PACKAGE, translate each line
    python tests/argos_harness.py libretranslate ARGS...               LibreTranslate's own command

Argos splits a paragraph into sentences with MiniSBD, whose ONNX model for the source language it
downloads on first use (argostranslate/sbd.py, minisbd/models.py). Here a rule stands in for it: a
sentence ends at ., ! or ? before whitespace. Every connection off this machine is refused, so anything
that tries to download fails loudly instead of reaching the network.
"""

import re
import socket
import sys

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def split_sentences(_sentencizer, text: str) -> list[str]:
    return [sentence for sentence in re.split(r"(?<=[.!?])\s+", text) if sentence]


def _refuse_remote(connect):
    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise OSError(f"the tests run offline: refused a connection to {address}")
        return connect(self, address)
    return guarded


def translate(package: str, src: str, tgt: str) -> None:
    from argostranslate import package as packages
    from argostranslate import translate as argos

    packages.install_from_path(package)
    translation = argos.get_translation_from_codes(src, tgt)
    sys.stdout.reconfigure(encoding="utf-8")
    for line in sys.stdin.buffer.read().decode("utf-8").splitlines():
        print(translation.translate(line))


def libretranslate(args: list[str]) -> None:
    from libretranslate.main import main

    sys.argv = ["libretranslate", *args]
    main()


if __name__ == "__main__":
    socket.socket.connect = _refuse_remote(socket.socket.connect)
    from argostranslate import sbd

    sbd.MiniSBDSentencizer.split_sentences = split_sentences
    command, *rest = sys.argv[1:]
    if command == "translate":
        translate(*rest)
    else:
        libretranslate(rest)
