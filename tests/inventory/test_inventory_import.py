"""`ivmctl import`: adopt one declared, existing object into the state, changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from inventory_helpers import Ivmctl, actionable, generation, session_for

from ivmctl.core.inventory import ImportRefused, import_object
from ivmctl.errors import LockError


def owned(config_dir: Path) -> frozenset[str]:
    with session_for(config_dir) as session:
        return session.backend.read().owned


def forget(ivmctl: Ivmctl, config_dir: Path, address: str) -> None:
    code, _, err = ivmctl("-C", str(config_dir), "state", "rm", address, "--yes")
    assert code == 0, err


def test_import_adopts_a_forgotten_guest_and_leaves_the_runtime_alone(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    forget(ivmctl, quickstart, "guest.web01")
    assert actionable(quickstart) == [("guest.web01", "adopt")]
    before = generation(quickstart)

    code, out, err = ivmctl("-C", str(quickstart), "import", "guest.web01")

    assert (code, err) == (0, "")
    assert "Imported guest.web01 (on host vmhost01)" in out
    assert "It matches its configuration." in out
    assert "guest.web01" in owned(quickstart)
    assert generation(quickstart) == before
    assert actionable(quickstart) == []


def test_after_import_a_difference_is_an_ordinary_change_not_an_adoption(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    forget(ivmctl, quickstart, "guest.web02")
    config = quickstart / "ivmctl.yaml"
    config.write_text(
        config.read_text().replace(
            "entitlement: {min: 20%, max: 60%}", "vcpus: 2\n    entitlement: {min: 20%, max: 60%}"
        )
    )

    code, out, _ = ivmctl("-C", str(quickstart), "import", "guest.web02")

    assert code == 0
    assert "It differs from its configuration in: vcpus." in out
    assert actionable(quickstart) == [("guest.web02", "restart")]
    with session_for(quickstart) as session:
        assert session.backend.read().resources["guest.web02"].digest == ""  # not applied yet


def test_import_of_an_undeclared_guest_says_to_declare_it_and_where_to_get_its_yaml(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    forget(ivmctl, quickstart, "guest.build01")
    config = quickstart / "ivmctl.yaml"
    text = config.read_text()
    config.write_text(text[: text.index("  build01:")])

    code, out, err = ivmctl("-C", str(quickstart), "import", "guest.build01")

    assert (code, out) == (1, "")
    assert "guest.build01 is not declared in the configuration" in err
    assert "Declare it first" in err
    assert "ivmctl export --host vmhost01" in err
    assert "Traceback" not in err
    assert "guest.build01" not in owned(quickstart)


def test_import_refuses_an_object_ivmctl_already_owns(quickstart: Path, ivmctl: Ivmctl) -> None:
    code, _, err = ivmctl("-C", str(quickstart), "import", "guest.web01")
    assert code == 1
    assert "guest.web01 is already owned by ivmctl" in err


def test_import_refuses_a_declared_guest_the_runtime_does_not_have(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    config = quickstart / "ivmctl.yaml"
    config.write_text(config.read_text() + "\n  db01:\n    host: vmhost01\n    power: off\n")
    code, _, err = ivmctl("-C", str(quickstart), "import", "guest.db01")
    assert code == 1
    assert "guest.db01 does not exist in the runtime" in err
    assert "apply" in err
    assert "guest.db01" not in owned(quickstart)


def test_import_adopts_a_vswitch(quickstart: Path, ivmctl: Ivmctl) -> None:
    forget(ivmctl, quickstart, "vswitch.vmhost01.vswprod")
    assert actionable(quickstart) == [("vswitch.vmhost01.vswprod", "adopt")]
    code, out, _ = ivmctl("-C", str(quickstart), "import", "vswitch.vmhost01.vswprod")
    assert code == 0
    assert "Imported vswitch.vmhost01.vswprod" in out
    assert actionable(quickstart) == []


def test_import_of_an_undeclared_vswitch_suggests_exporting_its_host(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    code, _, err = ivmctl("-C", str(quickstart), "import", "vswitch.vmhost01.vswother")
    assert code == 1
    assert "vswitch.vmhost01.vswother is not declared" in err
    assert "ivmctl export --host vmhost01" in err


@pytest.mark.parametrize("address", ["host.vmhost01", "guest.", "web01", "vswitch.vmhost01"])
def test_import_refuses_what_is_not_a_guest_or_vswitch_address(
    quickstart: Path, ivmctl: Ivmctl, address: str
) -> None:
    code, _, err = ivmctl("-C", str(quickstart), "import", address)
    assert code == 1
    assert "is not the address of a guest or a vswitch" in err


def test_import_takes_the_state_lock(quickstart: Path, ivmctl: Ivmctl) -> None:
    forget(ivmctl, quickstart, "guest.web01")
    with session_for(quickstart) as session, session.backend.lock(operation="apply"):
        with pytest.raises(LockError, match="the state is locked"):
            import_object(session_for(quickstart), "guest.web01")
        code, _, err = ivmctl("-C", str(quickstart), "import", "guest.web01")
        assert code == 1
        assert "held by 'apply'" in err
    assert "guest.web01" not in owned(quickstart)


def test_import_records_prevent_destroy_from_the_configuration(quickstart: Path) -> None:
    config = quickstart / "ivmctl.yaml"
    config.write_text(
        config.read_text().replace(
            "ignore_changes: [label]", "ignore_changes: [label]\n      prevent_destroy: true"
        )
    )
    with session_for(quickstart) as session:
        session.backend.write(session.backend.read().without("guest.web01"))
        result = import_object(session, "guest.web01")
    assert result.record.prevent_destroy is True
    assert result.differences == ()
    with pytest.raises(ImportRefused, match="already owned"):
        import_object(session_for(quickstart), "guest.web01")


def test_import_of_a_guest_nobody_has_says_so_and_still_points_at_export(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    code, _, err = ivmctl("-C", str(quickstart), "import", "guest.ghost")
    assert code == 1
    assert "guest.ghost is not declared in the configuration, and no declared host has it" in err
    assert "ivmctl export --host HOST" in err
