"""Sans-I/O codec for MQTT 3.1.1 control packets.

Bytes go in, packets come out: :class:`Parser` is an incremental parser that accepts data in
chunks of any size (a partial packet, several packets at once) and returns every packet that
is complete. :func:`encode` turns any packet back into bytes, and :func:`publish_prefix` is the
fast path the broker uses to fan one message out to many subscribers.

Nothing here does I/O or keeps a clock; the server (``_server.py``) owns both. Malformed input
always raises :class:`ProtocolError` and nothing else, so the caller can close the connection
with a single ``except``.

The fixed-header flags of each packet type follow this table (MQTT 3.1.1, section 2.2.2); the
parser refuses anything else:

=========== ==== ============ =========================================
packet      type flags        direction
=========== ==== ============ =========================================
CONNECT     1    0000         client -> server
CONNACK     2    0000         server -> client
PUBLISH     3    DUP QoS RET  both
PUBACK      4    0000         both
PUBREC      5    0000         both
PUBREL      6    0010         both
PUBCOMP     7    0000         both
SUBSCRIBE   8    0010         client -> server
SUBACK      9    0000         server -> client
UNSUBSCRIBE 10   0010         client -> server
UNSUBACK    11   0000         server -> client
PINGREQ     12   0000         client -> server
PINGRESP    13   0000         server -> client
DISCONNECT  14   0000         client -> server
=========== ==== ============ =========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, NoReturn, TypeAlias, assert_never

from edgedev._errors import EdgedevError

__all__ = (
    "MAX_REMAINING_LENGTH",
    "SUBACK_FAILURE",
    "ConnAck",
    "Connect",
    "ConnectReturnCode",
    "Disconnect",
    "Packet",
    "Parser",
    "PingReq",
    "PingResp",
    "ProtocolError",
    "PubAck",
    "PubComp",
    "PubRec",
    "PubRel",
    "Publish",
    "SubAck",
    "Subscribe",
    "UnsubAck",
    "Unsubscribe",
    "Will",
    "encode",
    "encode_remaining_length",
    "publish_prefix",
)

MAX_REMAINING_LENGTH: Final = 268_435_455
"""The largest remaining length that four bytes can express (256 MiB - 1)."""

SUBACK_FAILURE: Final = 0x80
"""SUBACK return code for a subscription the server refused."""


class ProtocolError(EdgedevError):
    """The byte stream is not valid MQTT 3.1.1; the connection must be closed."""


class ConnectReturnCode(IntEnum):
    """CONNACK return codes (MQTT 3.1.1, table 3.1)."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


@dataclass(frozen=True, slots=True)
class Will:
    """The last will carried by a CONNECT packet."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT: the first packet of every connection.

    When ``protocol_level`` is neither 3 nor 4 the payload is not decoded (its layout may
    differ), so ``client_id`` is empty; the server answers with return code 1 anyway.
    """

    client_id: str
    clean_session: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    protocol_name: str = "MQTT"
    protocol_level: int = 4


@dataclass(frozen=True, slots=True)
class ConnAck:
    """CONNACK: the server's answer to CONNECT."""

    session_present: bool
    return_code: int


@dataclass(frozen=True, slots=True)
class Publish:
    """PUBLISH: one application message. ``packet_id`` is set exactly when ``qos > 0``."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK: acknowledges a QoS 1 PUBLISH."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubRec:
    """PUBREC: first answer to a QoS 2 PUBLISH."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubRel:
    """PUBREL: the publisher releases a QoS 2 message."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PubComp:
    """PUBCOMP: completes the QoS 2 exchange."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE: one or more ``(topic filter, requested QoS)`` pairs."""

    packet_id: int
    subscriptions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class SubAck:
    """SUBACK: one return code (granted QoS or ``SUBACK_FAILURE``) per requested filter."""

    packet_id: int
    return_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: one or more topic filters to remove."""

    packet_id: int
    topic_filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnsubAck:
    """UNSUBACK: acknowledges an UNSUBSCRIBE."""

    packet_id: int


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ: keepalive probe from the client."""


