"""Scoring text against references with sacreBLEU, the report built from it, and pictures. Loads no
model and needs no torch: evaluate works on text files alone."""
