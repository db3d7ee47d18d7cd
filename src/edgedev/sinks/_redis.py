"""``pushMethod.dbMethod.redis``: a sorted set per device, scored by timestamp (as upstream)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from edgedev.config._crd import PushMethod, RedisClientConfig
from edgedev.sinks._base import PushSink, Row, secret
from edgedev.sinks._delivery import DeliveryOptions, Refused, SinkError

PASSWORD_ENV = ("EDGEDEV_REDIS_PASSWORD", "PASSWORD")
"""Where the password comes from (``NAME`` or ``NAME_FILE``), first found wins."""


def encode(rows: Sequence[Row]) -> dict[str, list[bytes]]:
    """``{key: [score, member, score, member ...]}``, the arguments of one ``ZADD`` per key.

    The key is the device's name, the score the reading's time (ms). Upstream keys the set by
    the bare device name (not ``namespace/name``); so does edgedev, so that its readers keep
    working. Arguments are bytes already: redis-py then packs them without converting each.
    """
    sets: dict[str, list[bytes]] = {}
    for row in rows:
        r = row.reading
        args = sets.get(row.device.name)
        if args is None:
            args = sets[row.device.name] = []
        stamp = str(r.timestamp)
        args.append(stamp.encode())
        args.append(f"TimeStamp: {stamp} PropertyName: {r.name} data: {r.text}".encode())
    return sets


class RedisSink(PushSink[RedisClientConfig, tuple[str, int]]):
    """Readings into Redis with one pipelined round trip per batch (``ZADD`` per device)."""

    kind = "dbMethod.redis"

    def __init__(self, target: tuple[str, int], **delivery: Unpack[DeliveryOptions]) -> None:
        super().__init__(target, **delivery)
        import redis.asyncio as aioredis  # the 'redis' extra

        addr, db = target
        host, _, port = str(addr).rpartition(":")
        self._redis = aioredis.Redis(
            host=host or "127.0.0.1",
            port=int(port or 6379),
            db=db,
            password=secret(*PASSWORD_ENV),
            socket_timeout=self.delivery.timeout,
            socket_connect_timeout=self.delivery.timeout,
        )

    @classmethod
    def config_of(cls, push: PushMethod) -> RedisClientConfig | None:
        """``dbMethod.redis.redisClientConfig``."""
        db = push.db_method
        return db.redis.redis_client_config if db is not None and db.redis is not None else None

    @classmethod
    def target_of(cls, config: RedisClientConfig) -> tuple[str, int]:
        """The server and the database number."""
        return (config.addr, config.db)

    async def send(self, rows: Sequence[Row]) -> int | None:
        """One pipeline: a ``ZADD`` per device."""
        import redis.exceptions

        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, args in encode(rows).items():
                    pipe.execute_command("ZADD", key, *args)
                await pipe.execute()
            return None
        except redis.exceptions.AuthenticationError as exc:
            raise SinkError(
                f"authentication refused ({exc}): check the password in "
                f"{' or '.join(PASSWORD_ENV)} (or the file named by *_FILE)"
            ) from None
        except redis.exceptions.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise SinkError(f"authentication refused ({exc}): set {PASSWORD_ENV[0]}") from None
            raise Refused(str(exc)) from None  # WRONGTYPE ...: the data, not the server

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
