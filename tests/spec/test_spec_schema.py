"""The JSON Schema: versioned, installed with the package, documenting every field, and
pinned to the domain rules it repeats for editors (ranges, versions, names)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ivmctl import rules
from ivmctl.spec.normalize import GUEST_FIELDS
from ivmctl.spec.schema import API_VERSION, SCHEMA_FILE, load_schema, schema_at

ROOT = Path(__file__).resolve().parents[2]


def walk(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            found.append((f"{path}/properties/{name}", prop))
        for key, value in node.items():
            found += walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += walk(value, f"{path}/{index}")
    return found


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_is_versioned_in_file_name_and_id() -> None:
    schema = load_schema()
    assert SCHEMA_FILE == "ivmctl-v1.schema.json"
    assert schema["$id"].endswith("/ivmctl-v1.schema.json")
    assert schema["properties"]["apiVersion"]["const"] == API_VERSION == "ivmctl/v1"


def test_schema_is_loaded_from_the_installed_package_data() -> None:
    code = (
        "from importlib import resources; "
        f"print(resources.files('ivmctl').joinpath('schemas', '{SCHEMA_FILE}').is_file())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "True"


def test_every_field_has_a_description() -> None:
    missing = [
        path
        for path, prop in walk(load_schema())
        if "description" not in prop
        and not ("$ref" in prop and "description" in schema_at(prop["$ref"][2:].split("/")))
    ]
    assert not missing


def test_every_field_with_a_hpvmcreate_default_documents_it() -> None:
    guest = load_schema()["$defs"]["guest"]["properties"]
    documented = {name for name, prop in guest.items() if "default" in prop}
    entitlement = load_schema()["$defs"]["entitlement"]
    assert {"os", "vcpus", "memory", "power", "start", "online_migration"} <= documented
    assert entitlement["default"] == {"min": "10%", "max": "100%"}
    assert guest["vcpus"]["default"] == rules.DEFAULT_VCPUS
    assert guest["memory"]["default"] == f"{rules.DEFAULT_MEMORY_MB // 1024}G"
    assert guest["os"]["default"] == rules.DEFAULT_OS.value
    assert guest["start"]["default"] == rules.DEFAULT_START.value


def test_every_definition_has_examples_that_validate() -> None:
    schema = load_schema()
    for name, definition in schema["$defs"].items():
        assert definition.get("examples"), name
        sub = {**definition, "$defs": schema["$defs"]}
        for example in definition["examples"]:
            jsonschema.Draft202012Validator(sub).validate(example)


def test_guest_profile_and_defaults_share_the_same_settings() -> None:
    defs = load_schema()["$defs"]
    settings = set(GUEST_FIELDS)
    assert set(defs["guest"]["properties"]) == settings | {"host", "profile"}
    assert set(defs["profile"]["properties"]) == settings
    assert set(defs["guest_defaults"]["properties"]) == settings
    assert defs["guest"]["properties"]["vcpus"] == defs["profile"]["properties"]["vcpus"]


def test_ranges_repeated_for_editors_equal_the_domain_rules() -> None:
    nic = load_schema()["$defs"]["nic"]["properties"]
    assert (nic["vlan"]["minimum"], nic["vlan"]["maximum"] + 1) == (
        rules.VLAN_RANGE.start,
        rules.VLAN_RANGE.stop,
    )
    assert (nic["port"]["minimum"], nic["port"]["maximum"] + 1) == (
        rules.PORT_RANGE.start,
        rules.PORT_RANGE.stop,
    )
    vcpus = load_schema()["$defs"]["guest"]["properties"]["vcpus"]
    assert vcpus["maximum"] == max(limit.max_vcpus for limit in rules.LIMITS.values())


def test_versions_offered_equal_the_versions_with_known_limits() -> None:
    enum = load_schema()["$defs"]["host"]["properties"]["version"]["enum"]
    assert [v for v in enum if isinstance(v, str)] == list(rules.SUPPORTED_VERSIONS)
    assert all(str(v) in rules.LIMITS for v in enum)


def test_os_values_equal_the_domain_enumeration() -> None:
    enum = load_schema()["$defs"]["guest"]["properties"]["os"]["enum"]
    assert enum == [o.value for o in rules.OsType]


@pytest.mark.parametrize("example", ["quickstart", "consolidation"])
def test_plain_yaml_example_files_validate_against_the_schema_alone(example: str) -> None:
    from ivmctl.spec.yamlio import parse_yaml

    validator = jsonschema.Draft202012Validator(load_schema())
    for path in sorted((ROOT / "examples" / example).glob("*.yaml")):
        validator.validate(parse_yaml(path.read_text(encoding="utf-8")))


def test_committed_schema_is_pretty_json() -> None:
    path = ROOT / "schemas" / SCHEMA_FILE
    text = path.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


def _documents() -> list[tuple[str, Any]]:
    from ivmctl.spec.yamlio import YamlProblem, parse_yaml

    found = []
    for path in sorted((Path(__file__).parent / "cases" / "errors").glob("*/*.yaml")):
        try:
            data = parse_yaml(path.read_text(encoding="utf-8"))
        except (YamlProblem, UnicodeDecodeError):
            continue
        if isinstance(data, dict):
            found.append((f"{path.parent.name}/{path.name}", data))
    return found


@pytest.mark.parametrize(("name", "document"), _documents(), ids=lambda v: str(v)[:40])
def test_pure_python_jsonschema_fallback_reports_what_jsonschema_rs_reports(
    name: str, document: Any
) -> None:
    from ivmctl.spec.schema import validate_document

    def key(problems: list) -> list:
        return sorted((p.summary, p.spot, p.path) for p in problems)

    rust = validate_document(document, name, engine="rust")
    python = validate_document(document, name, engine="python")
    assert key(python) == key(rust)
