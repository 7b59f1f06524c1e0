"""Finding a Config from the command line: a JSON file or a ``module:Class`` path."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
from typing import Any, Iterable, Tuple

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


def parse_setting(text: str) -> Tuple[str, Any]:
    """"NAME=VALUE" -> (NAME, VALUE), VALUE read as JSON where it is JSON (50, 0.2, true,
    [8, 16]) and as a string otherwise ("resnet101")."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"{text!r}: give a config value as NAME=VALUE, e.g. TRAIN_ROIS_PER_IMAGE=64")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def setting_argument(text: str) -> Tuple[str, Any]:
    """``parse_setting`` as an argparse ``type`` (``--set NAME=VALUE``)."""
    try:
        return parse_setting(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def with_settings(config: Config, settings: Iterable[Tuple[str, Any]]) -> Config:
    """A copy of ``config`` with the (NAME, VALUE) pairs set; raises ConfigError naming an
    unknown attribute or every invalid value."""
    settings = dict(settings)
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise ConfigError(f"unknown config attributes: {', '.join(unknown)}")
    return dataclasses.replace(config, **settings)  # validates: ConfigError naming every bad value
