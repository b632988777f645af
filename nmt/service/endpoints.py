"""What each endpoint does with a request: pass its client's limits and key, check it, queue its
lines, shape the answer. LibreTranslate's endpoints answer as LibreTranslate 1.9 does (response
shapes, status codes, the error messages its clients match on); /v1/translate is this project's own."""

import asyncio
import json
import threading
from pathlib import Path, PurePath

from nmt.config import ServeConfig
from nmt.decoding.alignment import AlignedUnit
from nmt.decoding.glossary import Glossary
from nmt.decoding.search import Hypothesis
from nmt.io import append_line
from nmt.service import markup
from nmt.service.batcher import Batcher
from nmt.service.documents import EXTENSIONS, read_document
from nmt.service.engine import Engine
from nmt.service.files import FileStore, download_name
from nmt.service.limits import RateLimiter
from nmt.service.requests import ApiError, Upload, check_key, check_lines, validate
from nmt.service.schemas import (
    DetectedLanguage,
    DetectRequest,
    FrontendLanguages,
    FrontendSettings,
    Health,
    Language,
    LanguageName,
    SuggestRequest,
    SuggestResponse,
    TranslateFileRequest,
    TranslateFileResponse,
    TranslateRequest,
    TranslateResponse,
    V1Hypothesis,
    V1Request,
    V1Response,
    V1Translation,
)
from nmt.service.terminology import Terminology

NAMES = {"ar": "Arabic", "cs": "Czech", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
         "it": "Italian", "ja": "Japanese", "pt": "Portuguese", "ru": "Russian", "zh": "Chinese"}
# /frontend/settings' frontendTimeout: LibreTranslate's default; its web page waits this long after typing.
FRONTEND_TIMEOUT_MS = 500


