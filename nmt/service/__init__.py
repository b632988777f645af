"""The HTTP service behind `python -m nmt.serve`: LibreTranslate's API and this project's /v1 API,
with sentences batched across requests, and a page at / that shows the attention."""
