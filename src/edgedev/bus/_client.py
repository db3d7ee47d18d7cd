"""The MQTT client: paho-mqtt driven from the anyio event loop, without paho's thread.

This is the only module of the runtime that imports paho (the embedded broker borrows its topic
matcher; import-linter keeps it so). paho does the protocol; this module does the I/O
(``anyio.wait_readable``/``wait_writable`` on paho's socket, then ``loop_read``/``loop_write``),
keepalive (``loop_misc`` each second), reconnection with backoff, re-subscription, and
publishing from an :class:`~edgedev.bus.Outbox` so that nothing is lost while the broker is
away. No user callbacks: messages arrive on memory streams from :meth:`Bus.subscribe`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType

import anyio
import paho.mqtt.client as paho
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgedev._backoff import Backoff
from edgedev._errors import EdgedevError
from edgedev.bus._outbox import MemoryOutbox, Message, Outbox
from edgedev.bus._url import DEFAULT_BROKER, BrokerURL

log = logging.getLogger("edgedev.bus")


class BusError(EdgedevError):
    """The broker refused the connection or a subscription."""


class _ConnectionLost(Exception):
    pass


_CLOSED_BEFORE_CONNACK = (
    "the broker closed the connection before answering CONNECT (a TLS client certificate "
    "missing or refused?)"
)

REPEAT_LOG_EVERY = 60.0
"""Seconds between two log lines about the same, lasting connection failure."""

MAX_PACKET_SIZE = 16 * 1024 * 1024
"""The largest PUBLISH sent by default: the embedded broker's limit (mosquitto's
``max_packet_size`` may be set lower; MQTT 3.1.1 has no CONNACK property telling it)."""

POISON_STRIKES = 3
"""Times a message may cost the connection, sent alone, before it is dropped."""


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or ``None`` (MQTT 3.1.1, sections 1.5.3, 4.7).

    Example:
        >>> topic_problem("a/b") is None, topic_problem("a/+")
        (True, 'the topic name holds a wildcard (+ or #)')
    """
    if not topic:
        return "the topic name is empty"
    if "+" in topic or "#" in topic:
        return "the topic name holds a wildcard (+ or #)"
    if "\x00" in topic:
        return "the topic name holds a NUL character"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "the topic name is not valid UTF-8"
    if size > 65535:
        return f"the topic name has {size} bytes, over 65535"
    return None


def publish_size(topic: str, payload: bytes, qos: int) -> int:
    """Bytes of the PUBLISH packet carrying ``payload`` on ``topic``."""
    remaining = 2 + len(topic.encode("utf-8", "replace")) + (2 if qos else 0) + len(payload)
    header = 2 if remaining < 128 else 3 if remaining < 16384 else 4 if remaining < 2097152 else 5
    return header + remaining