class Endpoints:
    def __init__(self, engine: Engine, batcher: Batcher, config: ServeConfig, files: FileStore):
        self.engine, self.batcher, self.config, self.files = engine, batcher, config, files
        self.keys = frozenset(config.api_keys)
        self.limiter = RateLimiter(config.req_limit) if config.req_limit != -1 else None
        self.terminology = Terminology(config, engine.has_constraints)
        self._suggestions_lock = threading.Lock()

    def _gate(self, route: str, payload: dict, client: str, cost: int = 1) -> None:
        """LibreTranslate's order: the client's request limit, then its key, before anything else is read.
        A client is its key when it has a valid one, else its address."""
        key = payload.get("api_key") if isinstance(payload.get("api_key"), str) else ""
        if self.limiter is not None:
            self.limiter.admit(route, key if key in self.keys else client, cost)
        check_key(key, self.keys)

    def languages(self) -> list[Language]:
        """Both languages, each with its targets: clients look for the source and the target code here."""
        source, target = self.config.source_language, self.config.target_language
        return [Language(code=source, name=NAMES.get(source, source), targets=[target]),
                Language(code=target, name=NAMES.get(target, target), targets=[])]

    def detect(self, payload: dict, client: str) -> list[DetectedLanguage]:
        """The model reads one language, so that is what every text is taken to be (as source=auto)."""
        self._gate("/detect", payload, client)
        request = validate(DetectRequest, payload)
        if not any(text.strip() for text in ([request.q] if isinstance(request.q, str) else request.q)):
            raise ApiError(400, "Invalid request: missing q parameter")
        return [self._detected()]

    def _detected(self) -> DetectedLanguage:
        return DetectedLanguage(confidence=100.0, language=self.config.source_language)

    def health(self) -> Health:
        c = self.config
        return Health(status="ok", source_language=c.source_language, target_language=c.target_language,
                      beam_size=c.decode.beam_size, queued_lines=self.batcher.queued_lines,
                      api_key_required=bool(self.keys))

    def frontend_settings(self) -> FrontendSettings:
        c = self.config
        source, target = c.source_language, c.target_language
        return FrontendSettings(
            # A text of one line is bounded by max_chars when no char_limit is set.
            charLimit=c.char_limit if c.char_limit != -1 else c.max_chars, frontendTimeout=FRONTEND_TIMEOUT_MS,
            apiKeys=bool(self.keys), keyRequired=bool(self.keys), suggestions=c.suggestions,
            filesTranslation=c.files_translation, supportedFilesFormat=list(EXTENSIONS) if c.files_translation else [],
            language=FrontendLanguages(source=LanguageName(code=source, name=NAMES.get(source, source)),
                                       target=LanguageName(code=target, name=NAMES.get(target, target))))

    async def _decode(self, lines: list[str], nbest: int, attention: bool,
                      glossary: Glossary | None) -> list[list[Hypothesis]]:
        """A request's lines, within the per-request limits, decoded as one job of the queue."""
        if not any(line.strip() for line in lines):
            raise ApiError(400, "Invalid request: q is empty")
        check_lines(lines, self.config.max_lines, self.config.max_chars)
        return await self.batcher.translate(lines, self.engine.costs(lines), nbest, attention,
                                            Terminology.constraints(glossary, lines))

    async def _decode_document(self, lines: list[str], attention: bool) -> list[list[Hypothesis]]:
        """A file's lines, any number of them, queued max_lines at a time so other requests keep their turn."""
        found: list[list[Hypothesis]] = []
        glossary = self.terminology.glossary
        for start in range(0, len(lines), self.config.max_lines):
            chunk = lines[start:start + self.config.max_lines]
            found += await self.batcher.translate(chunk, self.engine.costs(chunk), 1, attention,
                                                  Terminology.constraints(glossary, chunk))
        return found

    async def _units(self, lines: list[str], found: list[list[Hypothesis]]) -> list[list[AlignedUnit]]:
        """Each line's best translation cut into units aligned with the line (off the event loop: it
        encodes and decodes every prefix of the translation)."""
        return await asyncio.to_thread(
            lambda: [self.engine.aligned_units(line, hyps[0]) if line.strip() else [] for line, hyps in
                     zip(lines, found)])

    def _check_nbest(self, key: str, nbest: int) -> None:
        beam = self.config.decode.beam_size
        if nbest > beam:
            raise ApiError(400, f"Invalid request: {key} asks for {nbest} translations; the beam keeps {beam}")

    def _check_languages(self, source: str, target: str) -> None:
        c = self.config
        if source not in ("auto", c.source_language):
            raise ApiError(400, f"{source} is not supported as source language; use {c.source_language} or auto")
        if target != c.target_language:
            raise ApiError(400, f"{target} is not supported as target language; use {c.target_language}")

    def _check_texts(self, q: str | list[str]) -> list[str]:
        """LibreTranslate's batch_limit (texts per request) and char_limit (characters per text)."""
        c = self.config
        texts = [q] if isinstance(q, str) else q
        if isinstance(q, list) and c.batch_limit != -1 and len(q) > c.batch_limit:
            raise ApiError(400, f"Invalid request: request ({len(q)}) exceeds text limit ({c.batch_limit})")
        for text in texts:
            if c.char_limit != -1 and len(text) > c.char_limit:
                raise ApiError(400, f"Invalid request: request ({len(text)}) exceeds text limit ({c.char_limit})")
        return texts

    async def libre_translate(self, payload: dict, client: str) -> TranslateResponse:
        """LibreTranslate's answer; a text with several lines is translated line by line, an HTML text
        sentence by sentence with its markup placed on the translation."""
        q = payload.get("q")
        self._gate("/translate", payload, client, cost=max(1, len(q)) if isinstance(q, list) else 1)
        request = validate(TranslateRequest, payload)
        c = self.config
        if c.alternatives_limit != -1 and request.alternatives > c.alternatives_limit:
            raise ApiError(400, f"Invalid request: alternatives parameter must be <= {c.alternatives_limit}")
        texts = self._check_texts(request.q)
        self._check_languages(request.source, request.target)
        if request.format not in ("text", "html"):
            raise ApiError(400, f"{request.format} format is not supported")
        self._check_nbest("alternatives", request.alternatives + 1)
        single = isinstance(request.q, str)
        detected = self._detected()
        answer = TranslateResponse(translatedText="", detectedLanguage=(
            detected if single else [detected] * len(texts)) if request.source == "auto" else None)
        if request.format == "html":
            translated = await self._translate_html(texts)
            answer.translatedText = translated[0] if single else translated
            if request.alternatives:  # as LibreTranslate: none for HTML
                answer.alternatives = [] if single else [[] for _ in texts]
            return answer
        split = [[line.removesuffix("\r") for line in text.split("\n")] for text in texts]
        found = iter(await self._decode([line for lines in split for line in lines], request.alternatives + 1,
                                        False, self.terminology.glossary))
        per_text = [[next(found) for _ in lines] for lines in split]
        best = [self._join(hyps, 0) for hyps in per_text]
        answer.translatedText = best[0] if single else best
        if request.alternatives:
            # As LibreTranslate: alternatives other than the best and each other.
            others = [list(dict.fromkeys(alternative for k in range(1, max(len(h) for h in hyps))
                                         if (alternative := self._join(hyps, k)) != first))
                      for hyps, first in zip(per_text, best)]
            answer.alternatives = others[0] if single else others
        return answer

    def _join(self, hyps: list[list[Hypothesis]], k: int) -> str:
        """The k-th translation of a text: its lines' k-th hypotheses (a line with fewer keeps its last)."""
        return "\n".join(self.engine.text(h[min(k, len(h) - 1)]) for h in hyps)

    async def _translate_html(self, texts: list[str]) -> list[str]:
        """Each HTML text with every sentence translated once, as a whole, and its markup put back."""
        documents = [markup.Document(text) for text in texts]
        lines = [sentence.text for document in documents for sentence in document.sentences]
        if not any(text.strip() for text in texts):
            raise ApiError(400, "Invalid request: q is empty")
        units = iter(await self._units(lines, await self._decode(lines, 1, True, self.terminology.glossary))
                     if lines else [])  # markup alone: nothing to translate
        return [document.render([next(units) for _ in document.sentences]) for document in documents]

    async def translate_file(self, payload: dict, client: str, download_url) -> TranslateFileResponse:
        """The file translated and kept for one download; the answer says where."""
        c = self.config
        if not c.files_translation:
            raise ApiError(403, "Files translation are disabled on this server.")
        upload = payload.get("file")
        size = len(upload.data) if isinstance(upload, Upload) else 0
        # LibreTranslate's cost of a file: as many requests as it has char_limit-sized parts.
        self._gate("/translate_file", payload, client, cost=max(1, size // c.char_limit) if c.char_limit > 0 else 1)
        if not isinstance(upload, Upload):
            raise ApiError(400, "Invalid request: missing file parameter")
        request = validate(TranslateFileRequest, payload | {"file": upload.data})
        if not upload.filename:
            raise ApiError(400, "Invalid request: empty file")
        extension = PurePath(upload.filename.replace("\\", "/")).suffix.lower()
        if extension not in EXTENSIONS:
            raise ApiError(400, f"Invalid request: file format not supported; send one of {', '.join(EXTENSIONS)}")
        if size > c.max_file_bytes:
            raise ApiError(413, f"{upload.filename}: {size} bytes is over the limit of {c.max_file_bytes} bytes")
        self._check_languages(request.source, request.target)
        name = download_name(upload.filename, extension)
        document = read_document(upload.data, name, extension)
        found = await self._decode_document(document.sentences, document.aligned)
        if document.aligned:
            translations = await self._units(document.sentences, found)
        else:
            translations = [[AlignedUnit(self.engine.text(hyps[0]), (0, 0))] for hyps in found]
        file_id = self.files.put(document.render(translations).encode("utf-8"), name)
        return TranslateFileResponse(translatedFileUrl=download_url(file_id))

    def download(self, file_id: str) -> tuple[bytes, str]:
        taken = self.files.take(file_id)
        if taken is None:
            raise ApiError(404, "no such file: it was downloaded already, its time ran out, or it never was; "
                                "translate it again with POST /translate_file")
        return taken

    async def suggest(self, payload: dict, client: str) -> SuggestResponse:
        """Appends the suggestion to suggestions_dir/suggestions.jsonl, one JSON object a line."""
        if not self.config.suggestions:
            raise ApiError(403, "Suggestions are disabled on this server.")
        self._gate("/suggest", payload, client)
        request = validate(SuggestRequest, payload)
        for key in ("q", "s", "source", "target"):
            if not getattr(request, key).strip():
                raise ApiError(400, f"Invalid request: missing {key} parameter")
        line = json.dumps(request.model_dump(include={"q", "s", "source", "target"}), ensure_ascii=False)
        await asyncio.to_thread(self._append_suggestion, line)
        return SuggestResponse(success=True)

    def _append_suggestion(self, line: str) -> None:
        directory = Path(self.config.suggestions_dir)
        directory.mkdir(parents=True, exist_ok=True)
        with self._suggestions_lock:
            append_line(directory / "suggestions.jsonl", line)

    async def translate_v1(self, payload: dict, client: str) -> V1Response:
        q = payload.get("q")
        self._gate("/v1/translate", payload, client, cost=max(1, len(q)) if isinstance(q, list) else 1)
        request = validate(V1Request, payload)
        nbest = request.nbest or self.config.decode.nbest
        self._check_nbest("nbest", nbest)
        glossary = self.terminology.for_request(request.glossary)
        lines = [request.q] if isinstance(request.q, str) else request.q
        found = await self._decode(lines, nbest, request.attention, glossary)
        return V1Response(translations=[self._describe(line, hyps, request.attention)
                                        for line, hyps in zip(lines, found)])

    def _describe(self, line: str, hyps: list[Hypothesis], attention: bool) -> V1Translation:
        source = self.engine.source_tokens(line)
        return V1Translation(source_tokens=source, hypotheses=[V1Hypothesis(
            text=self.engine.text(h), score=h.score, log_prob=h.log_prob, tokens=self.engine.target_tokens(h),
            attention=self.engine.attention(h, len(source)) if attention else None) for h in hyps])
