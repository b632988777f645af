"""The import path of the Python API before the library moved into packages; `nmt.backends` is its
home now, and `from nmt.translator import Translator, load_translator` keeps working."""

from nmt.backends import CT2Translator, Hypothesis, LineTranslator, Translator, load_translator
from nmt.config.decode import SearchSettings

__all__ = ["CT2Translator", "Hypothesis", "LineTranslator", "SearchSettings", "Translator", "load_translator"]
