"""KubeEdge DMI messages <-> the resolved specs that the YAML loader makes (pure, no I/O).

EdgeCore sends a ``Device`` with its model's ``protocolConfigData`` and property
``visitors`` already merged in, and a ``DeviceModel`` without a protocol. Both become the
Kubernetes JSON of the resources, then go through :func:`edgedev.loader.load_resources`: the
same validation, and the same problems naming device and field, as ``edgedev validate``.

``configData`` values travel as ``google.protobuf.Any`` wrappers. EdgeCore decoded the
Kubernetes JSON first, so every number arrives as a 32-bit ``FloatValue`` (port 5020 as
5020.0, scale 0.1 as 0.100000001) and a zero may arrive as an empty ``Any``: a float32 is
read back as the shortest decimal that gives the same float32, and a whole number becomes an
``int``.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf import any_pb2, json_format, struct_pb2, wrappers_pb2
from google.protobuf.message import DecodeError, Message
from pydantic import BaseModel

from edgedev._errors import ConfigError, Problem
from edgedev.config._crd import API_VERSION, AccessMode, DeviceMethod, PushMethod
from edgedev.config._spec import DeviceCommand, DeviceSpec
from edgedev.dmi._pb import api_pb2 as pb
from edgedev.loader import load_resources

if TYPE_CHECKING:
    from edgedev._plugins import Registry
    from edgedev.drivers import AnyDriver

SOURCE = "dmi"
"""What problems name as their file: the resources came over DMI."""

_WRAPPERS: dict[str, type[Message]] = {
    w.DESCRIPTOR.full_name: w
    for w in (
        wrappers_pb2.StringValue,
        wrappers_pb2.FloatValue,
        wrappers_pb2.DoubleValue,
        wrappers_pb2.Int32Value,
        wrappers_pb2.Int64Value,
        wrappers_pb2.UInt32Value,
        wrappers_pb2.UInt64Value,
        wrappers_pb2.BoolValue,
    )
}
_JSON_TYPES: dict[str, type[Message]] = {
    w.DESCRIPTOR.full_name: w for w in (struct_pb2.Struct, struct_pb2.ListValue, struct_pb2.Value)
}


def _float32(value: float) -> float:
    """The shortest decimal that is the same float32 as ``value``."""
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


def _whole(value: float) -> int | float:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def unpack_value(value: any_pb2.Any) -> Any:
    """The JSON value inside one ``configData`` entry.

    Raises:
        ValueError: a type that is not a protobuf wrapper or JSON value.
    """
    if not value.type_url:
        if not value.value:
            return 0  # how EdgeCore's encoding can carry a zero
        raise ValueError("an Any without a type")
    name = value.type_url.rsplit("/", 1)[-1]
    wrapper = _WRAPPERS.get(name)
    try:
        if wrapper is not None:
            message = wrapper()
            value.Unpack(message)
            inner = getattr(message, "value")  # noqa: B009 (wrappers share no base type)
            if name == "google.protobuf.FloatValue":
                return _whole(_float32(inner))
            if name == "google.protobuf.DoubleValue":
                return _whole(inner)
            return inner
        json_type = _JSON_TYPES.get(name)
        if json_type is not None:
            message = json_type()
            value.Unpack(message)
            return json_format.MessageToDict(message)
    except DecodeError as exc:
        raise ValueError(f"undecodable {name}: {exc}") from None
    raise ValueError(f"unsupported value type {name!r}")


def pack_value(value: Any) -> any_pb2.Any:
    """``value`` (str, bool, int, float, or JSON) as the ``Any`` of a ``configData`` entry."""
    message: Message
    if isinstance(value, str):
        message = wrappers_pb2.StringValue(value=value)
    elif isinstance(value, bool):
        message = wrappers_pb2.BoolValue(value=value)
    elif isinstance(value, int):
        message = wrappers_pb2.Int64Value(value=value)
    elif isinstance(value, float):
        message = wrappers_pb2.DoubleValue(value=value)
    else:
        message = json_format.ParseDict(value, struct_pb2.Value())
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _config(data: Mapping[str, any_pb2.Any], field: str, problems: list[tuple[str, str]]) -> Any:
    out: dict[str, Any] = {}
    for key, value in data.items():
        try:
            out[key] = unpack_value(value)
        except ValueError as exc:
            problems.append((f"{field}.{key}", str(exc)))
    return out


def model_resource(model: pb.DeviceModel) -> dict[str, Any]:
    """The Kubernetes JSON of a DMI ``DeviceModel``."""
    props = []
    for p in model.spec.properties:
        prop: dict[str, Any] = {"name": p.name, "type": p.type}
        if p.description:
            prop["description"] = p.description
        if p.accessMode:
            prop["accessMode"] = p.accessMode
        if p.minimum:
            prop["minimum"] = p.minimum
        if p.maximum:
            prop["maximum"] = p.maximum
        if p.unit:
            prop["unit"] = p.unit
        props.append(prop)
    return {
        "apiVersion": API_VERSION,
        "kind": "DeviceModel",
        "metadata": {"name": model.name, "namespace": model.namespace or "default"},
        "spec": {"properties": props},
    }


def method_resource(method: pb.DeviceMethod) -> dict[str, Any]:
    """The Kubernetes JSON of a DMI ``DeviceMethod`` (``Device.spec.methods[]``)."""
    return _present(
        name=method.name, description=method.description, propertyNames=list(method.propertyNames)
    )


def method_message(method: DeviceMethod) -> pb.DeviceMethod:
    """The DMI ``DeviceMethod`` of a device's method (:func:`method_resource` reversed)."""
    return pb.DeviceMethod(
        name=method.name, description=method.description, propertyNames=method.property_names
    )


