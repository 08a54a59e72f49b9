"""The desired-state language: YAML files (with Jinja2 templates) in, DesiredState out.

Public API::

    from ivmctl.spec import load_desired, load_spec, SpecOptions

    desired = load_desired(config_dir, variables={"env": "prod"}, var_files=(),
                           environ=os.environ, filters={}, cache_dir=None)
    result = load_spec(config_dir, SpecOptions(...))   # LoadResult(desired, warnings, files)

Both raise `InvalidConfig` (an `ErrorGroup` and a `SpecError`) listing every problem, each
an IvmctlError whose Location carries file, line, column, object address and field path;
`InvalidConfig.warnings` holds the warnings found meanwhile. `load_desired` returns only the
DesiredState; callers that show warnings (granule rounding) use `load_spec`.

`DesiredState.sources` maps "guest.web01", "host.vmhost01", "vswitch.vmhost01.vswprod" and
field keys such as "guest.web01:memory" or "guest.web01:nics[0].vswitch" to the Location
they were written at (computed on first lookup). `DesiredState.digest` is a stable
"sha256:..." hash of the normalised state.

Files: `*.yaml`, `*.yml`, `*.yaml.j2`, `*.yml.j2` of the directory, in name order (hidden
files and `*.vars.yaml` variable files excluded); the format and the merge, template and
normalisation rules are in docs/yaml-reference.md, generated from the JSON Schema.

Modules: yamlio (YAML 1.2 fast parser, guards, cache), yamlexact (the exact loader and
problem positions, PyYAML), templates (Jinja2 sandbox), schema
(JSON Schema and its messages), normalize (units, profiles, defaults), checks (semantic
rules), loader (the pipeline), desired_cache (the built state, reused while no input
changed), fmt (canonical formatting), reference (docs generator).
"""

from ivmctl.spec.loader import (
    InvalidConfig,
    LoadResult,
    SpecOptions,
    config_files,
    load_desired,
    load_spec,
)
from ivmctl.spec.problems import SpecWarning
from ivmctl.spec.yamlio import parse_yaml

__all__ = [
    "InvalidConfig",
    "LoadResult",
    "SpecOptions",
    "SpecWarning",
    "config_files",
    "load_desired",
    "load_spec",
    "parse_yaml",
]
