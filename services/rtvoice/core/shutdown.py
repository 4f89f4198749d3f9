"""How long a stopping service takes: the drain defaults of the ingress and the bridge, and the time a
supervisor (``rtvoice up``) must allow each service between its SIGTERM and its exit.

On SIGTERM the ingress and the bridge *drain*: new sessions are refused, live ones may continue for the
drain timeout (``--drain-timeout-s``, default :data:`DRAIN_TIMEOUT_S`), then the rest are ended with a
typed reason and get up to :data:`CUT_SESSIONS_END_S` to finish ending (the caller gets
``session.ended``, the recorder the ``EndFrame``). A supervisor that kills a service before that is over
turns an honest ending into a dropped connection, so it waits :func:`drain_stop_timeout_s`.
"""

from __future__ import annotations

#: Default drain timeout of ``rtvoice ingress`` and ``rtvoice bridge``, s.
DRAIN_TIMEOUT_S = 30.0

#: After the drain timeout: how long the sessions that were cut get to finish ending, s.
CUT_SESSIONS_END_S = 10.0

#: Closing listeners and channels and exiting the process after the last session ended, s.
EXIT_MARGIN_S = 5.0

#: SIGTERM → exit of a service that holds no caller sessions (recorder, offline engine), s.
STOP_TIMEOUT_S = 15.0


def drain_stop_timeout_s(drain_timeout_s: float) -> float:
    """SIGTERM → exit of a draining service (ingress, bridge) started with ``--drain-timeout-s
    drain_timeout_s``: the drain, the end of cut sessions and the exit, in s. Raises ``ValueError`` for a
    negative drain timeout."""
    if drain_timeout_s < 0:
        raise ValueError(f"drain timeout must be >= 0 s, got {drain_timeout_s:g}")
    return drain_timeout_s + CUT_SESSIONS_END_S + EXIT_MARGIN_S