def command_spec(command: pb.DeviceCommand) -> DeviceCommand:
    """A DeviceModel's DMI ``DeviceCommand`` as the spec keeps it."""
    return DeviceCommand(
        name=command.name,
        url=command.url,
        method=command.method,
        status_code=tuple(command.status_code),
        parameters=tuple(command.parameters),
        response=command.response,
    )


def command_message(command: DeviceCommand) -> pb.DeviceCommand:
    """The DMI ``DeviceCommand`` of a spec's command (:func:`command_spec` reversed)."""
    return pb.DeviceCommand(
        name=command.name,
        url=command.url,
        method=command.method,
        status_code=command.status_code,
        parameters=command.parameters,
        response=command.response,
    )


def _present(**fields: object) -> dict[str, object]:
    """``fields`` without those at proto3's zero value, which means unset."""
    return {k: v for k, v in fields.items() if v not in ("", 0, {}, None)}


def push_resource(push: pb.PushMethod) -> dict[str, Any] | None:
    """The Kubernetes JSON of a DMI ``PushMethod`` (``None`` when it names no target).

    EdgeCore copies the Device's ``pushMethod`` into the message under other spellings
    (``hostname``, ``requestpath``, ``tdEngineClientConfig``, ``dbname``); this gives the
    CRD's back, so that the loader checks it as it checks a file. A zero number is unset.
    """
    out: dict[str, Any] = {}
    if push.HasField("http"):
        h = push.http
        out["http"] = _present(
            hostName=h.hostname, port=h.port, requestPath=h.requestpath, timeout=h.timeout
        )
    if push.HasField("mqtt"):
        m = push.mqtt
        out["mqtt"] = _present(address=m.address, topic=m.topic, qos=m.qos, retained=m.retained)
    if push.HasField("otel"):
        out["otel"] = _present(endpointURL=push.otel.endpointURL)
    if push.HasField("dbMethod"):
        db, methods = push.dbMethod, {}
        if db.HasField("influxdb2"):
            client, data = db.influxdb2.influxdb2ClientConfig, db.influxdb2.influxdb2DataConfig
            methods["influxdb2"] = {
                "influxdb2ClientConfig": _present(
                    url=client.url, org=client.org, bucket=client.bucket
                ),
                "influxdb2DataConfig": _present(
                    measurement=data.measurement, tag=dict(data.tag), fieldKey=data.fieldKey
                ),
            }
        if db.HasField("redis"):
            r = db.redis.redisClientConfig
            methods["redis"] = {
                "redisClientConfig": _present(
                    addr=r.addr, db=r.db, poolsize=r.poolsize, minIdleConns=r.minIdleConns
                )
            }
        if db.HasField("tdengine"):
            td = db.tdengine.tdEngineClientConfig
            methods["TDEngine"] = {"TDEngineClientConfig": _present(addr=td.addr, dbName=td.dbname)}
        if db.HasField("mysql"):
            my = db.mysql.mysqlClientConfig
            methods["mysql"] = {
                "mysqlClientConfig": _present(
                    addr=my.addr, database=my.database, userName=my.userName
                )
            }
        out["dbMethod"] = methods
    if push.HasField("anomalyDetection"):  # loads with the files' warning: not served
        detection = {}
        for key, value in push.anomalyDetection.data.items():
            try:
                detection[key] = unpack_value(value)
            except ValueError:
                detection[key] = None  # unreadable, and not used
        out["anomalyDetection"] = detection
    return out or None


