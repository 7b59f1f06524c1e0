"""Finding a Config from the command line: a JSON file or a ``module:Class`` path."""

from __future__ import annotations

import importlib
import json
import os

from model.config import Config, ConfigError


def load_config(spec: str) -> Config:
    """``spec`` is a JSON file (Config.to_dict() output, or a Matterport dump with the
    values under "config") or ``package.module:ConfigClass``."""
    if os.path.isfile(spec):
        try:
            with open(spec, encoding="utf8") as f:
                values = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{spec}: cannot read config JSON ({exc})") from exc
        if isinstance(values, dict) and isinstance(values.get("config"), dict):
            values = values["config"]
        if not isinstance(values, dict):
            raise ConfigError(f"{spec}: expected a JSON object of config values")
        try:
            return Config.from_dict(values)
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{spec}: {exc}") from exc
    module_name, _, class_name = spec.partition(":")
    if not class_name:
        raise ConfigError(f"config {spec!r}: no such file, and not of the form module:ConfigClass")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"config {spec!r}: cannot import it ({exc})") from exc
    if not (isinstance(cls, type) and issubclass(cls, Config)):
        raise ConfigError(f"config {spec!r} is not a subclass of model.Config")
    return cls()
