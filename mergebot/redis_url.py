"""How a Redis URL names a single server or a Redis Cluster (pure: read by the settings for
`mergebot config check`, and by `mergebot.store.connection` to connect).

A cluster is named by its own scheme, `redis+cluster://host:port[,host:port…]` (`rediss+cluster://`
with TLS), or by a plain `redis://`/`rediss://` URL of any node plus `MERGEBOT_REDIS_CLUSTER=true`.
Every host listed is a startup node; the client learns the rest of the cluster from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_PLAIN_SCHEMES = ("redis", "rediss", "unix")


class RedisUrlError(ValueError):
    """A Redis URL (or its cluster setting) that cannot work; the message says why, without the
    URL itself (it may hold a password)."""


@dataclass(frozen=True)
class RedisTarget:
    """Where to connect: `url` is a URL redis-py understands (for a cluster, one of its nodes);
    `nodes` are the cluster's startup nodes, empty for a single server."""

    url: str
    nodes: tuple[tuple[str, int], ...] = ()

    @property
    def cluster(self) -> bool:
        return bool(self.nodes)


def redis_target(url: str, *, cluster: bool = False) -> RedisTarget:
    """Read a Redis URL: a single server, or a cluster (its scheme, or `cluster=True`)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in CLUSTER_SCHEMES and scheme not in _PLAIN_SCHEMES:
        known = ", ".join(f"{s}://" for s in (*_PLAIN_SCHEMES, *CLUSTER_SCHEMES))
        raise RedisUrlError(f"unknown scheme {scheme + '://' if scheme else '(none)'}; use {known}")
    if scheme not in CLUSTER_SCHEMES and not cluster:
        return RedisTarget(url)
    if scheme == "unix":
        raise RedisUrlError("a Redis Cluster is reached over TCP: unix:// cannot name one")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_node(item) for item in hosts.split(","))
    if parts.path not in ("", "/", "/0"):
        raise RedisUrlError(f"a Redis Cluster has only database 0, not {parts.path.lstrip('/')}")
    plain = CLUSTER_SCHEMES.get(scheme, scheme)
    host, port = nodes[0]
    netloc = f"{userinfo}@{_host_port(host, port)}" if userinfo else _host_port(host, port)
    return RedisTarget(urlunsplit((plain, netloc, "", parts.query, "")), nodes)


def _node(item: str) -> tuple[str, int]:
    if not item:
        raise RedisUrlError("a cluster URL lists host:port nodes separated by commas; one is empty")
    probe = urlsplit(f"//{item}")
    try:
        port = probe.port or 6379
    except ValueError:
        raise RedisUrlError(f"{item!r} is not host:port (bad port)") from None
    if not probe.hostname:
        raise RedisUrlError(f"{item!r} is not host:port (no host)")
    return probe.hostname, port


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