def push_message(push: PushMethod) -> pb.PushMethod:
    """The DMI ``PushMethod`` of a property's ``pushMethod`` (:func:`push_resource` reversed)."""
    message = pb.PushMethod()
    if push.anomaly_detection is not None:
        message.anomalyDetection.SetInParent()
        for key, value in push.anomaly_detection.items():
            if value is not None:
                message.anomalyDetection.data[key].CopyFrom(pack_value(value))
    if push.http is not None:
        h = push.http
        message.http.CopyFrom(
            pb.PushMethodHTTP(
                hostname=h.host_name, port=h.port, requestpath=h.request_path, timeout=h.timeout
            )
        )
    if push.mqtt is not None:
        m = push.mqtt
        message.mqtt.CopyFrom(
            pb.PushMethodMQTT(address=m.address, topic=m.topic, qos=m.qos, retained=m.retained)
        )
    if push.otel is not None:
        message.otel.CopyFrom(pb.PushMethodOTEL(endpointURL=push.otel.endpoint_url))
    db = push.db_method
    if db is not None:
        out = message.dbMethod
        out.SetInParent()
        if db.influxdb2 is not None:
            client, data = db.influxdb2.influxdb2_client_config, db.influxdb2.influxdb2_data_config
            out.influxdb2.influxdb2ClientConfig.CopyFrom(
                pb.Influxdb2ClientConfig(url=client.url, org=client.org, bucket=client.bucket)
            )
            out.influxdb2.influxdb2DataConfig.CopyFrom(
                pb.Influxdb2DataConfig(
                    measurement=data.measurement, tag=data.tag, fieldKey=data.field_key
                )
            )
        if db.redis is not None:
            r = db.redis.redis_client_config
            out.redis.redisClientConfig.CopyFrom(
                pb.RedisClientConfig(
                    addr=r.addr, db=r.db, poolsize=r.poolsize, minIdleConns=r.min_idle_conns
                )
            )
        if db.tdengine is not None:
            td = db.tdengine.client_config
            out.tdengine.tdEngineClientConfig.CopyFrom(
                pb.TDEngineClientConfig(addr=td.addr, dbname=td.db_name)
            )
        if db.mysql is not None:
            my = db.mysql.mysql_client_config
            out.mysql.mysqlClientConfig.CopyFrom(
                pb.MySQLClientConfig(addr=my.addr, database=my.database, userName=my.user_name)
            )
    return message


