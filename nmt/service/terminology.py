"""Terminology in the service: the glossary every request gets (decode.glossary), and a /v1 request's
own terms merged over it. Each sentence's translation must contain the target terms of the source
terms found in it (nmt.decoding.glossary); on a clash the request's term wins, since its sender knows
the text at hand."""

from nmt.config import ServeConfig
from nmt.decoding.glossary import Glossary, load_glossary
from nmt.errors import NmtError
from nmt.service.requests import ApiError


class Terminology:
    def __init__(self, config: ServeConfig, constrained_search: bool):
        """constrained_search: whether the engine can honour terms (a CTranslate2 export cannot)."""
        d = config.decode
        if d.glossary is not None and not constrained_search:
            raise NmtError(f"decode.glossary={d.glossary}: a CTranslate2 export has no constrained search, so it "
                           "cannot keep terminology; serve the checkpoint instead")
        self.glossary = load_glossary(d.glossary, d.glossary_ignore_case) if d.glossary is not None else None
        self.ignore_case, self.constrained_search = d.glossary_ignore_case, constrained_search
        self.max_terms, self.max_chars = config.max_glossary_terms, config.max_term_chars

    def for_request(self, pairs: dict[str, str] | None) -> Glossary | None:
        """The service's glossary with a request's `source term -> target term` pairs over it."""
        if not pairs:
            return self.glossary
        if not self.constrained_search:
            raise ApiError(400, "glossary: this service translates with a CTranslate2 export, which has no "
                                "constrained search; send the request without a glossary")
        if len(pairs) > self.max_terms:
            raise ApiError(400, f"Invalid request: glossary has {len(pairs)} terms; the limit is {self.max_terms}")
        for term in (term for pair in pairs.items() for term in pair):
            if len(term) > self.max_chars:
                raise ApiError(400, f"Invalid request: glossary term {term[:30]!r}... has {len(term)} characters; "
                                    f"the limit is {self.max_chars}")
        try:
            own = Glossary.from_pairs(pairs, self.ignore_case, "glossary")
        except NmtError as error:
            raise ApiError(400, f"Invalid request: {error}") from None
        if self.glossary is None:
            return own
        return Glossary({**self.glossary.entries, **own.entries}, self.ignore_case)

    @staticmethod
    def constraints(glossary: Glossary | None, lines: list[str]) -> list[list[str]] | None:
        """Per line, the target terms its translation must contain; None without a glossary."""
        return [glossary.targets(line) for line in lines] if glossary is not None else None
