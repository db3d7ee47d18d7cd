"""The container manifests: valid Kubernetes, complete kustomizations, wired as documented.

Validation is offline (``kubernetes-validate`` ships the API schemas). Every kustomization is
rendered by ``kubectl kustomize`` (skipped, with the reason, where kubectl is absent) and each
resource it renders is validated; the kustomizations are also walked here without kubectl:
every resource, base and patch they name must exist, and the tree under ``deploy/`` must hold
every workload a user expects.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from edgedev.loader import load_devices

ROOT = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.31.0"  # K3s and KubeEdge 1.20+ releases of that time
PROTOCOLS = ("modbus", "opcua", "ble", "gpio", "mqtt")
KUSTOMIZATION = "kustomization.yaml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
# What deploy/build-images builds from the Dockerfile, and the broker's upstream image.
BUILT = {f"edgedev:{VERSION}", *(f"edgedev-{p}:{VERSION}" for p in PROTOCOLS)}
UPSTREAM = {"eclipse-mosquitto:2"}

Doc = dict[str, Any]


def manifest_files() -> list[Path]:
    files = [*ROOT.glob("deploy/**/*.yaml"), *ROOT.glob("mappers/*/deploy/**/*.yaml")]
    return sorted(f for f in files if f.name != KUSTOMIZATION)


def load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def kustomizations() -> list[Path]:
    found = [
        *ROOT.glob(f"deploy/**/{KUSTOMIZATION}"),
        *ROOT.glob(f"mappers/*/deploy/**/{KUSTOMIZATION}"),
    ]
    return sorted(p.parent for p in found)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def is_resource(doc: Doc) -> bool:
    return "kind" in doc and "apiVersion" in doc and "op" not in doc


def render(directory: Path) -> Iterator[Doc]:
    """The resources a kustomization lists, depth first (no patches applied)."""
    spec = load_docs(directory / KUSTOMIZATION)[0]
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            yield from render(target)
        else:
            yield from (d for d in load_docs(target) if is_resource(d))


def deployments(directory: Path) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in render(directory) if d["kind"] == "Deployment"}


def container(deployment: Doc) -> Doc:
    first: Doc = deployment["spec"]["template"]["spec"]["containers"][0]
    return first


def env_of(deployment: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


@pytest.mark.parametrize("path", manifest_files(), ids=rel)
def test_deploy_every_manifest_is_valid_kubernetes(path: Path) -> None:
    docs = [d for d in load_docs(path) if is_resource(d)]
    if not docs:  # a JSON patch, checked against its targets below
        assert path.parent.name == "kubeedge"
        return
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["namespace" if doc["kind"] != "Namespace" else "name"] == "edgedev"


def test_deploy_validator_refuses_a_broken_manifest() -> None:
    broken = copy.deepcopy(deployments(ROOT / "deploy")["edgedev-modbus"])
    container(broken)["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("directory", kustomizations(), ids=rel)
def test_deploy_kustomization_names_only_existing_files(directory: Path) -> None:
    spec = load_docs(directory / KUSTOMIZATION)[0]
    assert spec["kind"] == "Kustomization"
    for entry in spec.get("resources", []):
        target = directory / entry
        assert target.is_file() or (target / KUSTOMIZATION).is_file(), entry
    for patch in spec.get("patches", []):
        assert "patch" in patch or (directory / patch["path"]).is_file(), patch
    names = [(d["kind"], d["metadata"]["name"]) for d in render(directory)]
    assert len(names) == len(set(names)), "a resource is listed twice"


def test_deploy_root_kustomization_holds_broker_agent_and_every_mapper() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in render(ROOT / "deploy")}
    expected = {("Namespace", "edgedev"), ("ConfigMap", "edgedev-bus")}
    expected |= {("Deployment", "mosquitto"), ("Service", "mosquitto")}
    expected |= {("Deployment", "edgedev-agent"), ("PersistentVolumeClaim", "edgedev-agent-data")}
    for p in PROTOCOLS:
        expected |= {("Deployment", f"edgedev-{p}"), ("ConfigMap", f"edgedev-{p}-devices")}
        expected.add(("PersistentVolumeClaim", f"edgedev-{p}-data"))
    assert expected <= kinds
    bus = next(d for d in render(ROOT / "deploy") if d["metadata"]["name"] == "edgedev-bus")
    service = "mosquitto.edgedev.svc.cluster.local:1883"
    assert bus["data"] == {
        "EDGEDEV_BROKER": f"mqtt://{service}",
        "EDGEDEV_TOPIC_ROOT": "$hw/events",
    }


@pytest.mark.parametrize("name", ["edgedev-agent", *(f"edgedev-{p}" for p in PROTOCOLS)])
def test_deploy_workload_is_pinned_probed_sized_and_unprivileged(name: str) -> None:
    deployment = deployments(ROOT / "deploy")[name]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/edge": ""}
    assert {
        "key": "node-role.kubernetes.io/edge",
        "operator": "Exists",
        "effect": "NoSchedule",
    } in (pod["tolerations"])
    assert deployment["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the user of the images
    box = container(deployment)
    assert box["securityContext"]["allowPrivilegeEscalation"] is False
    assert not box["securityContext"].get("privileged", False)
    env = env_of(deployment)
    port = int(env["EDGEDEV_HEALTH_PORT"])
    named = {p["name"]: p["containerPort"] for p in box["ports"]}
    assert named["health"] == port
    assert box["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert box["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert {"cpu", "memory"} <= set(box["resources"]["requests"])
    assert {"cpu", "memory"} <= set(box["resources"]["limits"])
    assert box["envFrom"] == [{"configMapRef": {"name": "edgedev-bus"}}]
    # The data directory lives on the data volume.
    mounts = {m["name"]: m["mountPath"] for m in box["volumeMounts"]}
    assert env["EDGEDEV_DATA_DIR"].startswith(mounts["data"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{name}-data"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deploy_mapper_runs_its_image_on_its_configmap(protocol: str) -> None:
    deployment = deployments(ROOT / "deploy")[f"edgedev-{protocol}"]
    box = container(deployment)
    assert box["image"] == f"edgedev-{protocol}:{VERSION}"
    assert box["args"] == ["run", "-f", "/etc/edgedev/devices.yaml"]
    assert env_of(deployment)["EDGEDEV_NODE"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    mounts = {m["name"]: m["mountPath"] for m in box["volumeMounts"]}
    assert mounts["devices"] == "/etc/edgedev"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["devices"]["configMap"]["name"] == f"edgedev-{protocol}-devices"
    # The image deploy/build-images tags for this mapper (MAPPER=<protocol>).
    script = (ROOT / "deploy" / "build-images").read_text(encoding="utf-8")
    assert f"edgedev-{protocol}" in script.split("all=(", 1)[1].split(")", 1)[0]
    assert box["image"] in BUILT


@pytest.mark.parametrize(
    "protocol", [pytest.param(p, marks=pytest.mark.needs(f"edgedev_{p}")) for p in PROTOCOLS]
)
def test_deploy_configmap_devices_pass_edgedev_validate(protocol: str, tmp_path: Path) -> None:
    (configmap,) = load_docs(ROOT / "mappers" / protocol / "deploy" / "devices.yaml")
    path = tmp_path / "devices.yaml"
    path.write_text(configmap["data"]["devices.yaml"], encoding="utf-8")
    devices = load_devices([path])
    assert devices
    assert {d.protocol for d in devices} == {protocol}


@pytest.mark.needs("edgedev_modbus")
def test_deploy_modbus_simulator_serves_what_the_mapper_reads(tmp_path: Path) -> None:
    def devices(path: Path) -> dict[str, tuple[str | None, int, list[str]]]:
        (configmap,) = load_docs(path)
        file = tmp_path / f"{path.parent.name}.yaml"
        file.write_text(configmap["data"]["devices.yaml"], encoding="utf-8")
        return {
            d.id: (d.config.ip, d.config.port, [p.name for p in d.properties])
            for d in load_devices([file])
        }

    deploy = ROOT / "mappers" / "modbus" / "deploy"
    mapper, simulated = devices(deploy / "devices.yaml"), devices(deploy / "simulator/devices.yaml")
    assert mapper.keys() == simulated.keys()
    service = next(
        d for d in load_docs(deploy / "simulator/simulator.yaml") if d["kind"] == "Service"
    )
    ports = {p["port"] for p in service["spec"]["ports"]}
    for device_id, (host, port, props) in mapper.items():
        assert host == service["metadata"]["name"]
        assert port in ports
        assert simulated[device_id] == ("0.0.0.0", port, props)


def test_deploy_kubeedge_overlay_patches_apply_to_every_mapper() -> None:
    overlay = ROOT / "deploy" / "kubeedge"
    spec = load_docs(overlay / KUSTOMIZATION)[0]
    assert "../broker" not in spec["resources"] and "../agent" not in spec["resources"]
    (bus,) = load_docs(overlay / "bus.yaml")
    assert bus["data"]["EDGEDEV_BROKER"] == "mqtt://127.0.0.1:1883"
    # DMI mode: reports go to EdgeCore over DMI, so MQTT must not be its $hw/events too
    assert bus["data"]["EDGEDEV_DMI"] == "1"
    assert bus["data"]["EDGEDEV_TOPIC_ROOT"] != "$hw/events"
    assert bus["data"]["EDGEDEV_DMI_SOCKET"] == "/etc/kubeedge/dmi.sock"
    ops = [*load_docs(overlay / "host-network.yaml")[0], *load_docs(overlay / "dmi.yaml")[0]]
    for p in PROTOCOLS:  # every mapper can be added to the overlay as it is
        pod = load_docs(ROOT / "mappers" / p / "deploy" / "deployment.yaml")[0]
        assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "mapper"
        assert env_of(pod)["EDGEDEV_PROTOCOLS"] == p
        guarded: set[str] = set()
        for op in ops:
            *parents, last = op["path"].strip("/").split("/")
            node: Any = pod
            for key in parents:
                node = node[int(key)] if isinstance(node, list) else node[key]
            if op["op"] == "add":
                continue
            target = node[int(last)] if isinstance(node, list) else node[last]
            if op["op"] == "test":  # a JSON-patch guard: the patch fails unless it holds
                assert target == op["value"], (p, op["path"])
                guarded.add(op["path"].rsplit("/", 1)[0])
            elif op["op"] == "replace" and isinstance(target, dict) and "name" in target:
                assert op["path"] in guarded or target["name"] == op["value"]["name"], (p, op)


@pytest.mark.parametrize("name", ["edgedev-agent", *(f"edgedev-{p}" for p in PROTOCOLS)])
def test_deploy_every_variable_set_is_one_the_command_reads(name: str) -> None:
    from edgedev.cli import build_parser

    deployment = deployments(ROOT / "deploy")[name]
    command = container(deployment)["args"][0]
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    help_text = " ".join(sub.choices[command].format_help().split())
    bus = next(d for d in render(ROOT / "deploy") if d["metadata"]["name"] == "edgedev-bus")
    for variable in [*env_of(deployment), *bus["data"]]:
        if variable.startswith("EDGEDEV_"):
            assert variable in help_text, f"`edgedev {command}` does not read {variable}"


def kubectl_kustomize(directory: Path) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomizations are not rendered")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {rel(directory)}: {done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.mark.parametrize("directory", kustomizations(), ids=rel)
def test_deploy_kustomize_renders_valid_resources_on_our_images(directory: Path) -> None:
    docs = kubectl_kustomize(directory)
    assert docs, f"{rel(directory)} renders nothing"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for box in pod.get("containers", []) + pod.get("initContainers", []):
            assert box["image"] in BUILT | UPSTREAM, (rel(directory), box["image"])


def test_deploy_health_ports_are_distinct_and_bus_credentials_are_mounted() -> None:
    """On host networking (deploy/kubeedge) two workloads on one port would collide."""
    ports: dict[int, str] = {}
    for name, deployment in deployments(ROOT / "deploy").items():
        box = container(deployment)
        if box.get("args", [""])[0] not in ("run", "agent"):
            continue  # the broker itself
        (port,) = [p["containerPort"] for p in box["ports"] if p["name"] == "health"]
        assert env_of(deployment)["EDGEDEV_HEALTH_PORT"] == str(port), name
        assert port not in ports, f"{name} and {ports.get(port)} both use {port}"
        ports[port] = name
        mounts = {m["name"]: m for m in box["volumeMounts"]}
        assert mounts["bus-credentials"]["mountPath"] == "/etc/edgedev-bus", name
        volume = next(
            v
            for v in deployment["spec"]["template"]["spec"]["volumes"]
            if v["name"] == "bus-credentials"
        )
        assert volume["secret"]["secretName"] == "edgedev-bus-credentials", name
        assert volume["secret"]["optional"] is True, name
    assert len(ports) == 1 + len(PROTOCOLS)
