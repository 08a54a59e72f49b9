"""Loading a configuration directory into a DesiredState, reporting every problem at once.

Stages: find the files (`*.yaml`, `*.yml`, `*.yaml.j2`, `*.yml.j2`, sorted by name), read
them as UTF-8, render the ones with template syntax, parse (cached by content hash),
validate each file against the JSON Schema, merge the top-level maps (a name defined
twice is an error naming both places), normalise, check. Problems of all stages are
collected; positions are computed only when there is something to report. With a cache
directory, the result is stored and reused while no input changed (desired_cache).

A cache hit needs none of the pipeline, so normalize, checks, schema and problems are
imported where the pipeline uses them: a warm `ivmctl plan` does not pay for them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivmctl.collector import collector_paused
from ivmctl.errors import ErrorGroup, IvmctlError, Location, SpecError, TemplateError
from ivmctl.model import DesiredState, Guest, Host, ProviderConfig
from ivmctl.spec import desired_cache
from ivmctl.spec.templates import (
    Renderer,
    TemplateProblem,
    environment_variables,
    is_template,
    variable_name_problem,
)
from ivmctl.spec.yamlio import YamlProblem, cached_parse, parse_yaml, prune_cache
from ivmctl.values import frozen

if TYPE_CHECKING:
    from ivmctl.spec.normalize import Collector, Item, Merged
    from ivmctl.spec.problems import Problem, SourceTexts, SpecWarning

SUFFIXES = (".yaml", ".yml", ".yaml.j2", ".yml.j2")
VAR_FILE_SUFFIXES = (".vars.yaml", ".vars.yml")  # variable files, never configuration


class InvalidConfig(ErrorGroup, SpecError):
    """The configuration has problems; `errors` lists every one, `warnings` the rest."""

    def __init__(
        self,
        summary: str,
        errors: Sequence[IvmctlError],
        warnings: Sequence[SpecWarning] = (),
    ) -> None:
        super().__init__(summary, errors)
        self.warnings = tuple(warnings)


# A 10,000-guest fleet in one file is about 9 MB; far larger files are a mistake or an
# attack, and parsing them costs seconds and hundreds of MB before any error.
MAX_FILE_BYTES = 32 * 1024 * 1024
_SPLIT_HINT = "Split the configuration over several files, or check what generated this one."


def _too_big(size: int) -> str:
    return (
        f"the file is {size / 1024 / 1024:.1f} MB; configuration files may have at most "
        f"{MAX_FILE_BYTES // 1024 // 1024} MB"
    )


@frozen
class SpecOptions:
    """How to load: template variables, var files, environment, extra filters, cache."""

    variables: Mapping[str, str] = field(default_factory=dict)  # --var name=value
    var_files: Sequence[Path] = ()  # --var-file FILE, inside the configuration directory
    environ: Mapping[str, str] | None = None  # IVMCTL_VAR_<name>; None = os.environ
    filters: Mapping[str, Callable[..., Any]] = field(default_factory=dict)  # Jinja2 filters
    cache_dir: Path | None = None  # parse cache (e.g. <dir>/.ivmctl/cache); None = no cache
    # Told the provider and the declared hosts' names as soon as the files declaring them
    # (`provider:` or `hosts:` at the start of a line) are read, before the other files
    # (a loading from the desired cache does not call it): a hint, for work that can
    # start early. Not called when the files read by then have problems; a problem in a
    # file read later may still follow it. When no file declares them in block style,
    # told after every file is merged, before the guests are built.
    early: Callable[[ProviderConfig, tuple[str, ...]], None] | None = None


@frozen
class LoadResult:
    """A loaded configuration: the desired state, warnings, and the files read."""

    desired: DesiredState
    warnings: tuple[SpecWarning, ...] = ()
    files: tuple[str, ...] = ()


def config_files(config_dir: Path, *, exclude: Sequence[Path] = ()) -> list[Path]:
    """The configuration files of a directory, in the order they are merged.

    Hidden files, `*.vars.yaml` / `*.vars.yml` and the files in `exclude` (the var files
    of this run) are not configuration.
    """
    skip = {p.resolve() for p in exclude}
    return sorted(
        p
        for p in config_dir.iterdir()
        if not p.name.startswith(".")
        and p.name.endswith(SUFFIXES)
        and not p.name.endswith(VAR_FILE_SUFFIXES)
        and p.is_file()
        and p.resolve() not in skip
    )


# A file declaring the provider or hosts at its top level (block style, as written).
_DECLARES_HOSTS = re.compile(rb"^(?:provider|hosts)[ \t]*:", re.MULTILINE)


def _declares_hosts(content: bytes) -> bool:
    """Whether `content` declares the provider or hosts (`_DECLARES_HOSTS`). The pattern
    is tried at every line start: only files holding one of the words at a line start
    are searched, which `in` finds ten times as fast (guests files hold neither)."""
    starts = (b"provider", b"hosts")
    if not content.startswith(starts) and not any(b"\n" + word in content for word in starts):
        return False
    return _DECLARES_HOSTS.search(content) is not None


def _bytes_or_none(path: Path) -> bytes | None:
    """The file's bytes; None if it is too large or cannot be read (`_Run._document`
    tries again, and says what is wrong)."""
    try:
        return path.read_bytes() if path.stat().st_size <= MAX_FILE_BYTES else None
    except OSError:
        return None


def display_name(config_dir: Path, path: Path) -> str:
    return str(config_dir / path.name) if str(config_dir) not in ("", ".") else path.name


def decode(data: bytes) -> str:
    """UTF-8 text (a BOM is dropped); YamlProblem with the line and column otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlProblem(
            summary=f"the file is not UTF-8 (byte 0x{data[exc.start]:02x})",
            detail="Save it as UTF-8.",
            line=line,
            column=column,
        ) from None


