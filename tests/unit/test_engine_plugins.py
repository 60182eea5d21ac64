"""The engine extension point: ``backend: "package.module:factory"`` behind ``engine_plugins``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from engines.base import EngineSpec
from engines.errors import BackendUnavailable
from engines.registry import is_plugin, load_engine, plugin_allowed
from server.repository.config import ModelConfig
from server.settings import Settings

NULL = "loadtests.null_engine:load"
SPEC = EngineSpec(artifact=Path("unused"), options={"outputs": {"logits": [2]}})


def test_a_plugin_loads_with_the_same_spec_when_its_module_is_allowed() -> None:
    for plugins in (("loadtests",), ("*",), ("tests", "loadtests.null_engine")):
        engine = load_engine(NULL, SPEC, plugins)
        out = engine.run({"input_ids": np.zeros((3, 5), dtype=np.int64)})
        assert out["logits"].shape == (3, 2) and not out["logits"].any()


def test_plugins_are_refused_unless_allowed_and_say_how_to_allow_them() -> None:
    with pytest.raises(BackendUnavailable, match="SLUICE_ENGINE_PLUGINS"):
        load_engine(NULL, SPEC)
    with pytest.raises(BackendUnavailable, match="not allowed by engine_plugins"):
        load_engine(NULL, SPEC, ("loadtest",))  # a prefix counts on dot boundaries only
    with pytest.raises(BackendUnavailable, match="no callable 'nope'"):
        load_engine("loadtests.null_engine:nope", SPEC, ("*",))
    with pytest.raises(BackendUnavailable, match="cannot import"):
        load_engine("tests.support.no_such_module:load", SPEC, ("tests",))
    assert not plugin_allowed("loadtestsx.mod", ("loadtests",))
    assert plugin_allowed("tests.support.fault_engine", ("tests.support",))


def test_model_config_takes_builtin_names_or_module_factory_and_nothing_else() -> None:
    assert is_plugin(NULL) and not is_plugin("onnxruntime") and not is_plugin("a:b:c")
    config = ModelConfig.model_validate({"task": "tensor", "engine": {"backend": NULL}})
    assert config.engine.backend == NULL and config.artifact == "."
    with pytest.raises(ValidationError, match="not a backend"):
        ModelConfig.model_validate({"task": "tensor", "engine": {"backend": "tflite"}})


def test_engine_plugins_setting_parses_prefixes_and_rejects_junk() -> None:
    assert Settings(engine_plugins=" tests.support , loadtests").engine_plugin_prefixes == (
        "tests.support", "loadtests")
    assert Settings().engine_plugin_prefixes == ()
    with pytest.raises(ValidationError, match="engine_plugins"):
        Settings(engine_plugins="tests/support")
