"""Condition: turn per-source audio tokens into what a backbone attends to."""