@dataclass(kw_only=True)
class _Run:
    config_dir: Path
    options: SpecOptions
    out: Collector = field(init=False)
    texts: SourceTexts = field(init=False)
    cache_used: set[Path] = field(default_factory=set)
    renderer: Renderer | None = None  # made for the first template
    told_early: bool = False  # `options.early` was told (see `_tell_early`)
    _problems: dict[str, list[Problem]] = field(default_factory=dict)  # see `validated`

    def __post_init__(self) -> None:
        from ivmctl.spec.normalize import Collector
        from ivmctl.spec.problems import SourceTexts

        self.out = Collector()
        self.texts = SourceTexts()

    def problem(self, problem: Problem) -> None:
        self.out.errors.append(problem)

    def file_problem(
        self,
        file: str,
        summary: str,
        *,
        detail: str | None = None,
        line: int | None = None,
        column: int | None = None,
        kind: type[SpecError] = SpecError,
    ) -> None:
        from ivmctl.spec.problems import Problem, Spot

        spot = Spot(file=file, line=line, column=column) if file else None
        self.problem(Problem(summary=summary, detail=detail, spot=spot, kind=kind))

    # -- variables ---------------------------------------------------------------------------
    def variables(self) -> dict[str, Any]:
        environ = os.environ if self.options.environ is None else self.options.environ
        found: dict[str, Any] = dict(environment_variables(environ))
        root = self.config_dir.resolve()
        for var_file in self.options.var_files:
            name = str(var_file)
            resolved = var_file.resolve()
            if not resolved.is_relative_to(root):
                self.file_problem(
                    name,
                    f"var file {name} lies outside the configuration directory {self.config_dir}",
                    detail="Move it into the configuration directory.",
                )
                continue
            try:
                text = decode(resolved.read_bytes())
                data = parse_yaml(text)
            except OSError as exc:
                self.file_problem(name, f"cannot read var file: {exc.strerror or exc}")
                continue
            except YamlProblem as exc:
                self._yaml_problem(name, exc)
                continue
            if data is None:
                continue
            if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
                self.file_problem(name, "a var file must be a mapping of names to values")
                continue
            found.update(data)
        found.update(self.options.variables)
        for key in sorted(found):
            problem = variable_name_problem(key)
            if problem:
                self.file_problem("", f"--var/IVMCTL_VAR_: {problem}")
                del found[key]
        return found

    # -- reading -----------------------------------------------------------------------------
    def documents(self) -> list[tuple[str, Any]]:
        if not self.config_dir.is_dir():
            what = "does not exist" if not self.config_dir.exists() else "is not a directory"
            self.file_problem(
                str(self.config_dir),
                f"configuration directory {what}",
                detail="Pass the directory holding the *.yaml files with -C DIR.",
            )
            return []
        try:
            paths = config_files(self.config_dir, exclude=self.options.var_files)
        except OSError as exc:
            self.file_problem("", f'cannot list "{self.config_dir}": {exc.strerror}')
            return []
        if not paths:
            self.file_problem(
                "",
                f'no configuration files (*.yaml, *.yml, *.yaml.j2) in "{self.config_dir}"',
                detail="Create one, or pass another directory with -C DIR.",
            )
            return []
        # The files declaring the provider and the hosts are read first, and `early` is
        # told of them then: a plan's readers start on the hosts while the rest is read.
        raw = {path: _bytes_or_none(path) for path in paths}
        first = [p for p in paths if (b := raw[p]) is not None and _declares_hosts(b)]
        read: dict[Path, tuple[str, Any] | None] = {}
        for path in first:
            read[path] = self._document(path, raw.pop(path))
        self._tell_early([d for path in first if (d := read[path]) is not None])
        for path, data in raw.items():
            read[path] = self._document(path, data)
        documents = [d for path in paths if (d := read[path]) is not None]
        texts = self.texts.texts  # in the files' order, as they are merged
        names = [display_name(self.config_dir, path) for path in paths]
        self.texts.texts = {name: texts[name] for name in names if name in texts}
        if self.options.cache_dir is not None:
            prune_cache(self.options.cache_dir, self.cache_used)
        if self.renderer is None and self.options.var_files:
            # No template needed the variables, but a bad --var-file is still an error:
            # reading it checks where it lies and that it is a YAML mapping.
            self.variables()
        return documents

    def _document(self, path: Path, content: bytes | None) -> tuple[str, Any] | None:
        """One file (its `content`, or read now when that is None), rendered if it is a
        template, and parsed: (its name, its data), or None with the problem recorded."""
        name = display_name(self.config_dir, path)
        try:
            if content is None:
                size = path.stat().st_size
                if size > MAX_FILE_BYTES:
                    self.file_problem(name, _too_big(size), detail=_SPLIT_HINT)
                    return None
                content = path.read_bytes()
            text = decode(content)
        except OSError as exc:
            self.file_problem(name, f"cannot read file: {exc.strerror or exc}")
            return None
        except YamlProblem as exc:
            self._yaml_problem(name, exc)
            return None
        if is_template(text):
            if self.renderer is None:
                self.renderer = Renderer(self.variables(), self.options.filters)
            source = text
            try:
                text = self.renderer.render(name, text)
            except TemplateProblem as exc:
                self.file_problem(
                    name,
                    exc.summary,
                    detail=exc.detail,
                    line=exc.line,
                    column=1 if exc.line else None,
                    kind=TemplateError,
                )
                return None
            if len(text) > MAX_FILE_BYTES:
                self.file_problem(name, "rendered: " + _too_big(len(text)), detail=_SPLIT_HINT)
                return None
            self.texts.templates[name] = source
        self.texts.texts[name] = text
        try:
            data = cached_parse(text, self.options.cache_dir, self.cache_used)
        except YamlProblem as exc:
            self._yaml_problem(name, exc)
            return None
        if data is None:
            return None
        if not isinstance(data, dict):
            self.file_problem(
                name,
                "the top level of a configuration file must be a mapping",
                detail="Start with apiVersion: ivmctl/v1 and hosts:/guests:.",
                line=1,
                column=1,
            )
            return None
        return name, data

    def _yaml_problem(self, name: str, exc: YamlProblem) -> None:
        self.file_problem(name, exc.summary, detail=exc.detail, line=exc.line, column=exc.column)

    def _tell_early(self, documents: list[tuple[str, Any]]) -> None:
        """Tell `early` the provider and the hosts `documents` declare, unless they (or
        the files read so far) have problems: the merge reports those."""
        from ivmctl.spec.normalize import Item, build_provider

        early = self.options.early
        if early is None or not documents or self.out.errors:
            return
        provider: Item | None = None
        hosts: set[str] = set()
        for name, data in documents:
            if self.validated(name, data):
                return
            if isinstance(data.get("provider"), dict):
                if provider is not None:
                    return  # defined twice
                provider = Item(
                    name="provider", data=data["provider"], file=name, ypath=("provider",)
                )
            hosts.update(str(key) for key in data.get("hosts") or {})
        self.told_early = True
        early(build_provider(provider), tuple(sorted(hosts)))

    def validated(self, name: str, data: Any) -> list[Problem]:
        """The schema's problems with the document `name` (checked once)."""
        from ivmctl.spec.schema import validate_document

        if name not in self._problems:
            self._problems[name] = validate_document(data, name)
        return self._problems[name]

    # -- merging -----------------------------------------------------------------------------
    def merge(self, documents: list[tuple[str, Any]]) -> Merged:
        from ivmctl.spec.normalize import Item, Merged
        from ivmctl.spec.schema import API_VERSION

        merged = Merged()
        versions = False
        for name, data in documents:
            for problem in self.validated(name, data):
                self.problem(problem)
                if problem.spot is not None:
                    _mark(merged, problem.spot.ypath)
            versions = versions or "apiVersion" in data
            provider = data.get("provider")
            if isinstance(provider, dict):
                item = Item(name="provider", data=provider, file=name, ypath=("provider",))
                if merged.provider is not None:
                    self._duplicate("provider", "provider", item, merged.provider)
                else:
                    merged.provider = item
            for section, table, what in (
                ("hosts", merged.hosts, "host"),
                ("profiles", merged.profiles, "profile"),
                ("guests", merged.guests, "guest"),
            ):
                entries = data.get(section)
                if not isinstance(entries, dict):
                    continue
                for key, value in entries.items():
                    item = Item(
                        name=str(key),
                        data=_usable(merged, section, key, value),
                        file=name,
                        ypath=(section, key),
                    )
                    if not isinstance(value, dict):
                        merged.broken.add(f"{what}.{key}")
                    if key in table:
                        self._duplicate(what, f"{what}.{key}", item, table[key])
                    else:
                        table[str(key)] = item
            defaults = data.get("defaults")
            guest_defaults = defaults.get("guests") if isinstance(defaults, dict) else None
            if isinstance(guest_defaults, dict):
                for key, value in guest_defaults.items():
                    if key in merged.dropped_fields("defaults.guests"):
                        continue
                    item = Item(
                        name=str(key), data={key: value}, file=name, ypath=("defaults", "guests")
                    )
                    if key in merged.guest_defaults:
                        self._duplicate(
                            "default", f"defaults.guests.{key}", item, merged.guest_defaults[key]
                        )
                    else:
                        merged.guest_defaults[str(key)] = item
        if documents and not versions:
            self.file_problem(
                documents[0][0],
                "no file declares apiVersion",
                detail=f"Add apiVersion: {API_VERSION} at the top of a file.",
                line=1,
                column=1,
            )
        return merged

    def _duplicate(self, what: str, address: str, item: Item, first: Item) -> None:
        from ivmctl.spec.problems import Problem, Spot

        first_spot = Spot(
            file=first.file,
            ypath=(*first.ypath, item.name) if what == "default" else first.ypath,
            key=True,
        )
        spot = Spot(
            file=item.file,
            ypath=(*item.ypath, item.name) if what == "default" else item.ypath,
            key=True,
        )
        label = "provider" if what == "provider" else f'{what} "{item.name}"'
        self.problem(
            Problem(
                summary=f"{label} is defined twice: here and at {self.texts.where(first_spot)}",
                detail="Each name may be defined once across all files; remove or rename one.",
                spot=spot,
                address=address,
            )
        )

    # -- building ----------------------------------------------------------------------------
    def build(self, merged: Merged) -> tuple[dict[str, Host], dict[str, Guest]]:
        from ivmctl.spec import checks, normalize

        out = self.out
        hosts: dict[str, Host] = {}
        for name in sorted(merged.hosts):
            item = merged.hosts[name]
            if f"host.{name}" in merged.broken:
                continue
            host = self._safely(partial(normalize.build_host, item, out), f"host.{name}", item)
            if isinstance(host, Host):
                hosts[name] = host
        guests: dict[str, Guest] = {}
        for name in sorted(merged.guests):
            item = merged.guests[name]
            profile = item.data.get("profile")
            if f"guest.{name}" in merged.broken or f"profile.{profile}" in merged.broken:
                continue
            build = partial(normalize.build_guest, item, merged, hosts, out)
            guest = self._safely(build, f"guest.{name}", item)
            if isinstance(guest, Guest):
                guests[name] = guest
        for guest in guests.values():
            checks.check_guest(guest, merged, hosts, out)
        checks.check_across(guests, out)
        return hosts, guests

    def _safely(self, build: Callable[[], object], address: str, item: Item) -> object:
        """Build one object; a shape the schema let through but the builder cannot read
        becomes a problem on that object, never a traceback."""
        try:
            return build()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            from ivmctl.spec.problems import Problem

            self.problem(
                Problem(summary=f"cannot read this object: {exc}", spot=item.spot, address=address)
            )
            return None


