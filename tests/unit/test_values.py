"""`@frozen` value types: the classes `@dataclass(frozen=True, kw_only=True)` would make."""

from __future__ import annotations

import ast
import dataclasses
import pickle
from dataclasses import InitVar, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ivmctl import model
from ivmctl.values import frozen

PACKAGE = Path(__file__).resolve().parents[2] / "ivmctl"


def counted() -> list[int]:
    counted.calls += 1  # type: ignore[attr-defined]
    return [counted.calls]  # type: ignore[attr-defined]


counted.calls = 0  # type: ignore[attr-defined]


@frozen
class Sample:
    name: str
    size: int = 4
    tags: tuple[str, ...] = ()
    items: list[int] = field(default_factory=list)
    kind: ClassVar[str] = "sample"


def standard_twin(cls: type, name: str) -> Any:
    """Class `name` with `cls`'s fields, options included, declared with the standard
    library's decorator."""
    return dataclasses.make_dataclass(
        name,
        [(f.name, f.type, _same_options(f)) for f in dataclasses.fields(cls)],
        frozen=True,
        kw_only=True,
    )


def _same_options(f: dataclasses.Field[Any]) -> Any:
    return field(
        default=f.default,
        default_factory=f.default_factory,
        compare=f.compare,
        hash=f.hash,
        repr=f.repr,
    )


Standard = standard_twin(Sample, "Standard")


@frozen
class Counted:
    items: list[int] = field(default_factory=counted)


@frozen
class Pair:
    left: int
    right: tuple[int, ...] = ()


@frozen
class Tagged:
    name: str
    note: str = field(default="", compare=False)
    secret: str = field(default="", repr=False)
    hashless: tuple[int, ...] = field(default=(), hash=False)


StandardTagged = standard_twin(Tagged, "StandardTagged")


@frozen
class Shown:
    name: str

    def __repr__(self) -> str:
        return f"<{self.name}>"


@frozen
class Nested:
    items: list[object] = field(default_factory=list)


@frozen
class Checked:
    low: int
    high: int
    seen: list[str] = field(init=False, default_factory=list)
    note: str = field(init=False, default="made")

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"{self.low} > {self.high}")
        self.seen.append("post-init")


@frozen
class Derived(Checked):
    extra: str = "x"


@frozen
class Empty:
    pass


def fields_of(obj: object) -> dict[str, Any]:
    return dict(vars(obj))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "a"},
        {"name": "a", "size": 7},
        {"name": "b", "tags": ("x", "y"), "items": [1]},
    ],
)
def test_a_value_holds_what_the_standard_dataclass_would_hold(kwargs: dict[str, Any]) -> None:
    made, standard = Sample(**kwargs), Standard(**kwargs)
    assert fields_of(made) == fields_of(standard)
    assert [f.name for f in dataclasses.fields(made)] == ["name", "size", "tags", "items"]
    assert repr(made) == repr(standard).replace("Standard", "Sample")


@pytest.mark.parametrize(
    "kwargs",
    [{"name": "a"}, {"name": "a", "note": "n", "secret": "s", "hashless": (1,)}],
)
def test_equality_hash_and_repr_follow_the_fields_options_as_the_dataclass_s(
    kwargs: dict[str, Any],
) -> None:
    made, standard = Tagged(**kwargs), StandardTagged(**kwargs)
    assert hash(made) == hash(standard)  # the hash of the same tuple
    assert repr(made) == repr(standard).replace("StandardTagged", "Tagged")
    assert "secret" not in repr(made)
    assert made == Tagged(**{**kwargs, "note": "other"})  # note does not compare
    assert made != Tagged(**{**kwargs, "name": "other"})
    assert hash(made) == hash(Tagged(**{**kwargs, "hashless": (9,)}))
    assert made != StandardTagged(**kwargs)  # another class is never equal
    assert made.__eq__(StandardTagged(**kwargs)) is NotImplemented


