"""Cloudera-style resource names for deployments, builds and models.

Code written for Cloudera ML reads ``modelDeploymentCrn``, ``modelBuildCrn`` and ``modelCrn``
from metrics records; modeldeck derives all three from the deployment, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

CRN_PREFIX = "crn:cdp:ml:::workspace:modeldeck"
DEV_PREFIX = "crn:cdp:ml:::workspace:dev"


@dataclass(frozen=True)
class Identity:
    """The three names a metrics record carries."""

    deployment: str
    build: str
    model: str


DEV = Identity(
    deployment=f"{DEV_PREFIX}/model-deployment",
    build=f"{DEV_PREFIX}/model-build",
    model=f"{DEV_PREFIX}/model",
)


def deployment_crn(deployment_id: str) -> str:
    return f"{CRN_PREFIX}/model-deployment/{deployment_id}"


def identity(deployment_id: str, model_name: str, model_version: str) -> Identity:
    build = f"{CRN_PREFIX}/model-build/{deployment_id}/v{model_version or '0'}"
    return Identity(
        deployment=deployment_crn(deployment_id),
        build=build,
        model=f"{CRN_PREFIX}/model/{model_name or deployment_id}",
    )
