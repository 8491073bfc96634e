"""Attention hooks: the hook point spatial cross-attention layers of a backbone call (see `hookpoint`)."""
