"""The fifth stage, `python -m nmt.serve`: an HTTP service (LibreTranslate's API and our own /v1 API)
that batches sentences across requests, and a page at / that shows the attention."""