@dataclass(frozen=True, slots=True)
class PingResp:
    """PINGRESP: the server's answer to PINGREQ."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT: the client leaves cleanly; its will is discarded."""


Packet: TypeAlias = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
)

# packet type -> (name, the fixed-header flags it must carry); PUBLISH (3) carries its own.
_FIXED_FLAGS: Final[dict[int, tuple[str, int]]] = {
    1: ("CONNECT", 0b0000),
    2: ("CONNACK", 0b0000),
    4: ("PUBACK", 0b0000),
    5: ("PUBREC", 0b0000),
    6: ("PUBREL", 0b0010),
    7: ("PUBCOMP", 0b0000),
    8: ("SUBSCRIBE", 0b0010),
    9: ("SUBACK", 0b0000),
    10: ("UNSUBSCRIBE", 0b0010),
    11: ("UNSUBACK", 0b0000),
    12: ("PINGREQ", 0b0000),
    13: ("PINGRESP", 0b0000),
    14: ("DISCONNECT", 0b0000),
}
_PUBLISH: Final = 3
_PINGREQ_BYTES: Final = b"\xc0\x00"
_PINGRESP_BYTES: Final = b"\xd0\x00"
_DISCONNECT_BYTES: Final = b"\xe0\x00"


# --------------------------------------------------------------------------------------------
# decoding


