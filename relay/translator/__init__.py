"""The translator component: the events stream in, the legacy streams out, effectively once.

It does the I/O around the pure translation (:mod:`relay.translate`) and writes the read model
(:mod:`relay.readmodel`) in the same atomic script (docs/architecture-translator.md):

- :mod:`relay.translator.consumer`: :class:`Translator`, the component's loop (lease, reads,
  settling writes).
- :mod:`relay.translator.group`: fenced consumer-group reads and claims.
- :mod:`relay.translator.batch`: one batch of entries → one write.
- :mod:`relay.translator.store`: the translator's state and the atomic batch script.
- :mod:`relay.translator.held`: districts held back while the others flow.
- :mod:`relay.translator.lookup`: teacher legacy ids from the Data API.
"""

from relay.translator.consumer import Translator

__all__ = ["Translator"]
