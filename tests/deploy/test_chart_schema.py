"""values.schema.json rejects wrong values with a message naming the field, accepts every
example, and every value is commented in values.yaml and documented in the README."""

from __future__ import annotations

import re

import helm_python as helm
import pytest
import yaml

from tests.deploy import _helm

ENGINE = {
    "name": "x",
    "kind": "hearth",
    "models": [{"name": "m"}],
    "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
}

# (values, text the message must contain: the field's path and what is wrong)
WRONG = [
    ({"web": {"replicas": "two"}}, "at '/web/replicas': got string, want integer"),
    ({"web": {"replica": 2}}, "at '/web': additional properties 'replica' not allowed"),
    ({"colour": "blue"}, "additional properties 'colour' not allowed"),
    ({"engines": [ENGINE | {"kind": "tgi"}]}, "at '/engines/0/kind': value must be one of"),
    ({"engines": [ENGINE | {"name": "Big_Name"}]}, "at '/engines/0/name'"),
    ({"engines": [ENGINE | {"gpus": 1}]}, "additional properties 'gpus' not allowed"),
    ({"engines": [ENGINE | {"kind": "vllm"}]}, "at '/engines/0': missing property 'model'"),
    ({"engines": [ENGINE | {"pull": ["llama3"]}]}, "at '/engines/0/pull': false schema"),
    (
        {
            "engines": [
                {
                    "name": "x",
                    "kind": "external",
                    "url": "https://a",
                    "models": [{"name": "m"}],
                    "replicas": 2,
                }
            ]
        },
        "at '/engines/0/replicas': false schema",
    ),
    (
        {"engines": [ENGINE | {"models": [{"name": "m", "type": "image"}]}]},
        "at '/engines/0/models/0/type': value must be one of 'chat', 'embedding'",
    ),
    ({"engines": []}, "at '/engines': minItems"),
    ({"postgresql": {"mode": "sqlite"}}, "at '/postgresql/mode': value must be one of"),
    ({"redis": {"mode": "memcached"}}, "at '/redis/mode': value must be one of"),
    ({"image": {"tag": "latest"}}, "at '/image/tag'"),
    (
        {
            "postgresql": {
                "bundled": {"image": {"repository": "pgvector/pgvector", "tag": "latest"}}
            }
        },
        "at '/postgresql/bundled/image/tag'",
    ),
    (
        {"hearth": {"env": {"HEARTH_OIDC_CLIENT_SECRET": "s3cret"}}},
        "at '/hearth/env/HEARTH_OIDC_CLIENT_SECRET': false schema",
    ),
    (
        {"hearth": {"env": {"HEARTH_ENGINES": "[]"}}},
        "at '/hearth/env/HEARTH_ENGINES': false schema",
    ),
    (
        {"engines": [ENGINE | {"resources": {"requests": {"cpu": "1"}}}]},
        "at '/engines/0/resources': missing property 'limits'",
    ),
    ({"web": {"resources": {"requests": {"cpu": ["1"]}}}}, "at '/web/resources/requests/cpu'"),
    ({"tls": {"mode": "letsencrypt"}}, "at '/tls/mode': value must be one of"),
    (
        {"networkPolicy": {"enabled": "yes"}},
        "at '/networkPolicy/enabled': got string, want boolean",
    ),
]


@pytest.mark.parametrize(("values", "message"), WRONG, ids=[m for _v, m in WRONG])
def test_schema_rejects_wrong_values_naming_the_field(values: dict, message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        _helm.chart().validate_schema(values)
    assert message in str(caught.value)


def test_install_fails_on_a_wrong_value() -> None:
    """Rendering (what install and upgrade do) applies the schema too."""
    with pytest.raises(helm.HelmValuesError, match="/web/replicas"):
        _helm.render((), {"web.replicas": "two"})


@pytest.mark.parametrize("case", sorted(_helm.CASES))
def test_schema_accepts_every_case(case: str) -> None:
    files, overrides = _helm.CASES[case]
    _helm.chart().validate_schema(_helm.user_values(files, overrides))


def _commented_keys() -> tuple[list[str], list[str]]:
    """Dotted paths of values.yaml keys with a `# --` comment, and of leaves without one
    (a leaf under a commented key is covered by that key's comment)."""
    commented, bare = [], []
    stack: list[tuple[int, str, bool]] = []
    pending = False
    lines = (_helm.CHART / "values.yaml").read_text().splitlines()
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if stripped.startswith("#") or not stripped:
            continue
        match = re.match(r"^( *)([A-Za-z0-9_.\-/]+):(.*)$", line)
        if not match:
            pending = False
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        covered = any(c for _i, _k, c in stack)
        path = ".".join([k for _i, k, _c in stack] + [key])
        if pending:
            commented.append(path)
        elif rest and not covered:
            bare.append(path)
        if not rest:
            stack.append((indent, key, pending or covered))
        pending = False
    return commented, bare


def test_every_value_is_commented_in_values_yaml() -> None:
    _commented, bare = _commented_keys()
    assert not bare, f"values without a `# --` comment: {bare}"


def test_every_value_is_documented_in_the_readme() -> None:
    readme = (_helm.CHART / "README.md").read_text()
    commented, _bare = _commented_keys()
    missing = [path for path in commented if f"`{path}`" not in readme]
    assert not missing, f"values not in README.md: {missing}"


def test_every_engine_key_of_the_schema_is_documented() -> None:
    readme = (_helm.CHART / "README.md").read_text()
    engine = _helm.chart().schema["properties"]["engines"]["items"]
    missing = [key for key in engine["properties"] if f"| `{key}` |" not in readme]
    assert not missing, f"engine keys not in README.md's Engines table: {missing}"


def test_every_schema_property_exists_in_values_yaml() -> None:
    """No key the schema allows is left undeclared (and so undocumented) in values.yaml."""
    values = yaml.safe_load((_helm.CHART / "values.yaml").read_text())
    schema = _helm.chart().schema
    skip = {"global", "engines", "modelCaches"}

    def walk(node: dict, value: object, path: str) -> list[str]:
        missing = []
        for key, sub in node.get("properties", {}).items():
            where = f"{path}.{key}".lstrip(".")
            if key in skip and not path:
                continue
            if not isinstance(value, dict) or key not in value:
                missing.append(where)
            elif sub.get("type") == "object" and "properties" in sub and value[key]:
                missing += walk(sub, value[key], where)
        return missing

    assert not walk(schema, values, ""), walk(schema, values, "")