def device_resource(device: pb.Device) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The Kubernetes JSON of a DMI ``Device``, and ``(field, message)`` of values unreadable.

    A desired value of ``""`` (EdgeCore always sends the field) means none.
    """
    problems: list[tuple[str, str]] = []
    spec = device.spec
    props = []
    for i, p in enumerate(spec.properties):
        at = f"spec.properties[{i}]"
        prop: dict[str, Any] = {
            "name": p.name,
            "reportToCloud": p.reportToCloud,
            "visitors": {
                "protocolName": p.visitors.protocolName,
                "configData": _config(
                    p.visitors.configData.data, f"{at}.visitors.configData", problems
                ),
            },
        }
        if p.desired.value != "":
            prop["desired"] = {"value": p.desired.value}
        if p.collectCycle:
            prop["collectCycle"] = p.collectCycle
        if p.reportCycle:
            prop["reportCycle"] = p.reportCycle
        if p.HasField("pushMethod"):
            push = push_resource(p.pushMethod)
            if push is not None:
                prop["pushMethod"] = push
        props.append(prop)
    device_spec: dict[str, Any] = {
        "deviceModelRef": {"name": spec.deviceModelReference},
        "protocol": {
            "protocolName": spec.protocol.protocolName,
            "configData": _config(
                spec.protocol.configData.data, "spec.protocol.configData", problems
            ),
        },
        "properties": props,
    }
    if spec.methods:
        device_spec["methods"] = [method_resource(m) for m in spec.methods]
    if device.HasField("status"):
        # EdgeCore puts the Device's stateReport here (dtcommon/util.go ConvertDevice), and
        # always sends it: false and 0 when the Device says nothing, as upstream reads them
        state: dict[str, Any] = {"reportToCloud": device.status.reportToCloud}
        if device.status.reportCycle:
            state["reportCycle"] = device.status.reportCycle
        device_spec["stateReport"] = state
    resource = {
        "apiVersion": API_VERSION,
        "kind": "Device",
        "metadata": {"name": device.name, "namespace": device.namespace or "default"},
        "spec": device_spec,
    }
    return resource, problems


def device_id(device: pb.Device) -> str:
    """``namespace/name`` of a DMI ``Device`` (namespace ``default`` when empty)."""
    return f"{device.namespace or 'default'}/{device.name}"


def to_spec(
    device: pb.Device,
    model: pb.DeviceModel | None,
    *,
    drivers: Registry[AnyDriver] | None = None,
    warnings: list[Problem] | None = None,
) -> DeviceSpec:
    """The resolved spec of a DMI ``Device`` with its ``DeviceModel``.

    The checks and the warnings of :func:`~edgedev.loader.load_devices`, the source named
    ``dmi``: ``warnings`` receives what loads but deserves a look (logged when not given).
    Desired values are carried unchecked: the device's desired writer applies the one rule
    for desired values to them (:func:`~edgedev.drivers.check_desired`) and refuses an odd
    one with the reason, so that a desired value never costs EdgeCore's device its mapper.

    Raises:
        ConfigError: the device is invalid; each problem names the device and the field
            (``model`` ``None`` is reported as a missing DeviceModel).
    """
    resource, problems = device_resource(device)
    name = device_id(device)
    if problems:
        raise ConfigError([Problem(SOURCE, 1, "Device", name, f, m) for f, m in problems])
    desired = {
        p["name"]: p.pop("desired")["value"]
        for p in resource["spec"]["properties"]
        if "desired" in p
    }
    resources: list[dict[str, Any]] = [resource]
    if model is not None:
        resources.insert(0, model_resource(model))
    [spec] = load_resources(resources, source=SOURCE, drivers=drivers, warnings=warnings)
    if desired:
        props = tuple(dataclasses.replace(p, desired=desired.get(p.name)) for p in spec.properties)
        spec = dataclasses.replace(spec, properties=props)
    if model is not None and model.spec.commands:
        # not a field of the Kubernetes resource: carried beside the loader
        commands = tuple(command_spec(c) for c in model.spec.commands)
        spec = dataclasses.replace(spec, commands=commands)
    return spec


def _config_data(config: BaseModel) -> pb.CustomizedValue:
    data = config.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    return pb.CustomizedValue(data={k: pack_value(v) for k, v in data.items() if v is not None})


def _number_text(value: float | None) -> str:
    if value is None:
        return ""
    return json.dumps(_whole(value))


def to_device(spec: DeviceSpec, desired: Mapping[str, str] | None = None) -> pb.Device:
    """The DMI ``Device`` of a spec (desired values from ``desired``, else from the spec)."""
    desired = desired or {}
    props = []
    for p in spec.properties:
        value = desired.get(p.name, p.desired)
        props.append(
            pb.DeviceProperty(
                name=p.name,
                desired=pb.TwinProperty(value=value or ""),
                visitors=pb.VisitorConfig(
                    protocolName=spec.protocol, configData=_config_data(p.visitor)
                ),
                collectCycle=round(p.collect_cycle * 1000),
                reportCycle=round(p.report_cycle * 1000),
                reportToCloud=p.report_to_cloud,
                pushMethod=push_message(p.push_method) if p.push_method is not None else None,
            )
        )
    state = spec.state_report
    return pb.Device(
        name=spec.name,
        namespace=spec.namespace,
        spec=pb.DeviceSpec(
            deviceModelReference=spec.model,
            protocol=pb.ProtocolConfig(
                protocolName=spec.protocol, configData=_config_data(spec.config)
            ),
            properties=props,
            methods=[method_message(m) for m in spec.methods],
        ),
        status=None
        if state is None
        else pb.DeviceStatus(
            reportToCloud=state.report_to_cloud, reportCycle=state.report_cycle or 0
        ),
    )


def to_model(spec: DeviceSpec) -> pb.DeviceModel:
    """The DMI ``DeviceModel`` of a spec's properties (as far as the spec knows them)."""
    return pb.DeviceModel(
        name=spec.model,
        namespace=spec.namespace,
        spec=pb.DeviceModelSpec(
            properties=[
                pb.ModelProperty(
                    name=p.name,
                    description=p.description,
                    type=p.type.value,
                    accessMode=(p.access_mode or AccessMode.READ_WRITE).value,
                    minimum=_number_text(p.minimum),
                    maximum=_number_text(p.maximum),
                    unit=p.unit,
                )
                for p in spec.properties
            ],
            commands=[command_message(c) for c in spec.commands],
        ),
    )
