"""Load-time checks of a property's ``pushMethod``: fields a target needs, extras installed."""

from __future__ import annotations

import functools
import importlib.util
from urllib.parse import urlsplit

from edgedev.bus._url import BrokerURL
from edgedev.config._crd import PushMethod
from edgedev.config._targets import address_problems, url_problems
from edgedev.twin._values import PropertyType

EXTRAS: dict[str, tuple[str, tuple[str, ...]] | None] = {
    "mqtt": None,
    "http": ("http", ("httpx",)),
    "otel": ("otel", ("httpx", "opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.common")),
    "dbMethod.influxdb2": ("influxdb", ("httpx",)),
    "dbMethod.redis": ("redis", ("redis",)),
    "dbMethod.TDEngine": ("tdengine", ("httpx",)),
    "dbMethod.mysql": ("mysql", ("asyncmy",)),
}
"""Each push target (as the YAML spells it) and the extra it needs: ``(extra, modules)``."""


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def missing_extra(target: str) -> str | None:
    """The error for ``target`` when its extra is not installed, else None."""
    need = EXTRAS.get(target)
    if need is None:
        return None
    extra, modules = need
    absent = [m for m in modules if not installed(m)]
    if not absent:
        return None
    return (
        f"pushMethod {target} needs the '{extra}' extra ({', '.join(absent)} not installed): "
        f"pip install 'edgedev[{extra}]'"
    )


def push_problems(
    push: PushMethod, type_: PropertyType
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Problems and warnings of one property's ``pushMethod``, as ``(field, message)`` pairs.

    ``field`` is relative to ``pushMethod`` (``mqtt.topic``, ``dbMethod.redis`` ...).
    """
    problems: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []

    def need(at: str, value: str, what: str) -> None:
        if not value.strip():
            problems.append((at, f"{what} is required"))

    def check(at: str, found: tuple[list[str], list[str]]) -> None:
        problems.extend((at, p) for p in found[0])
        warnings.extend((at, w) for w in found[1])

    def url(at: str, value: str, schemes: tuple[str, ...], default: str = "") -> None:
        if value.strip():
            check(at, url_problems(value, schemes, default_scheme=default))

    def address(at: str, value: str) -> None:
        if value.strip():
            check(at, address_problems(value))

    if push.mqtt is not None:
        need("mqtt.address", push.mqtt.address, "the broker address (mqtt://host:port)")
        if push.mqtt.address.strip():
            try:
                BrokerURL.parse(push.mqtt.address)
            except ValueError as exc:
                problems.append(("mqtt.address", str(exc)))
            else:
                schemes = ("mqtt", "mqtts", "tcp", "ssl", "tls")
                url("mqtt.address", push.mqtt.address, schemes, "mqtt")
        need("mqtt.topic", push.mqtt.topic, "the topic")
        if any(c in push.mqtt.topic for c in "+#\0"):
            problems.append(("mqtt.topic", "a topic to publish to has no wildcard (+ #)"))
    if push.http is not None:
        need("http.hostName", push.http.host_name, "the host (http://host)")
        url("http.hostName", push.http.host_name, ("http", "https"), "http")
    if push.otel is not None:
        endpoint = push.otel.endpoint_url
        need("otel.endpointURL", endpoint, "the OTLP/HTTP URL (http://collector:4318/v1/metrics)")
        if endpoint.strip() and urlsplit(endpoint).scheme not in ("http", "https"):
            problems.append(
                ("otel.endpointURL", f"{endpoint!r}: must be an http:// or https:// URL")
            )
        elif endpoint.strip():
            url("otel.endpointURL", endpoint, ("http", "https"))
        if type_ in (PropertyType.STRING, PropertyType.BYTES):
            problems.append(
                ("otel", f"OpenTelemetry gauges take numbers; this property is {type_}")
            )
    db = push.db_method
    if db is not None:
        if db.influxdb2 is not None:
            client, data = db.influxdb2.influxdb2_client_config, db.influxdb2.influxdb2_data_config
            at = "dbMethod.influxdb2"
            need(f"{at}.influxdb2ClientConfig.url", client.url, "the server URL")
            url(f"{at}.influxdb2ClientConfig.url", client.url, ("http", "https"))
            need(f"{at}.influxdb2ClientConfig.org", client.org, "the organisation")
            need(f"{at}.influxdb2ClientConfig.bucket", client.bucket, "the bucket")
            need(f"{at}.influxdb2DataConfig.measurement", data.measurement, "the measurement")
            need(f"{at}.influxdb2DataConfig.fieldKey", data.field_key, "the field key")
        if db.redis is not None:
            at = "dbMethod.redis.redisClientConfig.addr"
            need(at, db.redis.redis_client_config.addr, "the server address (host:port)")
            address(at, db.redis.redis_client_config.addr)
        if db.tdengine is not None:
            cfg = db.tdengine.client_config
            need("dbMethod.TDEngine.TDEngineClientConfig.addr", cfg.addr, "the REST address")
            url("dbMethod.TDEngine.TDEngineClientConfig.addr", cfg.addr, ("http", "https"), "http")
            need("dbMethod.TDEngine.TDEngineClientConfig.dbName", cfg.db_name, "the database")
        if db.mysql is not None:
            cfg2 = db.mysql.mysql_client_config
            at = "dbMethod.mysql.mysqlClientConfig"
            need(f"{at}.addr", cfg2.addr, "the server address (host:port)")
            address(f"{at}.addr", cfg2.addr)
            need(f"{at}.database", cfg2.database, "the database")
            need(f"{at}.userName", cfg2.user_name, "the user")
    for target in push.names:
        if target == "anomalyDetection":
            warnings.append(("anomalyDetection", "anomalyDetection is accepted but not served"))
            continue
        error = missing_extra(target)
        if error is not None:
            problems.append((target, error))
    return problems, warnings
