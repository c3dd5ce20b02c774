"""The translator component: the events stream in, the legacy streams out.

See docs/architecture-translator.md.
"""
