"""Fuzzing with hypothesis: whatever the input, only the documented error types.

* the YAML/spec loader: random bytes and YAML-ish token soup (anchors, aliases, tags,
  merge keys, directives, templates) -> a DesiredState or InvalidConfig (an IvmctlError);
* the hpvm* command front end: random argv on `World.execute` -> a CommandResult, never
  an exception (EmulatorError only for an unknown host);
* the resource-statement grammar: `parse_resource` -> a Resource or RuleViolation;
* the `hpvmstatus -M` parser: mutated real lines and random text -> ProviderError only;
* the plan-file reader: `decode_plan` on mutated real plans and random bytes ->
  PlanFileError only.

`IVMCTL_FUZZ_EXAMPLES` sets the examples per target (default 60; the soak variants run
`IVMCTL_SOAK_FUZZ_EXAMPLES`, default 2000). Every example run is counted in the figures.
atheris is not used: it is not a declared dependency (pyproject.toml is not ours to
change), and hypothesis reaches the same entry points.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivmctl.errors import EmulatorError, IvmctlError, PlanFileError, ProviderError, RuleViolation
from ivmctl.plan.model import Action, Change, Operation, OpKind, Plan
from ivmctl.plan.planfile import decode_plan, encode_plan
from ivmctl.providers.parsers import parse_device_listing, parse_machine_status
from ivmctl.resources import parse_resource
from ivmctl.runtime import CommandResult, World
from ivmctl.spec import SpecOptions, load_spec

EXAMPLES = int(os.environ.get("IVMCTL_FUZZ_EXAMPLES", "60"))
SOAK_EXAMPLES = int(os.environ.get("IVMCTL_SOAK_FUZZ_EXAMPLES", "2000"))


def fuzz(examples: int) -> Callable[[Any], Any]:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))  # fmt: skip


YAML_TOKENS = st.sampled_from([
    "apiVersion: ivmctl/v1\n", "hosts:\n", "guests:\n", "  ", "    ", "- ", ": ", "\n",
    "&a ", "*a", "&b ", "*b", "<<: *a\n", "!!python/object:os.system ", "!!binary ", "!!map ",
    "!!str ", "!custom ", "%YAML 1.1\n", "%TAG ! tag:x:\n", "---\n", "...\n", "{", "}", "[",
    "]", ",", "'", '"', "|\n", ">-\n", "? ", "#", "{{ x }}", "{% for i in range(3) %}",
    "{% endfor %}", "vmhost01", "web01", "host: vmhost01", "memory: 4G", "vcpus: 2",
    "0x10", "1e400", ".nan", "~", "null", "yes", "on", "\t", "\ufeff", "\x00", "\u2028",
])  # fmt: skip
YAMLISH = st.lists(YAML_TOKENS, max_size=40).map("".join)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _load_any(directory: Path, name: str, data: bytes) -> None:
    for old in directory.iterdir():
        if old.is_file():
            old.unlink()
    (directory / name).write_bytes(data)
    try:
        load_spec(directory, SpecOptions(environ={}, variables={"x": "1"}))
    except IvmctlError as error:
        assert error.summary


def _spec_fuzz(examples: int, figures: Any) -> Callable[[Path], None]:
    @fuzz(examples)
    @given(data=st.one_of(st.binary(max_size=300), YAMLISH.map(str.encode)),
           name=st.sampled_from(["a.yaml", "a.yml", "a.yaml.j2"]))  # fmt: skip
    def check(directory: Path, data: bytes, name: str) -> None:
        figures.add("fuzz", "spec_loader_examples")
        _load_any(directory, name, data)

    return check


def test_fuzz_spec_loader(scratch: Path, figures: Any) -> None:
    _spec_fuzz(EXAMPLES, figures)(scratch)


@pytest.mark.soak
def test_fuzz_spec_loader_long(scratch: Path, figures: Any) -> None:
    _spec_fuzz(SOAK_EXAMPLES, figures)(scratch)


COMMANDS = ["hpvmcreate", "hpvmmodify", "hpvmstart", "hpvmstop", "hpvmremove", "hpvmclone",
            "hpvmmigrate", "hpvmstatus", "hpvmnet", "hpvmdevmgmt", "hpvmconsole", "start",
            "/opt/hpvm/bin/hpvmstatus", "vparstatus", "ls", ""]  # fmt: skip
ARGS = st.one_of(
    st.sampled_from([
        "-P", "g1", "-p", "1", "-O", "hpux", "-c", "2", "-e", "10:100", "-r", "2G", "-B",
        "auto", "-a", "-d", "-m", "-x", "-l", "-h", "h2", "-o", "-F", "-g", "-M", "-V", "-X",
        "-s", "-S", "vsw1", "-n", "0", "-b", "-u", "portid:1:vlanid:10", "-C", "-K",
        "disk:avio_stor::file:/ivm/g1.img", "network:avio_lan::vswitch:vsw1",
        "dvd:avio_stor::null:/iso", "ram_dyn_type=driver", "runnable_status=disabled",
        "gdev:/ivm/g1.img:attr:SHARE=YES", "1G", "/ivm/g1.img", "--", "-", "-Z", "--long",
        "disk:avio_stor:0,1,2:lv:/dev/vg01/rlvol1", "network:lan:0,5,0x0A0000000001:vswitch:x",
    ]),
    st.text(max_size=12),
)  # fmt: skip
ARGV = st.tuples(st.sampled_from(COMMANDS), st.lists(ARGS, max_size=10)).map(
    lambda t: [t[0], *t[1]]
)


def _world_fuzz(examples: int, figures: Any) -> Callable[[Path], None]:
    @fuzz(examples)
    @given(argv=ARGV, host=st.sampled_from(["h1", "h1", "h1", "h2", "nohost"]))
    def check(directory: Path, argv: list[str], host: str) -> None:
        figures.add("fuzz", "hpvm_command_line_examples")
        with World.open(directory / "w.db", sleep=lambda s: None) as world:
            try:
                result = world.execute(host, argv)
            except EmulatorError as error:
                assert host == "nohost" or not argv[0], error
                return
            assert isinstance(result, CommandResult)
            assert result.exit_code != 0 or not result.stderr.startswith("Traceback")

    return check


@pytest.fixture
def world_dir(scratch: Path) -> Path:
    with World.open(scratch / "w.db") as world:
        for name in ("h1", "h2"):
            world.add_host(name=name, cores=4, memory_mb=16384, nics=("lan0",))
            world.execute(name, ["hpvmnet", "-c", "-S", "vsw1", "-n", "0"])
        world.execute("h1", ["hpvmcreate", "-P", "g1", "-a", "network:avio_lan::vswitch:vsw1"])
    return scratch


def test_fuzz_hpvm_command_lines(world_dir: Path, figures: Any) -> None:
    _world_fuzz(EXAMPLES * 3, figures)(world_dir)


@pytest.mark.soak
def test_fuzz_hpvm_command_lines_long(world_dir: Path, figures: Any) -> None:
    _world_fuzz(SOAK_EXAMPLES, figures)(world_dir)


STATEMENT = st.one_of(
    st.lists(st.one_of(st.sampled_from(["disk", "dvd", "network", "tape", "hba", "avio_stor",
             "scsi", "avio_lan", "lan", "file", "lv", "null", "vswitch", "portid", "0,1",
             "0,1,2", "0x0A0000000001", "/ivm/x", "", "-1", "99999", "1,2,3,4"]),
             st.text(max_size=6)), max_size=8).map(":".join),
    st.text(max_size=40),
)  # fmt: skip


def _statement_fuzz(examples: int, figures: Any) -> None:
    @fuzz(examples)
    @given(text=STATEMENT)
    def check(text: str) -> None:
        figures.add("fuzz", "resource_statement_examples")
        try:
            parse_resource(text)
        except RuleViolation as error:
            assert error.summary

    check()


def test_fuzz_resource_statements(figures: Any) -> None:
    _statement_fuzz(EXAMPLES * 5, figures)


@pytest.mark.soak
def test_fuzz_resource_statements_long(figures: Any) -> None:
    _statement_fuzz(SOAK_EXAMPLES * 5, figures)


REAL_M = [
    "build01:1::Integrity VM:944e4419-f8ea-5335-bcd8-020c85e0b845:LINUX:SH::enabled:enabled:"
    "Off:Manual::enabled:enabled:enabled:1:1:vmhost01:1;10.0;100.0:8GB;none;;;",
    "web01:2::Integrity VM:0d1cbe12-5b20-5e44-817c-9d90fa99ef9b:HPUX:SH:web front end:enabled:"
    "enabled:On:Auto:OS:enabled:enabled:enabled:2:1:vmhost01:2;20.0;100.0:4GB;driver;2048;8192;4096",
]


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    fields = draw(st.sampled_from(REAL_M)).split(":")
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(fields) - 1))
        fields[index] = draw(st.one_of(
            st.text(max_size=8), st.sampled_from(["", "-1", "nan", "inf", "1e999", "0", ";",
            "1;2", "1;;", "4GB;driver;9;1;5", "4GB;driver;a;b;c", "99999999999999999999GB",
            "1;-5;200", "0;0;0", "On", "Invalid", "VP", "enabled"])))  # fmt: skip
    text = ":".join(fields)
    return text if draw(st.booleans()) else text + "\n" + draw(st.sampled_from(REAL_M))


def _parser_fuzz(examples: int, figures: Any) -> None:
    @fuzz(examples)
    @given(text=st.one_of(mutated_lines(), st.text(max_size=200)))
    def check(text: str) -> None:
        figures.add("fuzz", "hpvmstatus_M_parser_examples")
        try:
            parse_machine_status(text)
        except ProviderError as error:
            assert error.summary
        try:
            parse_device_listing(text)
        except ProviderError as error:
            assert error.summary

    check()


def test_fuzz_hpvmstatus_parser(figures: Any) -> None:
    _parser_fuzz(EXAMPLES * 5, figures)


@pytest.mark.soak
def test_fuzz_hpvmstatus_parser_long(figures: Any) -> None:
    _parser_fuzz(SOAK_EXAMPLES * 5, figures)


def _real_plan() -> bytes:
    params = {"name": "g1", "vcpus": 2, "devices": ["dvd:avio_stor::null:/iso"]}
    create = Operation(kind=OpKind.GUEST_CREATE, host="h1", params=params)
    start = Operation(kind=OpKind.GUEST_START, host="h1", params={"name": "g1"})
    plan = Plan(
        changes=(
            Change(address="guest.g1", action=Action.CREATE, host="h1", after={"name": "g1"},
                   reasons=("declared",), operations=(create, start)),
            Change(address="guest.g2", action=Action.START, host="h1", depends_on=("guest.g1",),
                   operations=(Operation(kind=OpKind.GUEST_START, host="h1",
                                         params={"name": "g2"}),)),
        ),
        config_digest="sha256:abc", runtime_generation="7", state_serial=3,
        state_lineage="lineage",
    )  # fmt: skip
    data = encode_plan(plan, ivmctl_version="0", created_at="2026-01-01T00:00:00Z")
    assert decode_plan(data) == plan
    return data


REAL_PLAN = _real_plan()
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=6),
                   st.floats(), st.lists(st.integers(), max_size=2), st.dictionaries(
                       st.text(max_size=4), st.integers(), max_size=2))  # fmt: skip


@st.composite
def mutated_plans(draw: st.DrawFn) -> bytes:
    body = json.loads(REAL_PLAN)
    for _ in range(draw(st.integers(1, 3))):
        node: Any = body
        while isinstance(node, dict | list) and node and draw(st.integers(0, 3)):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict)
                                       else list(range(len(node)))))  # fmt: skip
            if not isinstance(node[key], dict | list) or not node[key]:
                node[key] = draw(LEAVES)
                break
            node = node[key]
        else:
            if isinstance(node, dict) and node:
                del node[draw(st.sampled_from(sorted(node)))]
    if draw(st.booleans()):  # re-seal it, so the checks after the checksum are reached
        from ivmctl.plan.planfile import checksum_of

        with contextlib.suppress(Exception):  # an unsealable body is fuzz input too
            body["checksum"] = checksum_of(body["plan"])
    return json.dumps(body).encode()


def _planfile_fuzz(examples: int, figures: Any) -> None:
    @fuzz(examples)
    @given(data=st.one_of(mutated_plans(), st.binary(max_size=200),
                          st.integers(0, len(REAL_PLAN)).map(lambda n: REAL_PLAN[:n])))  # fmt: skip
    def check(data: bytes) -> None:
        figures.add("fuzz", "plan_file_reader_examples")
        try:
            decode_plan(data)
        except PlanFileError as error:
            assert error.summary

    check()


def test_fuzz_plan_file_reader(figures: Any) -> None:
    _planfile_fuzz(EXAMPLES * 5, figures)


@pytest.mark.soak
def test_fuzz_plan_file_reader_long(figures: Any) -> None:
    _planfile_fuzz(SOAK_EXAMPLES * 5, figures)


def test_a_resealed_plan_whose_after_is_not_an_object_is_refused() -> None:
    """Found by the soak fuzzer: `"after": false` in a plan re-sealed with a valid
    checksum escaped decode_plan as a TypeError."""
    from ivmctl.plan.planfile import checksum_of

    body = json.loads(REAL_PLAN)
    body["plan"]["changes"][1]["after"] = False
    body["checksum"] = checksum_of(body["plan"])
    with pytest.raises(PlanFileError, match="after of changes\\[1\\] is not an object or null"):
        decode_plan(json.dumps(body).encode())
