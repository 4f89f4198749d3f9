"""The CRD is generated from the settings model, structural, and shipped byte-identical in the chart."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rtvoice_operator import cli
from rtvoice_operator.crd import CrdSchemaError, crd_manifest, crd_yaml, spec_schema, to_structural
from tests.support.kube import CHART

SHIPPED = CHART / "crds" / "voiceagents.yaml"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rtvoice")
    cli.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}.*")


def test_chart_ships_exactly_the_generated_crd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert SHIPPED.read_text(encoding="utf-8") == crd_yaml()
    assert _run("crd", "--check", str(SHIPPED)) == 0
    assert _run("crd") == 0
    assert capsys.readouterr().out == crd_yaml()
    stale = tmp_path / "crd.yaml"
    stale.write_text(crd_yaml().replace("maximum: 100\n", "maximum: 101\n"))
    assert _run("crd", "--check", str(stale)) == 1
    assert "stale" in capsys.readouterr().err
    assert _run("crd", "--check", str(tmp_path / "missing.yaml")) == 1
    out = tmp_path / "written.yaml"
    assert _run("crd", "-o", str(out)) == 0 and out.read_text() == crd_yaml()


def test_crd_shape() -> None:
    crd = crd_manifest()
    assert crd["metadata"]["name"] == "voiceagents.rtvoice.io"
    spec = crd["spec"]
    assert spec["scope"] == "Namespaced" and spec["names"]["shortNames"] == ["va"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Provider", "Model", "Voice", "Ready", "Age"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    cond = status["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= set(cond)


def test_spec_schema_is_structural_and_follows_the_model() -> None:
    schema = spec_schema()
    for path, node in _nodes(schema):
        assert "type" in node, f"{path} has no type"
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "default", "const", "$defs"} & set(node), path
        assert node.get("additionalProperties") not in (True, False), path
    props = schema["properties"]
    assert props["provider"]["enum"] == ["openai", "gemini", "local"]
    threshold = props["turnDetection"]["properties"]["threshold"]
    assert (threshold["minimum"], threshold["maximum"]) == (0.0, 1.0)
    assert props["temperature"]["nullable"] is True
    assert props["providerParamOverrides"]["x-kubernetes-preserve-unknown-fields"] is True
    tool = props["tools"]["items"]
    assert tool["required"] == ["name", "endpoint"]
    assert tool["properties"]["parameters"]["x-kubernetes-preserve-unknown-fields"] is True
    assert props["credentials"]["properties"]["secretRef"]["required"] == ["name"]
    assert "apiKey" not in props["credentials"]["properties"]  # only references to secrets


def test_structural_mapping_rules() -> None:
    defs = {
        "Inner": {"type": "object", "title": "Inner", "properties": {"x": {"type": "integer", "default": 1}}}
    }
    node = {
        "type": "object",
        "properties": {
            "ref": {"$ref": "#/$defs/Inner", "description": "d"},
            "opt": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "default": None},
            "one": {"const": "x", "type": "string"},
            "gt": {"type": "number", "exclusiveMinimum": 0},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    }
    out = to_structural(node, defs)["properties"]
    assert out["ref"] == {"type": "object", "properties": {"x": {"type": "integer"}}, "description": "d"}
    assert out["opt"] == {"type": "string", "maxLength": 3, "nullable": True}
    assert out["one"] == {"enum": ["x"], "type": "string"}
    assert out["gt"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert out["map"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    with pytest.raises(CrdSchemaError, match="unions"):
        to_structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})
    with pytest.raises(CrdSchemaError, match="patternProperties"):
        to_structural({"type": "object", "patternProperties": {}}, {})
    with pytest.raises(CrdSchemaError, match="unresolvable"):
        to_structural({"$ref": "#/$defs/Nope"}, {})


def test_crd_yaml_round_trips() -> None:
    assert yaml.safe_load(crd_yaml()) == crd_manifest()
