"""A minimal third-party Maestro plugin to copy: see plugin.py (registration) and components.py (the work)."""