_REQUIRED = {"guests": {"host", "profile"}, "hosts": set(), "profiles": set()}
_KINDS = {"guests": "guest", "hosts": "host", "profiles": "profile"}


def _usable(merged: Merged, section: str, key: Any, value: Any) -> dict[str, Any]:
    """An object's data without the fields that have schema problems."""
    if not isinstance(value, dict):
        return {}
    dropped = merged.dropped_fields(f"{_KINDS[section]}.{key}")
    data = {k: v for k, v in value.items() if k not in dropped} if dropped else value
    if section == "hosts" and isinstance(data.get("vswitches"), dict):
        unsure = {v for h, v in merged.unsure_vswitches if h == str(key)}
        if unsure:
            vswitches = {v: s for v, s in data["vswitches"].items() if v not in unsure}
            data = {**data, "vswitches": vswitches}
    return data


def _mark(merged: Merged, ypath: Sequence[Any]) -> None:
    """Record what a schema problem at `ypath` makes unusable: a field, or the object."""
    if len(ypath) >= 2 and ypath[0] in _KINDS:
        address = f"{_KINDS[ypath[0]]}.{ypath[1]}"
        if len(ypath) == 2 or ypath[2] in _REQUIRED[ypath[0]]:
            merged.broken.add(address)
        elif ypath[0] == "hosts" and ypath[2] == "vswitches" and len(ypath) >= 4:
            merged.unsure_vswitches.add((str(ypath[1]), str(ypath[3])))
        else:
            merged.dropped.setdefault(address, set()).add(str(ypath[2]))
    elif len(ypath) >= 3 and tuple(ypath[:2]) == ("defaults", "guests"):
        merged.dropped.setdefault("defaults.guests", set()).add(str(ypath[2]))