def test_a_method_the_class_defines_is_kept_and_a_value_that_holds_itself_shows_as_dots() -> None:
    assert repr(Shown(name="x")) == "<x>"
    nested = Nested()
    nested.items.append(nested)
    assert repr(nested) == "Nested(items=[...])"


def test_an_instance_of_a_plain_subclass_may_take_attributes_but_never_fields() -> None:
    class Plain(Pair):
        pass

    made = Plain(left=1)
    made.extra = 2  # type: ignore[attr-defined]
    del made.extra  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'left'"):
        made.left = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'left'"):
        del made.left  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'extra'"):
        Pair(left=1).extra = 2  # type: ignore[attr-defined]


def test_a_default_factory_is_called_once_per_instance_and_only_when_not_given() -> None:
    before = counted.calls  # type: ignore[attr-defined]
    first, second = Counted(), Counted()
    assert first.items != second.items
    assert counted.calls == before + 2  # type: ignore[attr-defined]
    Counted(items=[9])
    assert counted.calls == before + 2  # type: ignore[attr-defined]


def test_values_stay_frozen_hashable_and_comparable() -> None:
    made = Sample(name="a", tags=("x",), items=[])
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "b"  # type: ignore[misc]
    assert made == Sample(name="a", tags=("x",), items=[])
    assert made != Sample(name="a", tags=("y",), items=[])
    assert hash(Pair(left=1, right=(2,))) == hash(Pair(left=1, right=(2,)))
    assert {Pair(left=1), Pair(left=1)} == {Pair(left=1)}


def test_arguments_are_keyword_only_and_required_ones_are_named_like_the_standard_ones() -> None:
    with pytest.raises(TypeError, match="positional"):
        Sample("a")  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"Sample\.__init__\(\) missing 1 required keyword-only "
                       r"argument: 'name'"):  # fmt: skip
        Sample()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Sample(name="a", colour="red")  # type: ignore[call-arg]


def test_post_init_runs_last_with_every_field_set_and_fields_outside_init_get_defaults() -> None:
    made = Checked(low=1, high=2)
    assert made.seen == ["post-init"]
    assert made.note == "made"
    with pytest.raises(ValueError, match="3 > 2"):
        Checked(low=3, high=2)
    with pytest.raises(TypeError, match="note"):
        Checked(low=1, high=2, note="given")  # type: ignore[call-arg]


def test_a_subclass_takes_its_bases_fields_and_post_init() -> None:
    made = Derived(low=1, high=2, extra="y")
    assert (made.low, made.high, made.extra, made.seen) == (1, 2, "y", ["post-init"])
    assert Empty() == Empty()


def test_replace_asdict_and_pickling_build_equal_values() -> None:
    made = Derived(low=1, high=5)
    assert dataclasses.replace(made, high=6) == Derived(low=1, high=6)
    assert dataclasses.is_dataclass(made)
    assert dataclasses.asdict(Pair(left=1, right=(2,))) == {"left": 1, "right": (2,)}
    assert pickle.loads(pickle.dumps(made)) == made
    guest = model.Guest(name="g1", host="h1", disks=(model.Disk(path="/d", backing="file"),))
    assert pickle.loads(pickle.dumps(guest, 5)) == guest


def test_what_the_faster_init_cannot_do_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match="InitVar"):

        @frozen
        class WithInitVar:
            seed: InitVar[int]

    with pytest.raises(TypeError, match="keyword-only"):

        @frozen
        class Positional:
            name: str = field(kw_only=False)

    with pytest.raises(TypeError, match="slots"):

        @frozen
        class Slotted:
            __slots__ = ("name",)
            name: str

    with pytest.raises(TypeError, match="Cannot overwrite attribute __setattr__"):

        @frozen
        class Settable:
            name: str

            def __setattr__(self, name: str, value: object) -> None:
                pass


def test_ivmctl_declares_no_frozen_dataclass_but_through_frozen() -> None:
    """One way to declare a value type: a class declared with the standard decorator
    would build at the standard (slower) speed without anyone noticing."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                said = {kw.arg for kw in getattr(decorator, "keywords", ())}
                if {"frozen", "kw_only"} <= said:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert found == []
