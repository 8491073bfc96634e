"""Attention hooks: the hook point spatial cross-attention layers of a backbone call (see `hookpoint`).

`mosaic` — the Attention Mosaic hook; `regions` — its per-resolution masks; `guidance` — the layout guidance of the
first steps; `diffusers` — a diffusers attention processor that hands cross-attention to any hook.
"""
