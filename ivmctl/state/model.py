"""The state's value types and their JSON form (state.json and the journal's records).

Format 2 (this one) adds a record's `status` and the journal beside state.json
(state/journal.py); format 1 files, which have neither, are still read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import field, replace
from enum import StrEnum
from typing import Any

from ivmctl import jsontext
from ivmctl.errors import StateError
from ivmctl.values import frozen

STATE_FORMAT_VERSION = 2


class RecordStatus(StrEnum):
    """How far ivmctl got with an object it owns."""

    OWNED = "owned"  # created, adopted or changed by a change that completed
    # Recorded (durably) just before its create step ran: the object may or may not
    # exist. It is owned all the same, so a crash right after the create cannot leave
    # it unowned; the next apply keeps it if the runtime has it and drops it if not.
    CREATING = "creating"


@frozen
class ResourceRecord:
    """One object ivmctl owns."""

    address: str  # e.g. "guest.web01"
    host: str  # the host it lives on (for vswitches and guests)
    prevent_destroy: bool = False  # remembered even after the object leaves the config
    digest: str = ""  # digest of the configuration last applied to it
    status: RecordStatus = RecordStatus.OWNED

    def to_body(self) -> dict[str, Any]:
        """The record's JSON object (its address is the key it is stored under)."""
        return {
            "digest": self.digest,
            "host": self.host,
            "prevent_destroy": self.prevent_destroy,
            "status": self.status.value,
        }

    @classmethod
    def from_body(cls, address: object, body: object) -> ResourceRecord:
        """A record from its JSON object; KeyError, TypeError or ValueError if malformed."""
        if not isinstance(address, str) or not isinstance(body, dict):
            raise TypeError("resource")
        return cls(
            address=address,
            host=str(body["host"]),
            prevent_destroy=bool(body.get("prevent_destroy", False)),
            digest=str(body.get("digest", "")),
            status=_STATUSES[body.get("status", RecordStatus.OWNED.value)],
        )


# a status by its value, as RecordStatus(value) finds it but a quarter as slow; the state
# of 10,000 guests has 13,000 records. An unknown one is a KeyError: a malformed record.
_STATUSES = {status.value: status for status in RecordStatus}


@frozen
class State:
    """Everything ivmctl remembers between runs."""

    lineage: str
    serial: int = 0
    resources: Mapping[str, ResourceRecord] = field(default_factory=dict)
    format_version: int = STATE_FORMAT_VERSION

    @classmethod
    def new(cls) -> State:
        return cls(lineage=str(uuid.uuid4()))

    @property
    def owned(self) -> frozenset[str]:
        return frozenset(self.resources)

    def with_record(self, record: ResourceRecord) -> State:
        return replace(self, resources={**self.resources, record.address: record})

    def without(self, address: str) -> State:
        return replace(self, resources={a: r for a, r in self.resources.items() if a != address})

    def to_json(self) -> bytes:
        """The file's bytes, always in the current format (one pretty-printed object;
        written once per apply, so readability costs nothing that matters)."""
        body = {
            "format_version": STATE_FORMAT_VERSION,
            "lineage": self.lineage,
            "serial": self.serial,
            "resources": {
                address: record.to_body() for address, record in sorted(self.resources.items())
            },
        }
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, source: str) -> State:
        try:
            body = jsontext.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise StateError(
                f"state file {source} is corrupt ({exc})",
                detail="It was not changed. Restore it from a backup, or move it away to "
                "start over (ivmctl then owns nothing).",
            ) from None
        version = body.get("format_version") if isinstance(body, dict) else None
        if not isinstance(version, int):
            raise StateError(
                f"state file {source} has no format version", detail="It was not changed."
            )
        if version > STATE_FORMAT_VERSION:
            raise StateError(
                f"state file {source} has format version {version}; this ivmctl reads up to "
                f"version {STATE_FORMAT_VERSION}",
                detail="Upgrade ivmctl; the file was not changed.",
            )
        try:
            resources = {
                address: ResourceRecord.from_body(address, rec)
                for address, rec in _mapping(body["resources"]).items()
            }
            return cls(
                lineage=str(body["lineage"]),
                serial=int(body["serial"]),
                resources=resources,
                format_version=version,
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise StateError(
                f"state file {source} is malformed (missing or wrong field {exc})",
                detail="It was not changed.",
            ) from None


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("resources")
    return value
