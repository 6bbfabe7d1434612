"""The errors users see, in the lowest layer: every other module may import this one.

:class:`ConfigError` is what the entry points turn into one ``error: ...`` paragraph and
exit status 2. Configuration checks (:mod:`otfr_vec.config.validate`, no file IO) and
input checks (:mod:`otfr_vec.inputs`: trace files, memory) both raise it, so neither
layer imports the other.
"""

from __future__ import annotations

QUOTE_LIMIT = 200  # characters of user content (a file's text, a value) quoted in a message


class ConfigError(ValueError):
    """An invalid configuration or input; the message names the key or file, the value and
    what is allowed."""


def clip(text, limit: int = QUOTE_LIMIT) -> str:
    """``text`` for quoting in a message: at most ``limit`` characters, newlines shown
    as ``\\n``, and how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text.replace("\n", "\\n")
    return text[:limit].replace("\n", "\\n") + f"... ({len(text) - limit:,} more characters)"


__all__ = ["QUOTE_LIMIT", "ConfigError", "clip"]
