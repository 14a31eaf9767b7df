"""kombu's Redis transport, with one guard so a Celery worker outlives Redis.

When Redis dies, Celery 5.7 collects the broken connection and then closes it
(celery/celery#10242). If the drop was first read on a pub/sub socket
(gossip, remote control), the task channel still has a BRPOP in flight:
`collect()` gives up on that channel, clears the transport, and `close()` then
restores the channel's unacknowledged messages through a transport that has no
connection details any more. The AttributeError ('NoneType' object has no
attribute 'hostname') is no connection error, so the worker stops for good.
Here a closed transport is a connection error, which Celery already ignores
before it reconnects. The messages stay in Redis's unacked set (back after
the visibility timeout) and their rows in the outbox, which the sweeper queues
again; nothing depends on this restore.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection is already closed")
        # kombu-stubs leave out the private hook this wraps.
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class Transport(kombu_redis.Transport):
    Channel = Channel


def use_guarded_redis_transport() -> None:
    """redis:// and rediss:// URLs use this transport, in every process that
    loads the Celery app (web, worker, beat), and logs still say redis://.
    Called when tracksop.celery is imported, before any broker connection
    (kombu caches the class an alias resolves to at first use)."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = "tracksop.broker:Transport"
