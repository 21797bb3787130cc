"""The POSIX checks of posix_checks.py, one module per topic (see base.py)."""
