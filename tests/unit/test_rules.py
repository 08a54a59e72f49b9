"""The shared Integrity VM rules: units, limits, admission arithmetic, MACs, migration paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivmctl import rules
from ivmctl.errors import InsufficientResources, RuleViolation


@pytest.mark.parametrize(
    ("text", "mb"),
    [("4G", 4096), ("4096M", 4096), ("4GiB", 4096), ("4096MiB", 4096), ("2048", 2048),
     (2048, 2048), ("1.5G", 1536), ("1T", 1048576), (" 8 GB ", 8192), ("0.5M", 1)],
)  # fmt: skip
def test_memory_spellings_mean_the_same_megabytes(text: str | int, mb: int) -> None:
    assert rules.parse_memory_mb(text) == mb


@pytest.mark.parametrize("text", ["", "G", "4X", "-1G", "0", "four", True])
def test_bad_memory_amounts_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(RuleViolation):
        rules.parse_memory_mb(text)


@pytest.mark.parametrize(
    ("mb", "up", "down"), [(64, 64, 64), (65, 128, 64), (4100, 4160, 4096), (1, 64, 0)]
)
def test_memory_rounds_to_64_mb_granules(mb: int, up: int, down: int) -> None:
    assert rules.round_to_granule(mb) == up
    assert rules.round_to_granule(mb, up=False) == down


@pytest.mark.parametrize(
    ("mb", "arg", "display", "compact"),
    [(4096, "4G", "4 GB", "4GB"), (4160, "4160M", "4160 MB", "4160MB")],
)
def test_memory_is_printed_as_the_commands_print_it(
    mb: int, arg: str, display: str, compact: str
) -> None:
    assert rules.format_memory_arg(mb) == arg
    assert rules.format_memory_display(mb) == display
    assert rules.format_memory_compact(mb) == compact


@pytest.mark.parametrize(("text", "pct"), [("20%", 20.0), (20, 20.0), ("12.5", 12.5), (100, 100.0)])
def test_entitlement_spellings_mean_the_same_percentage(text: str, pct: float) -> None:
    assert rules.parse_percent(text) == pct


@pytest.mark.parametrize("text", ["0", "101%", "-5", "abc", "nan"])
def test_entitlements_outside_0_to_100_are_refused(text: str) -> None:
    with pytest.raises(RuleViolation):
        rules.parse_percent(text)


@pytest.mark.parametrize(
    ("name", "ok"),
    [("web01", True), ("db-01.prod_a", True), ("", False), ("-lead", False),
     ("has space", False), ("semi;colon", False), ("a" * 257, False)],
)  # fmt: skip
def test_names_follow_the_label_character_set(name: str, ok: bool) -> None:
    assert (rules.name_problem(name) is None) is ok


def test_labels_are_limited_by_version() -> None:
    assert rules.label_problem("x" * 255, "6.3") is None
    assert rules.label_problem("x" * 256, "6.3") is not None
    assert rules.label_problem("x" * 256, "4.3") is None
    assert rules.label_problem("web front end", "6.3") is None
    assert rules.label_problem("bad:colon", "6.3") is not None


@pytest.mark.parametrize(
    ("version", "vcpus", "memory_gb"),
    [("3.5", 4, 64), ("4.0", 8, 128), ("6.1", 16, 256), ("6.3", 32, 256), ("6.3.5", 32, 256)],
)
def test_limits_follow_the_version(version: str, vcpus: int, memory_gb: int) -> None:
    limits = rules.limits_for(version)
    assert limits.max_vcpus == vcpus
    assert limits.max_memory_mb == memory_gb * 1024


def test_an_unknown_version_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(RuleViolation, match="Supported versions"):
        rules.limits_for("9.9")


@pytest.mark.parametrize(
    ("field", "kind"),
    [("entitlement", "online"), ("label", "online"), ("start", "online"),
     ("dynamic_memory.target", "online"), ("vcpus", "needs_off"), ("memory", "needs_off"),
     ("os", "needs_off"), ("dynamic_memory.max", "needs_off")],
)  # fmt: skip
def test_which_fields_change_online(field: str, kind: str) -> None:
    assert rules.field_change_kind(field).value == kind


@pytest.mark.parametrize(
    ("adapter", "kind"),
    [("avio_stor", "online"), ("aviolan", "online"), ("scsi", "needs_off"), ("lan", "needs_off")],
)
def test_avio_devices_change_online_and_vio_devices_need_the_guest_off(
    adapter: str, kind: str
) -> None:
    assert rules.device_change_kind(adapter).value == kind


def test_overhead_follows_the_6_3_formula_in_granules() -> None:
    # 2 vCPUs x 4096 MB x 0.4 % = 32.8 MB, + 64 MB = 96.8 -> 128 MB
    assert rules.guest_overhead_mb(2, 4096) == 128
    assert rules.guest_overhead_mb(2, 4096, vpar=True) == 128  # 16.4 + 64 -> 128
    assert rules.guest_footprint_mb(1, 2048) == 2048 + 128


def test_the_pool_is_92_percent_of_physical_memory_in_granules() -> None:
    assert rules.host_pool_mb(64 * 1024) == 60288


def test_entitlement_must_sit_on_distinct_cores_the_reference_example() -> None:
    # 4 cores, a 4-vCPU guest at 25 % leaves 75 % on every core [R31][R34].
    cap = rules.HostCapacity.empty(name="h", cores=4, physical_memory_mb=64 * 1024)
    cap = cap.admit(rules.Demand(name="big", vcpus=4, entitlement_pct=25, memory_mb=2048))
    assert cap.problems(rules.Demand(name="x", vcpus=1, entitlement_pct=75, memory_mb=1024)) == []
    problems = cap.problems(rules.Demand(name="y", vcpus=1, entitlement_pct=80, memory_mb=1024))
    assert problems and "free per core: 75%, 75%, 75%, 75%" in problems[0]


def test_more_vcpus_than_cores_never_start() -> None:
    cap = rules.HostCapacity.empty(name="h", cores=2, physical_memory_mb=8192)
    with pytest.raises(InsufficientResources, match="3 vCPUs exceed the host's 2 physical cores"):
        cap.admit(rules.Demand(name="g", vcpus=3, entitlement_pct=10, memory_mb=1024))


def test_memory_with_overhead_must_fit_in_the_pool() -> None:
    cap = rules.HostCapacity.empty(name="h", cores=8, physical_memory_mb=8192)  # pool 7488
    cap = cap.admit(rules.Demand(name="a", vcpus=1, entitlement_pct=10, memory_mb=4096))
    with pytest.raises(InsufficientResources, match="needs 4224 MB of memory"):
        cap.admit(rules.Demand(name="b", vcpus=1, entitlement_pct=10, memory_mb=4096))


def test_release_returns_exactly_what_admit_took() -> None:
    empty = rules.HostCapacity.empty(name="h", cores=4, physical_memory_mb=16384)
    cap = empty.admit(rules.Demand(name="a", vcpus=2, entitlement_pct=35, memory_mb=4096))
    assert cap.release("a") == empty


def test_entitlement_can_change_online_if_it_still_fits() -> None:
    cap = rules.HostCapacity.empty(name="h", cores=2, physical_memory_mb=16384)
    cap = cap.admit(rules.Demand(name="a", vcpus=2, entitlement_pct=50, memory_mb=1024))
    cap = cap.admit(rules.Demand(name="b", vcpus=1, entitlement_pct=40, memory_mb=1024))
    assert cap.with_entitlement("a", 60).core_used_pct == (100.0, 60.0)
    with pytest.raises(InsufficientResources):
        cap.with_entitlement("a", 70)


@given(
    st.lists(
        st.tuples(st.integers(1, 8), st.sampled_from([5.0, 10.0, 25.0, 50.0, 100.0]),
                  st.integers(1, 64)),
        max_size=20,
    )
)  # fmt: skip
def test_admission_never_commits_a_core_over_100_percent_or_memory_over_the_pool(
    guests: list[tuple[int, float, int]],
) -> None:
    cap = rules.HostCapacity.empty(name="h", cores=8, physical_memory_mb=32 * 1024)
    for index, (vcpus, ent, gigabytes) in enumerate(guests):
        demand = rules.Demand(name=f"g{index}", vcpus=vcpus, entitlement_pct=ent,
                              memory_mb=gigabytes * 1024)  # fmt: skip
        try:
            cap = cap.admit(demand)
        except InsufficientResources:
            continue
        assert all(used <= 100.0 for used in cap.core_used_pct)
        assert cap.memory_used_mb <= cap.pool_mb


@pytest.mark.parametrize(
    ("text", "value"),
    [("0xB20EBA14E76C", 0xB20EBA14E76C), ("56-e9-e3-09-6a-22", 0x56E9E3096A22),
     ("56:e9:e3:09:6a:22", 0x56E9E3096A22)],
)  # fmt: skip
def test_mac_spellings(text: str, value: int) -> None:
    assert rules.parse_mac(text) == value


@pytest.mark.parametrize(
    "text", ["0xB20EBA14E76G", "0x+20EBA14E76C", "0x B20EBA14E76", "0xB20EBA14E76", "B20EBA14E76C"]
)
def test_malformed_macs_are_refused_by_the_fast_path_too(text: str) -> None:
    with pytest.raises(RuleViolation, match="invalid MAC"):
        rules.parse_mac(text)


def test_macs_print_in_both_hpvm_spellings() -> None:
    assert rules.format_mac(0x0ADCFDCB2C62) == "0x0ADCFDCB2C62"
    assert rules.format_mac_dashed(0x0ADCFDCB2C62) == "0a-dc-fd-cb-2c-62"


def test_guest_macs_must_be_locally_administered_unicast() -> None:
    assert rules.mac_problem(0x02AABBCCDDEE) is None
    assert "unicast" in (rules.mac_problem(0x03AABBCCDDEE) or "")
    assert "locally administered" in (rules.mac_problem(0x00AABBCCDDEE) or "")


@given(st.integers(0, 10**9))
def test_generated_macs_are_always_valid_guest_macs(seed: int) -> None:
    assert rules.mac_problem(rules.generate_mac(seed)) is None


def test_generated_macs_differ_for_consecutive_seeds() -> None:
    assert len({rules.generate_mac(i) for i in range(10000)}) == 10000


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [("4.2", "4.3", True), ("4.3", "6.1", True), ("6.3", "6.3", True), ("6.3", "6.1", False),
     ("4.0", "4.0", False), ("4.1", "4.3", False)],
)  # fmt: skip
def test_online_migration_paths_are_forward_only(source: str, target: str, ok: bool) -> None:
    assert (rules.online_migration_problem(source, target) is None) is ok


@pytest.mark.parametrize(
    ("source", "target", "ok"), [("3.5", "3.5", True), ("4.0", "4.1", False), ("4.1", "6.3", True)]
)
def test_offline_migration_paths_stay_within_a_family(source: str, target: str, ok: bool) -> None:
    assert (rules.offline_migration_problem(source, target) is None) is ok


@pytest.mark.parametrize(
    ("path", "why"),
    [("/ivm/web01.img", None), ("/ivm/$(touch x).img", None), ("ivm/rel.img", "not an absolute"),
     ("/ivm/../etc/passwd", "'..'"), ("/ivm/./x", "'..'"), ("/ivm/a:b", "':'"),
     ("/ivm/a\nb", "control character"), ("/ivm/a\x00b", "control character"),
     ("/ivm/a\x1fb", "control character"), ("/ivm/a\x7fb", "control character"),
     ("/ivm/\u00e9t\u00e9 \x20.img", None)],
)  # fmt: skip
def test_backing_paths_that_would_act_elsewhere_are_refused(path: str, why: str | None) -> None:
    problem = rules.backing_path_problem(path)
    assert (problem is None) if why is None else (why in (problem or ""))


LANDING_CASES = [
    # (its port, ports taken on the target, where it lands)
    (0, set(), 0),
    (3, {0, 1}, 3),
    (0, {0}, 1),
    (1, {0, 1, 2, 4}, 3),
    (5, {1, 5}, 2),
    (0, set(range(512)), None),
]


@pytest.mark.parametrize(("port", "taken", "lands"), LANDING_CASES)
def test_a_migrating_nic_keeps_a_free_port_else_takes_the_lowest_free_from_one(
    port: int, taken: set[int], lands: int | None
) -> None:
    assert rules.landing_port(port, taken) == lands


def test_a_port_named_by_nobody_is_never_port_zero() -> None:
    assert rules.first_free_port(set()) == 1
    assert rules.first_free_port({1, 2}) == 3
    assert rules.first_free_port(set(range(1, 512))) is None
