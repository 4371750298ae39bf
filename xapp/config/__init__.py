"""Descriptor types, schema, loading and rules, hot reload, and replica sharding of E2 nodes."""

from xapp.config.descriptor import CONFIG_FILE_ENV, SCHEMA_PATH, descriptor_path_from_env, load_descriptor
from xapp.config.shard import Shard, ShardError, select_nodes, shard_from_env, shard_of
from xapp.config.types import (
    Batching,
    ControlSpec,
    Descriptor,
    DescriptorError,
    E2Spec,
    EncoderSpec,
    ExitHead,
    Ops,
    PolicySpec,
    Publish,
    Reconnect,
    ServiceModel,
    TaskSettings,
    XappIdentity,
)
from xapp.config.watcher import DescriptorWatcher

__all__ = [
    "CONFIG_FILE_ENV",
    "SCHEMA_PATH",
    "Batching",
    "ControlSpec",
    "Descriptor",
    "DescriptorError",
    "DescriptorWatcher",
    "E2Spec",
    "EncoderSpec",
    "ExitHead",
    "Ops",
    "PolicySpec",
    "Publish",
    "Reconnect",
    "ServiceModel",
    "Shard",
    "ShardError",
    "TaskSettings",
    "XappIdentity",
    "descriptor_path_from_env",
    "load_descriptor",
    "select_nodes",
    "shard_from_env",
    "shard_of",
]