def model_bytes(desired: DesiredState) -> bytes:
    """The normalised desired state (sources excluded) as bytes: what the digest hashes
    and what the desired cache stores, so a load that writes the cache serialises once.

    A pickle (fixed protocol) of the frozen model objects is deterministic: hosts, guests
    and vswitches are built in name order, provider options are sorted, and the model has
    no sets. Two texts that normalise alike but share objects differently may get two
    digests, which only makes a saved plan look stale.
    """
    from ivmctl.spec.schema import API_VERSION

    return pickle.dumps((API_VERSION, desired.provider, desired.hosts, desired.guests), 5)


def digest_of(model: bytes) -> str:
    """The configuration's digest (`DesiredState.digest`), from `model_bytes`."""
    return "sha256:" + hashlib.sha256(model).hexdigest()


def _sort_key(error: IvmctlError | SpecWarning) -> tuple[str, int, int, str]:
    loc = error.location
    if loc is None:
        return ("", 0, 0, "")
    return (loc.file or "", loc.line or 0, loc.column or 0, str(error))


def load_spec(config_dir: Path, options: SpecOptions | None = None) -> LoadResult:
    """Load, validate and normalise a configuration directory.

    Raises InvalidConfig listing every problem (each with file:line:column, address and
    field path); returns the desired state and the warnings otherwise. With a cache
    directory, a load whose inputs are all unchanged returns the stored result of the
    last one (see desired_cache).
    """
    config_dir = Path(config_dir)
    options = options or SpecOptions()
    key = _cache_key(config_dir, options) if options.cache_dir is not None else None
    if key is not None and options.cache_dir is not None:
        entry = desired_cache.read(options.cache_dir, key)
        if entry is not None:
            uncached = replace(options, cache_dir=None)
            return LoadResult(
                desired=DesiredState(
                    provider=entry.provider,
                    hosts=entry.hosts,
                    guests=entry.guests,
                    sources=desired_cache.LazySources(partial(_sources, config_dir, uncached)),
                    digest=entry.digest,
                ),
                warnings=entry.warnings,
                files=entry.files,
            )
    # Hundreds of thousands of small objects and no cycles: a collection would only walk
    # them (several times, 0.3 s and more at 10,000 guests), so it waits until the end.
    with collector_paused():
        result, model = _load_with_model(config_dir, options)
        if key is not None and options.cache_dir is not None:
            desired_cache.write(
                options.cache_dir, key, model, result.desired, result.warnings, result.files
            )
    return result


