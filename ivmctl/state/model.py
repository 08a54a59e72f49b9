"""The state's value types and their JSON form."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ivmctl.errors import StateError

STATE_FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ResourceRecord:
    """One object ivmctl owns."""

    address: str  # e.g. "guest.web01"
    host: str  # the host it lives on (for vswitches and guests)
    prevent_destroy: bool = False  # remembered even after the object leaves the config
    digest: str = ""  # digest of the configuration last applied to it


@dataclass(frozen=True, kw_only=True)
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
        body = {
            "format_version": self.format_version,
            "lineage": self.lineage,
            "serial": self.serial,
            "resources": {
                address: {
                    "host": record.host,
                    "prevent_destroy": record.prevent_destroy,
                    "digest": record.digest,
                }
                for address, record in sorted(self.resources.items())
            },
        }
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, source: str) -> State:
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
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
                str(address): ResourceRecord(
                    address=str(address),
                    host=str(rec["host"]),
                    prevent_destroy=bool(rec.get("prevent_destroy", False)),
                    digest=str(rec.get("digest", "")),
                )
                for address, rec in _mapping(body["resources"]).items()
            }
            return cls(
                lineage=str(body["lineage"]),
                serial=int(body["serial"]),
                resources=resources,
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(
                f"state file {source} is malformed (missing or wrong field {exc})",
                detail="It was not changed.",
            ) from None


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("resources")
    return value
