"""Maestro separator plugin for Demucs. `plugin` registers (no torch); `separator` does the work."""
