"""Maestro separator plugin for Asteroid models. `plugin` registers (no torch); `separator` does the work."""