def _cache_key(config_dir: Path, options: SpecOptions) -> str | None:
    try:
        files = config_files(config_dir, exclude=options.var_files)
    except OSError:
        return None
    environ = os.environ if options.environ is None else options.environ
    return desired_cache.inputs_key(
        config_dir,
        files,
        var_files=options.var_files,
        variables=options.variables,
        env_variables=environment_variables(environ),
        has_filters=bool(options.filters),
    )


def _sources(config_dir: Path, options: SpecOptions) -> Mapping[str, Location]:
    """The sources of a cached load, by loading again (only to report a problem)."""
    try:
        return _load(config_dir, options).desired.sources
    except (InvalidConfig, OSError):  # the files changed meanwhile: no locations then
        return {}


def _load(config_dir: Path, options: SpecOptions) -> LoadResult:
    return _load_with_model(config_dir, options)[0]


def _load_with_model(config_dir: Path, options: SpecOptions) -> tuple[LoadResult, bytes]:
    """The load's result, and its model's bytes (`model_bytes`)."""
    with collector_paused():  # see load_spec
        return _load_paused(config_dir, options)


def _load_paused(config_dir: Path, options: SpecOptions) -> tuple[LoadResult, bytes]:
    from ivmctl.spec import normalize
    from ivmctl.spec.problems import SourceMap

    run = _Run(config_dir=config_dir, options=options)
    documents = run.documents()
    merged = run.merge(documents)
    provider = normalize.build_provider(merged.provider)
    if options.early is not None and not run.told_early and not run.out.errors:
        options.early(provider, tuple(sorted(merged.hosts)))
    hosts, guests = run.build(merged)
    texts = run.texts
    warnings = sorted((texts.warning(p) for p in run.out.warnings), key=_sort_key)
    if run.out.errors:
        errors = sorted((texts.error(p) for p in run.out.errors), key=_sort_key)
        count = len(errors)
        raise InvalidConfig(
            f"the configuration has {count} problem{'s' if count != 1 else ''}",
            errors,
            warnings,
        )
    desired = DesiredState(
        provider=provider,
        hosts=hosts,
        guests=guests,
        sources=SourceMap(run.out.all_sources, texts),
    )
    model = model_bytes(desired)
    desired = replace(desired, digest=digest_of(model))
    return LoadResult(desired=desired, warnings=tuple(warnings), files=tuple(texts.texts)), model


def load_desired(
    config_dir: Path,
    *,
    variables: Mapping[str, str] | None = None,
    var_files: Sequence[Path] = (),
    environ: Mapping[str, str] | None = None,
    filters: Mapping[str, Callable[..., Any]] | None = None,
    cache_dir: Path | None = None,
    options: SpecOptions | None = None,
) -> DesiredState:
    """The desired state of a configuration directory (see `load_spec` for warnings).

    Keyword arguments build a SpecOptions; `options` may be given instead.
    """
    if options is None:
        options = SpecOptions(
            variables=dict(variables or {}),
            var_files=tuple(var_files),
            environ=environ,
            filters=dict(filters or {}),
            cache_dir=cache_dir,
        )
    return load_spec(config_dir, options).desired
