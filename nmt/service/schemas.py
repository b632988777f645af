"""The typed bodies of every request and response, so the OpenAPI page at /docs documents the API.

The LibreTranslate models follow that API's field names (camelCase included), which its clients expect.
"""

from typing import Literal

from pydantic import BaseModel, Field, StrictBool, StrictStr

Text = StrictStr | list[StrictStr]  # strict: a number is not silently translated as its digits


class TranslateRequest(BaseModel):
    """LibreTranslate's POST /translate, sent as JSON or as a form."""
    q: Text = Field(description="The text, or a list of texts; each text is translated line by line")
    source: StrictStr = Field(description="Source language code, or auto")
    target: StrictStr = Field(description="Target language code")
    # Literal rather than an Enum keeps the schema inline in the OpenAPI page; html is refused with a clear error.
    format: Literal["text", "html"] = "text"
    alternatives: int = Field(0, ge=0, description="How many other translations to return besides the best")
    api_key: StrictStr = ""


class DetectRequest(BaseModel):
    """LibreTranslate's POST /detect."""
    q: StrictStr
    api_key: StrictStr = ""


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


class ErrorResponse(BaseModel):
    error: str


class V1Request(BaseModel):
    """This project's own POST /v1/translate: one sentence per item of q."""
    q: Text
    nbest: int | None = Field(None, ge=1, description="Hypotheses per sentence (default: the service's decode.nbest)")
    attention: StrictBool = Field(False, description="Also return each hypothesis' attention weights")
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
