"""Operations to hpvm* command lines: one function per operation kind, pure.

`steps_for(operation)` is what both `plan --commands` and `apply` use, so what is shown
is what runs. Every step is an argument list (ivm-domain.md section 3 gives the syntax);
nothing here touches a host. An operation that cannot be expressed (a missing or
ill-typed parameter) is a ProviderError naming the operation and the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ivmctl.errors import ProviderError
from ivmctl.plan.model import Operation, OpKind
from ivmctl.providers.base import Step
from ivmctl.rules import backing_path_problem, format_memory_arg, format_percent

# hpvmcreate/hpvmmodify -O takes these; "unknown" is the default and has no spelling.
_OS_ARGS = frozenset({"hpux", "linux", "windows", "openvms"})
_NIC_RE = re.compile(r"^lan(\d+)$")


def _param(op: Operation, key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in op.params:
        raise ProviderError(
            f"operation {op.kind} on {op.host} lacks the parameter {key!r}",
            detail="The plan is malformed; compute it again with `ivmctl plan`.",
        )
    value = op.params[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise ProviderError(
            f"operation {op.kind} on {op.host}: parameter {key!r} is {value!r}",
            detail="The plan is malformed; compute it again with `ivmctl plan`.",
        )
    return value


def _step(op: Operation, description: str, *argv: str) -> Step:
    return Step(host=op.host, argv=tuple(argv), description=description)


def _entitlement(op: Operation, value: Any) -> str:
    if not isinstance(value, Mapping) or "min" not in value:
        raise ProviderError(
            f"operation {op.kind} on {op.host}: entitlement {value!r} needs min and max",
            detail="The plan is malformed; compute it again with `ivmctl plan`.",
        )
    text = format_percent(float(value["min"]))
    if value.get("max") is not None:
        text += f":{format_percent(float(value['max']))}"
    return text


def _dynamic_memory(op: Operation, value: Any) -> list[str]:
    if value is None:
        return ["-x", "ram_dyn_type=none"]
    if not isinstance(value, Mapping) or not {"min_mb", "max_mb", "target_mb"} <= set(value):
        raise ProviderError(
            f"operation {op.kind} on {op.host}: dynamic memory {value!r} needs "
            "min_mb, max_mb and target_mb",
            detail="The plan is malformed; compute it again with `ivmctl plan`.",
        )
    return [
        "-x", "ram_dyn_type=driver",
        "-x", f"ram_dyn_min={int(value['min_mb'])}",
        "-x", f"ram_dyn_max={int(value['max_mb'])}",
        "-x", f"ram_dyn_target_start={int(value['target_mb'])}",
    ]  # fmt: skip


def _enabled(flag: bool) -> str:
    return "enabled" if flag else "disabled"


def _checked_path(op: Operation, path: str) -> str:
    problem = backing_path_problem(path)
    if problem:
        raise ProviderError(
            f"operation {op.kind} on {op.host}: refusing backing path {path!r}: {problem}",
            detail="Declare the backing with a plain absolute path (/ivm/NAME/disk.img).",
        )
    return path


def _statements(op: Operation, key: str) -> list[str]:
    value = op.params.get(key) or []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ProviderError(
            f"operation {op.kind} on {op.host}: {key!r} must be a list of resource statements",
            detail="The plan is malformed; compute it again with `ivmctl plan`.",
        )
    statements = [str(v) for v in value]
    for statement in statements:
        parts = statement.split(":", 4)
        if parts[0] != "network" and len(parts) == 5:
            _checked_path(op, parts[4])
    return statements


# --------------------------------------------------------------------------------------------
# Guests
# --------------------------------------------------------------------------------------------


def guest_create(op: Operation) -> tuple[Step, ...]:
    """`hpvmcreate -P NAME -O OS -c N -e MIN:MAX -r MEM -B START -l LABEL -a DEV... -x ...`."""
    name = _param(op, "name", str)
    argv = ["hpvmcreate", "-P", name]
    os_type = str(op.params.get("os") or "unknown")
    if os_type in _OS_ARGS:
        argv += ["-O", os_type]
    if op.params.get("vcpus") is not None:
        argv += ["-c", str(_param(op, "vcpus", int))]
    if op.params.get("entitlement") is not None:
        argv += ["-e", _entitlement(op, op.params["entitlement"])]
    if op.params.get("memory_mb") is not None:
        argv += ["-r", format_memory_arg(_param(op, "memory_mb", int))]
    if op.params.get("start"):
        argv += ["-B", _param(op, "start", str)]
    if op.params.get("label"):
        argv += ["-l", _param(op, "label", str)]
    for statement in _statements(op, "devices"):
        argv += ["-a", statement]
    if op.params.get("online_migration") is not None:
        argv += ["-x", f"online_migration={_enabled(_param(op, 'online_migration', bool))}"]
    if op.params.get("dynamic_memory") is not None:
        argv += _dynamic_memory(op, op.params["dynamic_memory"])
    return (_step(op, f"create guest {name}", *argv),)


# guest.modify `set` keys -> how each becomes hpvmmodify arguments, in this order.
_MODIFY_SET: dict[str, Callable[[Operation, Any], list[str]]] = {
    "os": lambda op, v: ["-O", str(v)],
    "vcpus": lambda op, v: ["-c", str(int(v))],
    "entitlement": lambda op, v: ["-e", _entitlement(op, v)],
    "memory_mb": lambda op, v: ["-r", format_memory_arg(int(v))],
    "start": lambda op, v: ["-B", str(v)],
    "label": lambda op, v: ["-l", str(v)],
    "online_migration": lambda op, v: ["-x", f"online_migration={_enabled(bool(v))}"],
    "dynamic_memory": _dynamic_memory,
    "dynamic_memory.target": lambda op, v: ["-x", f"ram_target={int(v)}"],
}


def guest_modify(op: Operation) -> tuple[Step, ...]:
    """`hpvmmodify -P NAME [settings] [-d DEV]... [-a DEV]... [-m DEV]...` (none if empty)."""
    name = _param(op, "name", str)
    changes = op.params.get("set") or {}
    if not isinstance(changes, Mapping):
        raise ProviderError(
            f"operation {op.kind} on {op.host}: 'set' must map fields to values",
            detail="The plan is malformed; compute it again with `ivmctl plan`.",
        )
    unknown = sorted(set(changes) - set(_MODIFY_SET))
    if unknown:
        raise ProviderError(
            f"hpvmmodify cannot change {', '.join(unknown)} of guest {name}",
            detail=f"Fields it can change: {', '.join(_MODIFY_SET)}.",
        )
    argv = ["hpvmmodify", "-P", name]
    for key, render in _MODIFY_SET.items():
        if key in changes:
            argv += render(op, changes[key])
    for flag, key in (("-d", "remove"), ("-a", "add"), ("-m", "modify")):
        for statement in _statements(op, key):
            argv += [flag, statement]
    if len(argv) == 3:
        return ()
    how = "online" if op.params.get("online") else "offline"
    return (_step(op, f"modify guest {name} ({how})", *argv),)


def guest_start(op: Operation) -> tuple[Step, ...]:
    """`hpvmstart -P NAME`."""
    name = _param(op, "name", str)
    return (_step(op, f"start guest {name}", "hpvmstart", "-P", name),)


def guest_stop(op: Operation) -> tuple[Step, ...]:
    """`hpvmstop -P NAME -g -F` (graceful) or `hpvmstop -P NAME -F` (hard)."""
    name = _param(op, "name", str)
    if op.params.get("graceful", True):
        return (_step(op, f"stop guest {name} gracefully", "hpvmstop", "-P", name, "-g", "-F"),)
    return (_step(op, f"power off guest {name}", "hpvmstop", "-P", name, "-F"),)


def guest_migrate(op: Operation) -> tuple[Step, ...]:
    """`hpvmmigrate -P NAME -h TARGET -o` (online) or `hpvmmigrate -P NAME -h TARGET` (offline).

    Runs on the source host (`Operation.host`). The source keeps an Off (NR) copy in both
    cases [R12]; the planner follows every migration with a guest.remove_stale operation
    that removes it, so the copy is dropped by an explicit, separately verified step
    (`-D` would make that step fail, and a rerun after an interrupted apply converges).
    """
    name = _param(op, "name", str)
    target = _param(op, "target", str)
    if op.params.get("online"):
        return (
            _step(op, f"migrate guest {name} online to {target}",
                  "hpvmmigrate", "-P", name, "-h", target, "-o"),
        )  # fmt: skip
    return (
        _step(op, f"migrate guest {name} offline to {target}",
              "hpvmmigrate", "-P", name, "-h", target),
    )  # fmt: skip


def guest_delete(op: Operation) -> tuple[Step, ...]:
    """`hpvmremove -P NAME -F`."""
    name = _param(op, "name", str)
    return (_step(op, f"remove guest {name}", "hpvmremove", "-P", name, "-F"),)


def guest_remove_stale(op: Operation) -> tuple[Step, ...]:
    """`hpvmremove -P NAME -F` on the host that keeps an Off (NR) copy."""
    name = _param(op, "name", str)
    return (
        _step(op, f"remove the not-runnable copy of guest {name}", "hpvmremove", "-P", name, "-F"),
    )


# --------------------------------------------------------------------------------------------
# Vswitches and storage
# --------------------------------------------------------------------------------------------


def _ppa(op: Operation, nic: str) -> str:
    match = _NIC_RE.match(nic)
    if not match:
        raise ProviderError(
            f"vswitch {op.params.get('name')} on {op.host}: NIC {nic!r} is not lanN",
            detail="Name the host NIC as hpvmnet lists it, e.g. lan0.",
        )
    return match.group(1)


def vswitch_create(op: Operation) -> tuple[Step, ...]:
    """`hpvmnet -c -S NAME [-n PPA]`, then `hpvmnet -b -S NAME` to boot it."""
    name = _param(op, "name", str)
    nic = op.params.get("nic")
    argv = ["hpvmnet", "-c", "-S", name]
    if nic:
        argv += ["-n", _ppa(op, str(nic))]
    where = f"on {nic}" if nic else "host-local"
    return (
        _step(op, f"create vswitch {name} ({where})", *argv),
        _step(op, f"boot vswitch {name}", "hpvmnet", "-b", "-S", name),
    )


def vswitch_delete(op: Operation) -> tuple[Step, ...]:
    """`hpvmnet -h -S NAME -F` (halt), then `hpvmnet -d -S NAME -F`."""
    name = _param(op, "name", str)
    return (
        _step(op, f"halt vswitch {name}", "hpvmnet", "-h", "-S", name, "-F"),
        _step(op, f"delete vswitch {name}", "hpvmnet", "-d", "-S", name, "-F"),
    )


def port_vlan(op: Operation) -> tuple[Step, ...]:
    """`hpvmnet -S VSWITCH -u portid:P:vlanid:V` (`none` clears it)."""
    vswitch = _param(op, "vswitch", str)
    port = _param(op, "port", int)
    vlan = op.params.get("vlan")
    if vlan is not None:
        vlan = _param(op, "vlan", int)
    shown = "none" if vlan is None else str(vlan)
    what = f"clear the VLAN of port {port}" if vlan is None else f"put port {port} on VLAN {vlan}"
    return (
        _step(op, f"{what} of vswitch {vswitch}",
              "hpvmnet", "-S", vswitch, "-u", f"portid:{port}:vlanid:{shown}"),
    )  # fmt: skip


def file_create(op: Operation) -> tuple[Step, ...]:
    """`hpvmdevmgmt -S SIZE PATH`: create a backing file."""
    path = _checked_path(op, _param(op, "path", str))
    size = format_memory_arg(_param(op, "size_mb", int))
    return (_step(op, f"create backing file {path} ({size})", "hpvmdevmgmt", "-S", size, path),)


def device_share(op: Operation) -> tuple[Step, ...]:
    """`hpvmdevmgmt -m gdev:PATH:attr:SHARE=YES`."""
    path = _checked_path(op, _param(op, "path", str))
    return (
        _step(op, f"mark {path} shareable", "hpvmdevmgmt", "-m", f"gdev:{path}:attr:SHARE=YES"),
    )


STEP_BUILDERS: dict[OpKind, Callable[[Operation], tuple[Step, ...]]] = {
    OpKind.VSWITCH_CREATE: vswitch_create,
    OpKind.VSWITCH_DELETE: vswitch_delete,
    OpKind.PORT_VLAN: port_vlan,
    OpKind.FILE_CREATE: file_create,
    OpKind.DEVICE_SHARE: device_share,
    OpKind.GUEST_CREATE: guest_create,
    OpKind.GUEST_MODIFY: guest_modify,
    OpKind.GUEST_START: guest_start,
    OpKind.GUEST_STOP: guest_stop,
    OpKind.GUEST_MIGRATE: guest_migrate,
    OpKind.GUEST_DELETE: guest_delete,
    OpKind.GUEST_REMOVE_STALE: guest_remove_stale,
}


def steps_for(operation: Operation) -> tuple[Step, ...]:
    """The hpvm* steps of one operation, in the order they must run."""
    builder = STEP_BUILDERS.get(operation.kind)
    if builder is None:
        raise ProviderError(
            f"the hpvm* providers cannot carry out {operation.kind}",
            detail="Upgrade ivmctl, or use a provider that supports this operation.",
        )
    return builder(operation)
