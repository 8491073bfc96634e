"""ImageBind's audio branch for Maestro, written from scratch: token-level features the paper's CIM consumes.

`plugin.py` registers the encoder (cheap, no torch); `encoder.py` is the component, `features.py` the log-mel
preprocessing, `audio_branch.py` the transformer and its checkpoint loading.
"""
