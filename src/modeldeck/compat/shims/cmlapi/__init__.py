"""modeldeck's stand-in for Cloudera ML's ``cmlapi`` client (see ``modeldeck.compat``)."""

from modeldeck.compat.cmlapi import (
    ApiClient,
    ApiException,
    CMLServiceApi,
    Configuration,
    CreateModelBuildRequest,
    CreateModelDeploymentRequest,
    CreateModelRequest,
    ListModelBuildsResponse,
    ListModelDeploymentsResponse,
    ListModelsResponse,
    ListRegisteredModelsResponse,
    Model,
    ModelBuild,
    ModelDeployment,
    RegisteredModel,
    RegisteredModelVersion,
    default_client,
)

from . import rest

__all__ = [
    "ApiClient",
    "ApiException",
    "CMLServiceApi",
    "Configuration",
    "CreateModelBuildRequest",
    "CreateModelDeploymentRequest",
    "CreateModelRequest",
    "ListModelBuildsResponse",
    "ListModelDeploymentsResponse",
    "ListModelsResponse",
    "ListRegisteredModelsResponse",
    "Model",
    "ModelBuild",
    "ModelDeployment",
    "RegisteredModel",
    "RegisteredModelVersion",
    "default_client",
    "rest",
]