class _Reader:
    """Reads MQTT primitive fields from one packet body, refusing to run past its end."""

    __slots__ = ("_body", "_name", "_pos")

    def __init__(self, body: bytes, name: str) -> None:
        self._body = body
        self._name = name
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._body):
            raise ProtocolError(f"{self._name}: packet ends in the middle of a field")
        chunk = self._body[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def binary(self) -> bytes:
        return self._take(self.u16())

    def utf8(self, what: str) -> str:
        return _decode_utf8(self.binary(), f"{self._name} {what}")

    def packet_id(self) -> int:
        packet_id = self.u16()
        if packet_id == 0:
            raise ProtocolError(f"{self._name}: packet identifier 0 is not allowed")
        return packet_id

    @property
    def remaining(self) -> int:
        return len(self._body) - self._pos

    def rest(self) -> bytes:
        return self._take(self.remaining)

    def end(self) -> None:
        if self._pos != len(self._body):
            raise ProtocolError(f"{self._name}: {self.remaining} unexpected bytes at the end")


def _decode_utf8(raw: bytes, what: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what} is not valid UTF-8") from exc
    if "\x00" in text:
        raise ProtocolError(f"{what} contains U+0000")
    return text


def _check_topic_name(topic: str, what: str) -> None:
    if not topic:
        raise ProtocolError(f"{what} is empty")
    if "+" in topic or "#" in topic:
        raise ProtocolError(f"{what} {topic!r} contains a wildcard")


def _decode_connect(body: bytes) -> Connect:
    r = _Reader(body, "CONNECT")
    protocol_name = r.utf8("protocol name")
    level = r.u8()
    flags = r.u8()
    keepalive = r.u16()
    if protocol_name not in ("MQTT", "MQIsdp"):
        raise ProtocolError(f"CONNECT: unknown protocol name {protocol_name!r}")
    if level not in (3, 4):
        # Another protocol version: its payload may be laid out differently, do not guess.
        return Connect("", keepalive=keepalive, protocol_name=protocol_name, protocol_level=level)
    if flags & 0x01:
        raise ProtocolError("CONNECT: reserved flag is set")
    will_flag = bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    has_password = bool(flags & 0x40)
    has_username = bool(flags & 0x80)
    if will_qos == 3:
        raise ProtocolError("CONNECT: will QoS 3 is not allowed")
    if not will_flag and (will_qos or will_retain):
        raise ProtocolError("CONNECT: will QoS or retain set without a will")
    if has_password and not has_username:
        raise ProtocolError("CONNECT: password without a user name")
    client_id = r.utf8("client identifier")
    will = None
    if will_flag:
        topic = r.utf8("will topic")
        _check_topic_name(topic, "CONNECT: will topic")
        will = Will(topic, r.binary(), will_qos, will_retain)
    username = r.utf8("user name") if has_username else None
    password = r.binary() if has_password else None
    r.end()
    return Connect(
        client_id=client_id,
        clean_session=bool(flags & 0x02),
        keepalive=keepalive,
        username=username,
        password=password,
        will=will,
        protocol_name=protocol_name,
        protocol_level=level,
    )


def _decode_publish(flags: int, body: bytes) -> Publish:
    # The hot path: decoded inline rather than through _Reader.
    qos = (flags >> 1) & 0x03  # never 3: Parser checked the first byte
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise ProtocolError("PUBLISH: DUP set on a QoS 0 message")
    if len(body) < 2:
        raise ProtocolError("PUBLISH: packet ends in the middle of the topic")
    end = 2 + ((body[0] << 8) | body[1])
    if end > len(body):
        raise ProtocolError("PUBLISH: packet ends in the middle of the topic")
    topic = _decode_utf8(body[2:end], "PUBLISH topic")
    _check_topic_name(topic, "PUBLISH: topic")
    packet_id = None
    if qos:
        if end + 2 > len(body):
            raise ProtocolError("PUBLISH: packet ends in the middle of the packet identifier")
        packet_id = (body[end] << 8) | body[end + 1]
        if packet_id == 0:
            raise ProtocolError("PUBLISH: packet identifier 0 is not allowed")
        end += 2
    return Publish(topic, body[end:], qos, bool(flags & 0x01), dup, packet_id)


def _decode_subscribe(body: bytes) -> Subscribe:
    r = _Reader(body, "SUBSCRIBE")
    packet_id = r.packet_id()
    subscriptions: list[tuple[str, int]] = []
    while r.remaining:
        topic_filter = r.utf8("topic filter")
        qos = r.u8()
        if qos > 2:
            raise ProtocolError(f"SUBSCRIBE: requested QoS byte {qos:#04x} is invalid")
        subscriptions.append((topic_filter, qos))
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE: no topic filter")
    return Subscribe(packet_id, tuple(subscriptions))


def _decode_unsubscribe(body: bytes) -> Unsubscribe:
    r = _Reader(body, "UNSUBSCRIBE")
    packet_id = r.packet_id()
    topic_filters: list[str] = []
    while r.remaining:
        topic_filters.append(r.utf8("topic filter"))
    if not topic_filters:
        raise ProtocolError("UNSUBSCRIBE: no topic filter")
    return Unsubscribe(packet_id, tuple(topic_filters))


def _decode_suback(body: bytes) -> SubAck:
    r = _Reader(body, "SUBACK")
    packet_id = r.packet_id()
    codes = tuple(r.rest())
    if not codes:
        raise ProtocolError("SUBACK: no return code")
    for code in codes:
        if code > 2 and code != SUBACK_FAILURE:
            raise ProtocolError(f"SUBACK: return code {code:#04x} is invalid")
    return SubAck(packet_id, codes)


def _decode_connack(body: bytes) -> ConnAck:
    r = _Reader(body, "CONNACK")
    ack_flags = r.u8()
    return_code = r.u8()
    r.end()
    if ack_flags & 0xFE:
        raise ProtocolError("CONNACK: reserved acknowledge flags are set")
    return ConnAck(bool(ack_flags & 0x01), return_code)


def _decode_id_only(name: str, body: bytes) -> int:
    r = _Reader(body, name)
    packet_id = r.packet_id()
    r.end()
    return packet_id


def _decode_empty(name: str, body: bytes) -> None:
    if body:
        raise ProtocolError(f"{name}: expected no body, got {len(body)} bytes")


def _reject_first_byte(first: int) -> NoReturn:
    """Raise the ProtocolError that explains why ``first`` cannot start a packet."""
    packet_type = first >> 4
    flags = first & 0x0F
    if packet_type == _PUBLISH:
        raise ProtocolError("PUBLISH: QoS 3 is not allowed")
    spec = _FIXED_FLAGS.get(packet_type)
    if spec is None:
        raise ProtocolError(f"reserved packet type {packet_type}")
    name, expected = spec
    raise ProtocolError(f"{name}: fixed-header flags {flags:#06b}, expected {expected:#06b}")


# Every first byte that can start a valid packet, checked before the body arrives.
_VALID_FIRST_BYTES: Final = frozenset(
    [(_PUBLISH << 4) | flags for flags in range(16) if (flags >> 1) & 0x03 != 3]
    + [(packet_type << 4) | flags for packet_type, (_, flags) in _FIXED_FLAGS.items()]
)


def _decode(first: int, body: bytes) -> Packet:
    """Decode one packet whose first byte is in ``_VALID_FIRST_BYTES``."""
    packet_type = first >> 4
    if packet_type == _PUBLISH:
        return _decode_publish(first & 0x0F, body)
    name = _FIXED_FLAGS[packet_type][0]
    match packet_type:
        case 1:
            return _decode_connect(body)
        case 2:
            return _decode_connack(body)
        case 4:
            return PubAck(_decode_id_only(name, body))
        case 5:
            return PubRec(_decode_id_only(name, body))
        case 6:
            return PubRel(_decode_id_only(name, body))
        case 7:
            return PubComp(_decode_id_only(name, body))
        case 8:
            return _decode_subscribe(body)
        case 9:
            return _decode_suback(body)
        case 10:
            return _decode_unsubscribe(body)
        case 11:
            return UnsubAck(_decode_id_only(name, body))
        case 12:
            _decode_empty(name, body)
            return PingReq()
        case 13:
            _decode_empty(name, body)
            return PingResp()
        case _:  # 14, the only type left in _FIXED_FLAGS
            _decode_empty(name, body)
            return Disconnect()


class Parser:
    r"""Incremental MQTT 3.1.1 parser: feed it bytes, get complete packets back.

    Data may arrive split anywhere, or with several packets in one chunk; bytes that do not yet
    form a whole packet are kept for the next :meth:`feed`. After a :class:`ProtocolError` the
    stream cannot be resynchronised, so every later call raises again.

    Example:
        >>> parser = Parser()
        >>> parser.feed(b"\xc0")
        []
        >>> parser.feed(b"\x00\xe0\x00")
        [PingReq(), Disconnect()]
    """

    def __init__(self, max_packet_size: int = MAX_REMAINING_LENGTH) -> None:
        """Create a parser.

        Args:
            max_packet_size: the largest remaining length accepted; a bigger packet is refused
                as soon as its header arrives, before its body is buffered.
        """
        self._buffer = bytearray()
        self._max = max_packet_size
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not form a complete packet yet."""
        return len(self._buffer)

    def fail(self, error: ProtocolError) -> None:
        """Give up the stream: drop the buffered bytes; every later :meth:`feed` raises."""
        self._error = error
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        """Add received bytes and return every packet completed by them, in order.

        Raises:
            ProtocolError: the stream is malformed (now or since an earlier error).
        """
        if self._error is not None:
            raise ProtocolError(f"stream already failed: {self._error}")
        buf = self._buffer
        buf += data
        size = len(buf)
        packets: list[Packet] = []
        pos = 0
        try:
            while size - pos >= 2:
                first = buf[pos]
                if first not in _VALID_FIRST_BYTES:
                    _reject_first_byte(first)
                # Remaining length: 1 to 4 bytes, 7 bits each, least significant first.
                length = 0
                shift = 0
                i = pos + 1
                complete = False
                while i < size:
                    byte = buf[i]
                    i += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        complete = True
                        break
                    shift += 7
                    if shift == 28:
                        raise ProtocolError("remaining length is longer than 4 bytes")
                if not complete:
                    break
                if length > self._max:
                    raise ProtocolError(
                        f"packet of {length} bytes exceeds the limit of {self._max} bytes"
                    )
                end = i + length
                if end > size:
                    break
                packets.append(_decode(first, bytes(buf[i:end])))
                pos = end
        except ProtocolError as exc:
            self._error = exc
            raise
        del buf[:pos]
        return packets


# --------------------------------------------------------------------------------------------
# encoding


def encode_remaining_length(length: int) -> bytes:
    """Encode a remaining length in MQTT's variable-length form (1 to 4 bytes).

    Raises:
        ValueError: ``length`` is negative or above :data:`MAX_REMAINING_LENGTH`.
    """
    if length < 128:
        if length < 0:
            raise ValueError(f"negative remaining length {length}")
        return bytes((length,))
    if length > MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {length} exceeds {MAX_REMAINING_LENGTH}")
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _string(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) > 0xFFFF:
        raise ValueError(f"field of {len(raw)} bytes exceeds 65535")
    return _u16(len(raw)) + raw


def _packet(first: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return bytes((first,)) + encode_remaining_length(len(body)) + body


def publish_prefix(topic: bytes, payload_length: int, qos: int, retain: bool) -> bytes:
    """Return a PUBLISH packet up to and including its topic.

    The caller appends the 2-byte packet identifier (when ``qos > 0``) and the payload. This
    lets the broker encode a message once and give each subscriber its own packet identifier.

    Args:
        topic: the topic name, already UTF-8 encoded.
        payload_length: the number of payload bytes that will follow.
        qos: 0, 1 or 2.
        retain: the RETAIN flag.
    """
    length = 2 + len(topic) + payload_length + (2 if qos else 0)
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    return bytes((first,)) + encode_remaining_length(length) + len(topic).to_bytes(2, "big") + topic


def _encode_connect(packet: Connect) -> bytes:
    flags = 0x02 if packet.clean_session else 0
    payload = [_string(packet.client_id)]
    if packet.will is not None:
        flags |= 0x04 | (packet.will.qos << 3) | (0x20 if packet.will.retain else 0)
        payload += [_string(packet.will.topic), _string(packet.will.payload)]
    if packet.username is not None:
        flags |= 0x80
        payload.append(_string(packet.username))
    if packet.password is not None:
        flags |= 0x40
        payload.append(_string(packet.password))
    header = _string(packet.protocol_name) + bytes((packet.protocol_level, flags))
    return _packet(0x10, header, _u16(packet.keepalive), *payload)


def _encode_publish(packet: Publish) -> bytes:
    if (packet.packet_id is None) != (packet.qos == 0):
        raise ValueError("a PUBLISH has a packet identifier exactly when its QoS is above 0")
    topic = packet.topic.encode("utf-8")
    prefix = bytearray(publish_prefix(topic, len(packet.payload), packet.qos, packet.retain))
    if packet.dup:
        prefix[0] |= 0x08
    packet_id = b"" if packet.packet_id is None else _u16(packet.packet_id)
    return bytes(prefix) + packet_id + packet.payload


def encode(packet: Packet) -> bytes:
    """Encode any MQTT 3.1.1 control packet.

    Raises:
        ValueError: a field does not fit its wire format (a string over 65535 bytes, a packet
            over 256 MiB, a QoS 0 PUBLISH with a packet identifier, ...).
    """
    match packet:
        case Publish():
            return _encode_publish(packet)
        case PubAck(packet_id):
            return b"\x40\x02" + _u16(packet_id)
        case PubRec(packet_id):
            return b"\x50\x02" + _u16(packet_id)
        case PubRel(packet_id):
            return b"\x62\x02" + _u16(packet_id)
        case PubComp(packet_id):
            return b"\x70\x02" + _u16(packet_id)
        case Connect():
            return _encode_connect(packet)
        case ConnAck(session_present, return_code):
            return bytes((0x20, 2, 1 if session_present else 0, return_code))
        case Subscribe(packet_id, subscriptions):
            parts = [_string(f) + bytes((qos,)) for f, qos in subscriptions]
            return _packet(0x82, _u16(packet_id), *parts)
        case SubAck(packet_id, return_codes):
            return _packet(0x90, _u16(packet_id), bytes(return_codes))
        case Unsubscribe(packet_id, topic_filters):
            return _packet(0xA2, _u16(packet_id), *(_string(f) for f in topic_filters))
        case UnsubAck(packet_id):
            return b"\xb0\x02" + _u16(packet_id)
        case PingReq():
            return _PINGREQ_BYTES
        case PingResp():
            return _PINGRESP_BYTES
        case Disconnect():
            return _DISCONNECT_BYTES
        case _:
            assert_never(packet)
