"""Provider adapters of the realtime-bridge and their factory.

``openai`` and ``local`` (the offline engine speaks the OpenAI GA protocol) use
:class:`rtvoice.bridge.providers.openai.OpenAIProvider`; ``gemini`` uses
:class:`rtvoice.bridge.providers.gemini.GeminiProvider`. Adapters are imported lazily.
"""

from __future__ import annotations

from rtvoice.bridge.providers.base import RealtimeProvider
from rtvoice.core.settings import AgentSettings, SettingsError


def create_provider(
    settings: AgentSettings, api_key: str | None, base_url: str | None = None
) -> RealtimeProvider:
    """A new, not yet connected provider conversation for ``settings.provider``.

    ``base_url`` overrides ``settings.base_url``. Raises :class:`SettingsError` when ``provider: local``
    has no endpoint (the local engine has no public default address).
    """
    if settings.provider == "gemini":
        from rtvoice.bridge.providers.gemini import GeminiProvider

        return GeminiProvider(settings, api_key, base_url=base_url)
    if settings.provider == "local" and not (base_url or settings.base_url):
        raise SettingsError(
            "provider 'local' needs the local engine's URL: "
            "--provider-url ws://HOST:PORT/v1/realtime or baseUrl"
        )
    from rtvoice.bridge.providers.openai import OpenAIProvider

    return OpenAIProvider(settings, api_key, base_url=base_url)
