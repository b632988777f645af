"""nmt: neural machine translation from corpus to service.

The modules here are the commands (`python -m nmt.prepare`, `train`, `translate`, `evaluate`,
`export`, `serve`) and a few leaves they all use (errors, choices, io, cli, device). The library
is in packages named for what they hold: config, data, models, decoding, training, backends,
evaluation and service; each imports only downward.
"""
