"""Cloudera-style resource names for deployments, builds and models.

Code written for Cloudera ML reads ``modelDeploymentCrn``, ``modelBuildCrn`` and ``modelCrn``
from metrics records; modeldeck derives all three from the deployment, in one place.

One scheme, ``crn:cdp:ml:::workspace:modeldeck/<kind>/<id>``, names both modeldeck's own
deployments (``model-deployment/<deployment id>``, with ``model/<registered model name>`` and
``model-build/<deployment id>/v<version>``) and the Cloudera ML API's objects, each by its own id
(``model/<model id>``, ``model-build/<build id>``, ``model-deployment/<deployment id>``): ids
are UUIDs, so no two objects share a CRN.
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


MODEL_CRN = f"{CRN_PREFIX}/model/"
BUILD_CRN = f"{CRN_PREFIX}/model-build/"
DEPLOYMENT_CRN = f"{CRN_PREFIX}/model-deployment/"


def deployment_crn(deployment_id: str) -> str:
    """A modeldeck deployment's CRN, or a Cloudera ML API deployment's (by its id)."""
    return DEPLOYMENT_CRN + deployment_id


def model_crn(model_id: str) -> str:
    """A Cloudera ML API model's CRN."""
    return MODEL_CRN + model_id


def build_crn(build_id: str) -> str:
    """A Cloudera ML API build's CRN."""
    return BUILD_CRN + build_id


def identity(deployment_id: str, model_name: str, model_version: str) -> Identity:
    build = f"{BUILD_CRN}{deployment_id}/v{model_version or '0'}"
    return Identity(
        deployment=deployment_crn(deployment_id),
        build=build,
        model=MODEL_CRN + (model_name or deployment_id),
    )
