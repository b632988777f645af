"""Searching for translations over the models' encode / decode_step interface: greedy and batched
beam search, and searching a whole corpus in token-bounded batches."""