def describe_failure(exc: BaseException, url: BrokerURL) -> str:
    """One line saying why a connection attempt to ``url`` failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was refused ({exc.verify_message or exc.reason})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or exc})"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {url.host} ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when its handshake fails.

    paho drops the socket of a failed handshake without closing it (a refused certificate
    would leak one descriptor per attempt until the garbage collector runs);
    ``SSLContext.sslsocket_class`` is the documented hook to fix that.
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class _Subscription:
    __slots__ = ("dropping", "filters", "qos", "send")

    def __init__(
        self, filters: tuple[str, ...], qos: int, send: MemoryObjectSendStream[Message]
    ) -> None:
        self.filters = filters
        self.qos = qos
        self.send = send
        self.dropping = 0  # messages dropped since the subscriber last kept up


class Bus:
    """A long-lived MQTT connection that reconnects by itself.

    Use it as an async context manager; leaving the block stops every task it started (and,
    unless the block failed, says DISCONNECT to the broker first)::

        async with Bus("mqtt://127.0.0.1:1883") as bus:
            bus.publish("a/b", b"{}")
            async with bus.subscribe("a/#") as messages:
                async for message in messages:
                    ...

    :meth:`publish` never blocks: the message goes to the outbox and is sent, in order, when
    the broker is reachable (QoS 1 messages are kept until the broker acknowledges them).
    Subscriptions are restored after every reconnect. No connection failure ends the bus: a
    refusal (bad password, server unavailable), a TLS or DNS failure or a timeout is logged in
    one line (again every minute while it lasts), kept in :attr:`last_error`, and retried with
    backoff.

    Args:
        url: the broker, ``mqtt://host:port`` or ``mqtts://`` for TLS, or a
            :class:`BrokerURL` with credentials and TLS files.
        client_id: the MQTT client id; random when omitted.
        will: the last will, published by the broker if this client dies; or a function
            that gives it, called before each connection attempt (a will that changes from
            one connection to the next, such as Sparkplug's NDEATH with its ``bdSeq``).
        outbox: where unsent messages wait; a :class:`MemoryOutbox` by default.
        keepalive: seconds between pings when idle.
        max_inflight: QoS 1 messages sent but not yet acknowledged, at most.
        backoff: reconnection delays; 0.1 s doubling to 10 s by default.
        max_packet_size: the largest PUBLISH packet the broker takes; a bigger message is
            dropped when published (counted in :attr:`refused`, logged), never sent. By
            default the URL's ``max_packet_size``, else 16 MiB (``MAX_PACKET_SIZE``).

    Raises:
        BrokerConfigError: the TLS files cannot be used (see :meth:`BrokerURL.ssl_context`).
    """

    def __init__(
        self,
        url: str | BrokerURL = DEFAULT_BROKER,
        *,
        client_id: str = "",
        will: Message | Callable[[], Message | None] | None = None,
        outbox: Outbox | None = None,
        keepalive: int = 30,
        max_inflight: int = 4096,
        backoff: Backoff | None = None,
        max_packet_size: int | None = None,
    ) -> None:
        self.url = url if isinstance(url, BrokerURL) else BrokerURL.parse(url)
        if max_packet_size is None:
            max_packet_size = self.url.max_packet_size or MAX_PACKET_SIZE
        self._ssl = self.url.ssl_context()
        if self._ssl is not None:
            self._ssl.sslsocket_class = _ClosingSSLSocket
        self.client_id = client_id
        self.will = will
        self.outbox = outbox if outbox is not None else MemoryOutbox()
        self.keepalive = keepalive
        self.max_inflight = max_inflight
        self.max_packet_size = max_packet_size
        self._backoff = backoff or Backoff(0.1, 10.0)
        self._subs: list[_Subscription] = []
        self._client: paho.Client | None = None
        self._connected = anyio.Event()
        self._disconnected = anyio.Event()
        self._disconnected.set()
        self._wake_publisher = anyio.Event()
        self._wake_writer = anyio.Event()
        self._acked = anyio.Event()
        self._connack = anyio.Event()
        self._mids: dict[int, int] = {}
        self._suback: dict[int, anyio.Event] = {}
        self._lost = anyio.Event()
        self._connect_rc: ReasonCode | None = None
        self._listeners: list[Callable[[], None]] = []
        self._tg: TaskGroup | None = None
        self._run_scope = anyio.CancelScope()
        self._stopped = False
        self._renewing = False  # reconnect() asked for a new connection
        self._logged: tuple[str, float] | None = None
        self.reconnects = 0
        """How many times the connection was re-established after a loss."""
        self.dropped_in = 0
        """Messages received but dropped because a subscriber was too far behind."""
        self.connect_failures = 0
        """Connection attempts that failed (refused, TLS, DNS, timeout, lost before CONNACK)."""
        self.last_error: str | None = None
        """Why the last connection attempt failed, while not connected; ``None`` once
        connected."""
        self.refused = 0
        """Messages dropped by :meth:`publish`: a topic that is not a topic name, or a packet
        over ``max_packet_size``."""
        self.poisoned = 0
        """Messages dropped after costing the connection ``POISON_STRIKES`` times, sent
        alone (the broker cut the connection for them: malformed, or over its limit)."""
        self.refused_values = 0
        """Device readings carried by the messages counted in :attr:`refused`."""
        self.poisoned_values = 0
        """Device readings carried by the messages counted in :attr:`poisoned`."""
        self._careful = 0  # acknowledgements to wait for, sending one message at a time
        self._head_at_loss: int | None = None  # oldest message in flight at the last loss
        self._suspect: tuple[int, int] | None = None  # (seq, times it cost the connection)
        self._refusals_logged: dict[str, float] = {}

    # lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Bus:
        self._stopped = False
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        # shielded: when the owner is cancelled, the connection lives until __aexit__ has said
        # DISCONNECT; __aexit__ always cancels this scope
        self._run_scope = anyio.CancelScope(shield=True)
        self._tg.start_soon(self._run)
        return self

    async def _run(self) -> None:
        with self._run_scope:
            await self._supervise()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        if exc_type is None or issubclass(exc_type, anyio.get_cancelled_exc_class()):
            await self._say_goodbye()
        self._run_scope.cancel()
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self.outbox.close()

    async def _say_goodbye(self) -> None:
        """Send DISCONNECT (so the broker drops the will and logs a clean exit), briefly."""
        client = self._client
        if client is None or not self.connected:
            return
        self._stopped = True  # no reconnection once the broker has our DISCONNECT
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            client.disconnect()
            self._wake_writer.set()
            await self._lost.wait()

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the current connection."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Return once the broker has accepted a connection (use with a timeout)."""
        await self._connected.wait()

    async def wait_disconnected(self) -> None:
        """Return once no connection is up (at once when none is; use with a timeout)."""
        await self._disconnected.wait()

    async def reconnect(self) -> None:
        """End the connection cleanly (DISCONNECT: the broker drops the will) and connect anew.

        Returns once the connection is closed (2 s at most); the next attempt starts at once,
        with a will asked anew. What is queued stays in the outbox. Nothing happens while not
        connected.
        """
        client = self._client
        if client is None or not self.connected:
            return
        self._renewing = True
        closed = self._disconnected  # set once the connection's session has ended
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            client.disconnect()
            self._wake_writer.set()
            await closed.wait()

    def on_connect(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every (re)connection, once subscriptions are restored."""
        self._listeners.append(listener)

    # publishing --------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        values: int = 0,
    ) -> None:
        """Queue a message; it is sent in order as soon as the broker is reachable.

        ``values``: the device readings it carries (see :attr:`Message.values`).

        A message that no broker would take (a topic with a wildcard or a NUL, a packet over
        ``max_packet_size``) is dropped here, counted in :attr:`refused` (its values in
        :attr:`refused_values`) and logged (once a minute per reason): sent, it would cost the
        connection, and be sent again.
        """
        data = payload.encode() if isinstance(payload, str) else payload
        problem = topic_problem(topic)
        if problem is None:
            size = publish_size(topic, data, qos)
            if size > self.max_packet_size:
                problem = f"{size} bytes is over the broker's limit of {self.max_packet_size}"
        if problem is not None:
            self.refused_values += values
            self._refuse(topic, problem)
            return
        self.outbox.put(Message(topic, data, qos, retain, values))
        self._wake_publisher.set()

    def _refuse(self, topic: str, problem: str) -> None:
        self.refused += 1
        kind = "size" if "over the broker's limit" in problem else problem
        now = time.monotonic()
        if now - self._refusals_logged.get(kind, -REPEAT_LOG_EVERY) >= REPEAT_LOG_EVERY:
            self._refusals_logged[kind] = now
            log.error(
                "dropped a message to %r: %s (%d dropped so far)",
                topic[:200],
                problem,
                self.refused,
            )

    async def flush(self) -> None:
        """Return once every queued message has been acknowledged (use with a timeout).

        Returns at once when the bus is closing (cancelled with its owner): nothing could be
        sent any more, and what is queued stays in the outbox.
        """
        while len(self.outbox) and not self._stopped:
            await self._acked.wait()

    # subscribing -------------------------------------------------------------------------
    @asynccontextmanager
    async def subscribe(
        self, *filters: str, qos: int = 1, buffer: int = 10_000
    ) -> AsyncIterator[MemoryObjectReceiveStream[Message]]:
        """Subscribe to ``filters`` for the duration of the block.

        Yields a stream of matching messages. When connected, the block starts only after the
        broker has confirmed the subscription; otherwise it is made on connection. A consumer
        that falls ``buffer`` messages behind loses the newest ones (logged).
        """
        send, receive = anyio.create_memory_object_stream[Message](buffer)
        sub = _Subscription(filters, qos, send)
        self._subs.append(sub)
        try:
            if self.connected:
                # made again, with the others, once the connection is back
                with contextlib.suppress(_ConnectionLost):
                    await self._send_subscribe([sub])
            async with receive:
                yield receive
        finally:
            self._subs.remove(sub)
            send.close()
            gone = [f for f in filters if not any(f in s.filters for s in self._subs)]
            if gone and self.connected and self._client is not None:
                self._client.unsubscribe(gone)
                self._wake_writer.set()

    async def _send_subscribe(self, subs: list[_Subscription]) -> None:
        pairs = [(f, s.qos) for s in subs for f in s.filters]
        client = self._client
        if not pairs or client is None:
            return
        rc, mid = client.subscribe(pairs)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise _ConnectionLost(f"subscribe failed: {paho.error_string(rc)}")
        done = self._suback[mid] = anyio.Event()
        self._wake_writer.set()
        with anyio.fail_after(10):
            await done.wait()
        if self._client is not client:  # released by a lost connection, not by a SUBACK
            raise _ConnectionLost("connection lost while subscribing")

    # paho callbacks (called from loop_read/loop_write, in the event loop's thread) ---------
    def _on_connect(
        self,
        _c: paho.Client,
        _u: object,
        _flags: paho.ConnectFlags,
        rc: ReasonCode,
        _p: Properties | None,
    ) -> None:
        self._connect_rc = rc
        self._connack.set()

    def _on_disconnect(
        self,
        _c: paho.Client,
        _u: object,
        _flags: paho.DisconnectFlags,
        _rc: ReasonCode,
        _p: Properties | None,
    ) -> None:
        self._lost.set()

    def _on_publish(
        self, _c: paho.Client, _u: object, mid: int, _rc: ReasonCode, _p: Properties
    ) -> None:
        seq = self._mids.pop(mid, None)
        if seq is not None:
            self.outbox.ack(seq)
            if self._careful:
                self._careful -= 1
            if self._suspect is not None and self._suspect[0] == seq:
                self._suspect = None
            self._acked.set()  # wake flush() waiters, then arm a fresh event
            self._acked = anyio.Event()
            self._wake_publisher.set()

    def _on_subscribe(
        self,
        _c: paho.Client,
        _u: object,
        mid: int,
        codes: list[ReasonCode],
        _p: Properties | None,
    ) -> None:
        event = self._suback.pop(mid, None)
        if event is not None:
            event.set()
        refused = [str(c) for c in codes if c.is_failure]
        if refused:
            log.error("broker refused a subscription: %s", ", ".join(refused))

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        topic = msg.topic
        payload = msg.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        message = Message(topic, payload, msg.qos, msg.retain)
        for sub in self._subs:
            if any(paho.topic_matches_sub(f, topic) for f in sub.filters):
                try:
                    sub.send.send_nowait(message)
                    if sub.dropping:  # caught up again: one line for the whole burst
                        log.warning(
                            "subscriber of %s dropped %d messages while behind",
                            sub.filters,
                            sub.dropping,
                        )
                        sub.dropping = 0
                except anyio.WouldBlock:
                    self.dropped_in += 1
                    sub.dropping += 1
                    if sub.dropping == 1:  # once per burst, not once per message
                        log.warning(
                            "subscriber of %s is %d messages behind: dropping",
                            sub.filters,
                            sub.send.statistics().current_buffer_used,
                        )
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass

    # connection --------------------------------------------------------------------------
    def _new_client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        client.max_inflight_messages_set(0)  # our own window bounds what is in flight
        client.max_queued_messages_set(0)
        if self.url.username:
            try:
                password = self.url.read_password()  # again each time: Secrets rotate
            except (OSError, UnicodeDecodeError) as exc:
                raise _ConnectionLost(
                    f"cannot read the password file {self.url.password_file}: "
                    f"{describe_failure(exc, self.url)}"
                ) from None
            client.username_pw_set(self.url.username, password)
        if self._ssl is not None:
            client.tls_set_context(self._ssl)
            client.tls_insecure_set(self.url.tls_insecure)
        will = self.will() if callable(self.will) else self.will
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _failed(self, cause: str) -> None:
        """Record a failed attempt; log it when new, or once a minute while it lasts."""
        self.connect_failures += 1
        self.last_error = cause
        now = time.monotonic()
        if (
            self._logged is None
            or self._logged[0] != cause
            or now - self._logged[1] >= (REPEAT_LOG_EVERY)
        ):
            log.warning(
                "broker %s: %s (retrying; %d messages queued)", self.url, cause, len(self.outbox)
            )
            self._logged = (cause, now)

    async def _supervise(self) -> None:
        try:
            while not self._stopped:
                try:
                    await self._session()
                except (OSError, _ConnectionLost, TimeoutError, BusError) as exc:
                    if self._renewing:  # asked for by reconnect(): no failure, no delay
                        self._renewing = False
                        log.info("broker %s: connecting anew", self.url)
                        continue
                    if not self._stopped:
                        self._failed(describe_failure(exc, self.url))
                delay = self._backoff.next()
                await anyio.sleep(delay)
        finally:
            self._stopped = True
            self._acked.set()  # flush() waiters: nothing will be sent any more

    def _fresh_session(self) -> None:
        self._lost = anyio.Event()
        self._connack = anyio.Event()
        self._connect_rc = None
        self._mids.clear()
        self._suback.clear()

    async def _session(self) -> None:
        client = self._client = self._new_client()
        self._fresh_session()
        accepted = False
        try:
            await anyio.to_thread.run_sync(
                client.connect, self.url.host, self.url.port, self.keepalive
            )
            sock = client.socket()
            if not isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
                # paho closed it: sending CONNECT failed (a TLS alert, e.g. no client cert)
                raise _ConnectionLost(_CLOSED_BEFORE_CONNACK)
            with contextlib.suppress(OSError):  # paho leaves Nagle on: up to 40 ms per report
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.on_socket_register_write = lambda *_: self._wake_writer.set()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._reader, client, sock)
                tg.start_soon(self._writer, client, sock)
                tg.start_soon(self._misc, client)
                tg.start_soon(self._watch_lost, tg)
                with anyio.fail_after(max(self.keepalive, 10)):
                    await self._connack.wait()
                if self._connect_rc is None or self._connect_rc.is_failure:
                    tg.cancel_scope.cancel()  # refused: reported below, after the group
                else:
                    accepted = True
                    await self._accepted(client, tg)
        finally:
            if self._connected.is_set():
                self._connected = anyio.Event()
            self._disconnected.set()
            self._lost_with_messages_in_flight()
            self.outbox.requeue()
            self._mids.clear()
            for waiter in self._suback.values():  # subscribe() calls give up on this session
                waiter.set()
            self._suback.clear()
            leftover = client.socket()
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.close()
            self._client = None
        if self._connect_rc is not None and self._connect_rc.is_failure:
            raise BusError(f"the broker refused the connection: {self._connect_rc}")
        if not accepted:
            raise _ConnectionLost(_CLOSED_BEFORE_CONNACK)
        raise _ConnectionLost("connection lost")

    def _lost_with_messages_in_flight(self) -> None:
        """Find the message that costs the connection, if one does, and drop it.

        A connection lost twice with the same message oldest in flight may be cut by that
        message, or one sent with it: the messages in flight are then sent one at a time.
        One that is alone in flight when the connection is lost, ``POISON_STRIKES`` times,
        is dropped (counted in :attr:`poisoned`, logged). An outage costs a resend, never a
        message: it would have to strike the same message, sent alone, three times over.
        """
        if not self._mids:
            return
        head = min(self._mids.values())
        if self._careful and len(self._mids) == 1:
            strikes = self._suspect[1] + 1 if self._suspect and self._suspect[0] == head else 1
            self._suspect = (head, strikes)
            if strikes >= POISON_STRIKES:
                message = self.outbox.peek(head)
                self.outbox.ack(head)
                self.poisoned += 1
                self.poisoned_values += message.values if message is not None else 0
                self._suspect = None
                self._careful = max(0, self._careful - 1)
                size = len(message.payload) if message is not None else 0
                topic = message.topic[:200] if message is not None else "?"
                log.error(
                    "dropped a message to %r (%d bytes): the broker closed the connection each "
                    "of the %d times it was sent alone (malformed, or over its size limit); "
                    "%d dropped so far",
                    topic,
                    size,
                    strikes,
                    self.poisoned,
                )
        elif head == self._head_at_loss:
            self._careful = len(self._mids)
        self._head_at_loss = head

    async def _accepted(self, client: paho.Client, tg: TaskGroup) -> None:
        made: set[int] = set()
        while pending := [s for s in self._subs if id(s) not in made]:
            await self._send_subscribe(pending)  # subs added meanwhile: next round
            made.update(id(s) for s in pending)
        if self._backoff.attempts:
            self.reconnects += 1
            level = logging.WARNING if self._logged else logging.INFO
            log.log(level, "connected to broker %s again", self.url)
        self._backoff.reset()
        self._logged = None
        self.last_error = None
        self._disconnected = anyio.Event()
        self._connected.set()
        for listener in self._listeners:
            listener()
        tg.start_soon(self._publisher, client)

    async def _watch_lost(self, tg: TaskGroup) -> None:
        await self._lost.wait()
        tg.cancel_scope.cancel()

    async def _reader(self, client: paho.Client, sock: socket.socket) -> None:
        while True:
            try:
                await anyio.wait_readable(sock)
            except (OSError, ValueError):  # paho closed the socket after a failed write
                self._lost.set()
                return
            while True:
                rc = client.loop_read()
                if rc != paho.MQTT_ERR_SUCCESS:
                    self._lost.set()
                    return
                pending = getattr(sock, "pending", None)  # TLS may buffer decrypted bytes
                if not (pending and pending()):
                    break

    async def _writer(self, client: paho.Client, sock: socket.socket) -> None:
        while True:
            if client.want_write():
                try:
                    await anyio.wait_writable(sock)
                except (OSError, ValueError):  # closed by paho: the connection is lost
                    self._lost.set()
                    return
                if client.loop_write() != paho.MQTT_ERR_SUCCESS:
                    self._lost.set()
                    return
                continue
            await self._wake_writer.wait()
            self._wake_writer = anyio.Event()

    async def _misc(self, client: paho.Client) -> None:
        while True:
            await anyio.sleep(1)
            if client.loop_misc() != paho.MQTT_ERR_SUCCESS:
                self._lost.set()
                return

    async def _publisher(self, client: paho.Client) -> None:
        while True:
            while len(self._mids) < (1 if self._careful else self.max_inflight):
                item = self.outbox.take()
                if item is None:
                    break
                seq, msg = item
                info = client.publish(msg.topic, msg.payload, msg.qos, msg.retain)
                if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_QUEUE_SIZE):
                    self._lost.set()
                    return
                self._mids[info.mid] = seq
            self._wake_writer.set()
            await self._wake_publisher.wait()
            self._wake_publisher = anyio.Event()
