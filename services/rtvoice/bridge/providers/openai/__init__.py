"""OpenAI Realtime (and the local engine, which speaks its GA protocol) behind the provider interface.

``protocol`` builds client events and classifies errors, ``ws`` opens and handshakes the WebSocket,
``translator`` turns server events into frames (sans-IO), ``wire`` is the provider half of the shared
connection core and ``adapter`` the :class:`OpenAIProvider` the session drives.
"""

from rtvoice.bridge.providers.openai.adapter import OpenAIProvider

__all__ = ["OpenAIProvider"]
