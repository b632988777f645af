"""The typed bodies of every request and response, so the OpenAPI page at /docs documents the API.

The LibreTranslate models follow that API's field names (camelCase included), which its clients expect.
"""

from pydantic import BaseModel, Field, StrictBool, StrictStr

Text = StrictStr | list[StrictStr]  # strict: a number is not silently translated as its digits


class TranslateRequest(BaseModel):
    """LibreTranslate's POST /translate, sent as JSON, as a form or in the query string."""
    q: Text = Field(description="The text, or a list of texts; a text is translated line by line, or with "
                                "format html sentence by sentence")
    source: StrictStr = Field(description="Source language code, or auto")
    target: StrictStr = Field(description="Target language code")
    # Checked by the endpoint, so another value gets LibreTranslate's "... format is not supported".
    format: StrictStr = Field("text", description="text, or html: markup kept, placed by the attention",
                              json_schema_extra={"enum": ["text", "html"]})
    alternatives: int = Field(0, ge=0, description="How many other translations to return besides the best")
    api_key: StrictStr = ""


class DetectRequest(BaseModel):
    """LibreTranslate's POST /detect."""
    q: Text
    api_key: StrictStr = ""


class TranslateFileRequest(BaseModel):
    """LibreTranslate's POST /translate_file, a multipart form (the file is checked by the endpoint)."""
    file: bytes = Field(description="A .txt, .html, .htm or .srt file, UTF-8", json_schema_extra={"format": "binary"})
    source: StrictStr = Field(description="Source language code, or auto")
    target: StrictStr
    api_key: StrictStr = ""


class TranslateFileResponse(BaseModel):
    translatedFileUrl: str = Field(description="GET it once, within the service's file_lifetime_s")


class SuggestRequest(BaseModel):
    """LibreTranslate's POST /suggest: a better translation, kept for whoever curates the data."""
    q: StrictStr = Field(description="The original text")
    s: StrictStr = Field(description="The suggested translation")
    source: StrictStr
    target: StrictStr
    api_key: StrictStr = ""


class SuggestResponse(BaseModel):
    success: bool


class DetectedLanguage(BaseModel):
    confidence: float
    language: str


class TranslateResponse(BaseModel):
    translatedText: str | list[str]
    alternatives: list[str] | list[list[str]] | None = None
    detectedLanguage: DetectedLanguage | list[DetectedLanguage] | None = None


class Language(BaseModel):
    code: str
    name: str
    targets: list[str]


class LanguageName(BaseModel):
    code: str
    name: str


class FrontendLanguages(BaseModel):
    source: LanguageName
    target: LanguageName


class FrontendSettings(BaseModel):
    """LibreTranslate's GET /frontend/settings, which its clients read to set themselves up."""
    charLimit: int = Field(description="The longest text accepted; -1: no limit")
    frontendTimeout: int = Field(description="Milliseconds a web page waits after typing before translating")
    apiKeys: bool
    keyRequired: bool
    suggestions: bool
    filesTranslation: bool
    supportedFilesFormat: list[str]
    language: FrontendLanguages


class ErrorResponse(BaseModel):
    error: str


class V1Request(BaseModel):
    """This project's own POST /v1/translate: one sentence per item of q."""
    q: Text
    nbest: int | None = Field(None, ge=1, description="Hypotheses per sentence (default: the service's decode.nbest)")
    attention: StrictBool = Field(False, description="Also return each hypothesis' attention weights")
    glossary: dict[StrictStr, StrictStr] | None = Field(
        None, description="source term -> target term: each term found in a sentence must be translated so; "
                          "over the service's own glossary")
    api_key: StrictStr = ""


class V1Hypothesis(BaseModel):
    text: str
    score: float = Field(description="Length-normalized log-probability; what the ranking uses")
    log_prob: float
    tokens: list[str] = Field(description="Target subwords, ending with </s>")
    attention: list[list[float]] | None = Field(
        None, description="One row per target token, one column per source token; each row sums to 1")


class V1Translation(BaseModel):
    source_tokens: list[str] = Field(description="Source subwords as the model read them, ending with </s>")
    hypotheses: list[V1Hypothesis]


class V1Response(BaseModel):
    translations: list[V1Translation]


class Health(BaseModel):
    status: str
    source_language: str
    target_language: str
    beam_size: int
    queued_lines: int
    api_key_required: bool
