"""Where an agent's realtime bridge listens inside a Kubernetes cluster: the one definition of the bridge
Service names and of the address a client dials. Pure functions, no I/O.

Per ``VoiceAgent`` ``{name}`` in namespace ``{ns}`` the operator keeps two Services:

- ``rtvoice-bridge-{name}``: ClusterIP (one virtual IP; kube-proxy balances per TCP connection, so a
  client holding one HTTP/2 channel sends every call to the same pod);
- ``rtvoice-bridge-{name}-headless``: headless (``clusterIP: None``), whose DNS name resolves to the IP of
  every *ready* bridge pod, so a gRPC client with ``dns:///`` and ``round_robin`` (or its own placement)
  spreads calls over the pods.

:func:`bridge_address` is the gRPC target of the headless Service, published in the agent's
``status.bridgeAddress`` and used by the ingress.
"""

from __future__ import annotations

DEFAULT_CLUSTER_DOMAIN = "cluster.local"
BRIDGE_PORT = 50051
BRIDGE_SERVICE_PREFIX = "rtvoice-bridge-"
HEADLESS_SUFFIX = "-headless"
# Service names are DNS-1035 labels (<= 63 characters); the headless name is the longest child name.
MAX_AGENT_NAME_LENGTH = 63 - len(BRIDGE_SERVICE_PREFIX) - len(HEADLESS_SUFFIX)


def bridge_service_name(agent: str) -> str:
    """``rtvoice-bridge-{agent}``: the ClusterIP Service (and the name of the agent's other children)."""
    return BRIDGE_SERVICE_PREFIX + agent


def bridge_headless_service_name(agent: str) -> str:
    """``rtvoice-bridge-{agent}-headless``: the headless Service listing every ready bridge pod."""
    return bridge_service_name(agent) + HEADLESS_SUFFIX


def bridge_address(
    agent: str, namespace: str, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN, port: int = BRIDGE_PORT
) -> str:
    """gRPC target of the agent's bridges, e.g.
    ``dns:///rtvoice-bridge-support-headless.voice.svc.cluster.local:50051`` (gRPC name syntax: the
    ``dns`` resolver with the default authority; every A record is one ready bridge pod).

    ``cluster_domain`` is the cluster's DNS domain (kubelet ``--cluster-domain``), without dots at the
    ends. Raises ValueError for an empty agent, namespace or domain.
    """
    domain = cluster_domain.strip(".")
    if not agent or not namespace or not domain:
        raise ValueError(f"bridge_address needs agent, namespace and cluster domain; got {agent!r}, "
                         f"{namespace!r}, {cluster_domain!r}")  # fmt: skip
    return f"dns:///{bridge_headless_service_name(agent)}.{namespace}.svc.{domain}:{port}"
