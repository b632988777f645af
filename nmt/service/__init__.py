"""The HTTP service behind `python -m nmt.serve`: LibreTranslate 1.9's API (HTML translated a whole
sentence at a time, files, suggestions, its limits and CORS) and this project's /v1 API, with
sentences batched across requests, and a page at / that shows the attention."""
