"""What each endpoint does with a valid request: check it, queue its lines, shape the answer."""

from nmt.config import ServeConfig
from nmt.decoding.search import Hypothesis
from nmt.service.batcher import Batcher
from nmt.service.engine import Engine
from nmt.service.requests import ApiError, check_key, check_lines, validate
from nmt.service.schemas import (
    DetectedLanguage,
    DetectRequest,
    Health,
    Language,
    TranslateRequest,
    TranslateResponse,
    V1Hypothesis,
    V1Request,
    V1Response,
    V1Translation,
)

NAMES = {"ar": "Arabic", "cs": "Czech", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
         "it": "Italian", "ja": "Japanese", "pt": "Portuguese", "ru": "Russian", "zh": "Chinese"}


class Endpoints:
    def __init__(self, engine: Engine, batcher: Batcher, config: ServeConfig):
        self.engine, self.batcher, self.config = engine, batcher, config
        self.keys = frozenset(config.api_keys)

    def languages(self) -> list[Language]:
        source, target = self.config.source_language, self.config.target_language
        return [Language(code=source, name=NAMES.get(source, source), targets=[target])]

    def detect(self, payload: dict) -> list[DetectedLanguage]:
        """The model reads one language, so that is what every text is taken to be (as source=auto)."""
        request = validate(DetectRequest, payload)
        check_key(request.api_key, self.keys)
        return [self._detected()]

    def _detected(self) -> DetectedLanguage:
        return DetectedLanguage(confidence=100.0, language=self.config.source_language)

    def health(self) -> Health:
        c = self.config
        return Health(status="ok", source_language=c.source_language, target_language=c.target_language,
                      beam_size=c.decode.beam_size, queued_lines=self.batcher.queued_lines,
                      api_key_required=bool(self.keys))

    async def _decode(self, lines: list[str], nbest: int, attention: bool) -> list[list[Hypothesis]]:
        if not any(line.strip() for line in lines):
            raise ApiError(400, "invalid request: q is empty")
        check_lines(lines, self.config.max_lines, self.config.max_chars)
        return await self.batcher.translate(lines, self.engine.costs(lines), nbest, attention)

    def _check_nbest(self, key: str, nbest: int) -> None:
        beam = self.config.decode.beam_size
        if nbest > beam:
            raise ApiError(400, f"invalid request: {key} asks for {nbest} translations; the beam keeps {beam}")

    def _check_languages(self, source: str, target: str) -> None:
        c = self.config
        if source not in ("auto", c.source_language):
            raise ApiError(400, f"{source} is not supported as source language; use {c.source_language} or auto")
        if target != c.target_language:
            raise ApiError(400, f"{target} is not supported as target language; use {c.target_language}")

    async def libre_translate(self, payload: dict) -> TranslateResponse:
        """LibreTranslate's answer; a text with several lines is translated line by line."""
        request = validate(TranslateRequest, payload)
        check_key(request.api_key, self.keys)
        if request.format == "html":
            raise ApiError(400, "format html is not supported: this model translates plain text; send format=text")
        self._check_languages(request.source, request.target)
        self._check_nbest("alternatives", request.alternatives + 1)
        texts = [request.q] if isinstance(request.q, str) else request.q
        split = [text.split("\n") for text in texts]
        found = iter(await self._decode([line for lines in split for line in lines], request.alternatives + 1, False))
        per_text = [[next(found) for _ in lines] for lines in split]
        best = [self._join(hyps, 0) for hyps in per_text]
        others = [[self._join(hyps, k) for k in range(1, max(len(h) for h in hyps))] for hyps in per_text]
        single = isinstance(request.q, str)
        detected = self._detected()
        return TranslateResponse(
            translatedText=best[0] if single else best,
            alternatives=(others[0] if single else others) if request.alternatives else None,
            detectedLanguage=(detected if single else [detected] * len(texts)) if request.source == "auto" else None)

    def _join(self, hyps: list[list[Hypothesis]], k: int) -> str:
        """The k-th translation of a text: its lines' k-th hypotheses (a line with fewer keeps its last)."""
        return "\n".join(self.engine.text(h[min(k, len(h) - 1)]) for h in hyps)

    async def translate_v1(self, payload: dict) -> V1Response:
        request = validate(V1Request, payload)
        check_key(request.api_key, self.keys)
        nbest = request.nbest or self.config.decode.nbest
        self._check_nbest("nbest", nbest)
        lines = [request.q] if isinstance(request.q, str) else request.q
        if request.attention and not self.engine.has_attention:
            raise ApiError(400, "attention: this service translates with a CTranslate2 export, which returns no "
                                "attention weights; serve the checkpoint to see them")
        found = await self._decode(lines, nbest, request.attention)
        return V1Response(translations=[self._describe(line, hyps, request.attention)
                                        for line, hyps in zip(lines, found)])

    def _describe(self, line: str, hyps: list[Hypothesis], attention: bool) -> V1Translation:
        source = self.engine.source_tokens(line)
        return V1Translation(source_tokens=source, hypotheses=[V1Hypothesis(
            text=self.engine.text(h), score=h.score, log_prob=h.log_prob, tokens=self.engine.target_tokens(h),
            attention=self.engine.attention(h, len(source)) if attention else None) for h in hyps])
