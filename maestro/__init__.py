"""Maestro: a recording with several sounds → a video where each sound has its own place on screen.

Pipeline: separate → encode → condition → plan layout → generate (+ attention hook) → write.
"""

__version__ = "0.1.0"
