"""Gemini Live behind the provider interface.

``codec`` builds client messages and decodes server ones, ``setup`` the ``setup`` message and endpoint,
``errors`` maps close codes to typed failures, ``ws`` opens a connection up to ``setupComplete``,
``translator`` turns server messages into frames (sans-IO), ``wire`` is the provider half of the shared
connection core and ``adapter`` the :class:`GeminiProvider` the session drives.
"""

from rtvoice.bridge.providers.gemini.adapter import GeminiProvider

__all__ = ["GeminiProvider"]
