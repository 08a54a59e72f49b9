"""Templates: sandboxed Jinja2 with strict variables, from --var, --var-file and
IVMCTL_VAR_<name>; plain files are never rendered; plugins may add filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivmctl.spec import InvalidConfig, SpecOptions, load_spec
from ivmctl.spec import templates as templates_module

HOSTS = """apiVersion: ivmctl/v1
hosts:
{% for i in range(1, count|int + 1) %}
  vmhost{{ '%02d' % i }}: {version: "{{ version }}"}
{% endfor %}
"""


def options(**kw) -> SpecOptions:
    return SpecOptions(environ=kw.pop("environ", {}), **kw)


def test_a_loop_renders_one_object_per_iteration(write_config) -> None:
    config = write_config({"hosts.yaml.j2": HOSTS})
    result = load_spec(config, options(variables={"count": "3", "version": "6.2"}))
    assert sorted(result.desired.hosts) == ["vmhost01", "vmhost02", "vmhost03"]
    assert {h.version for h in result.desired.hosts.values()} == {"6.2"}


def test_var_on_the_command_line_wins_over_var_file_and_environment(write_config) -> None:
    config = write_config({"hosts.yaml.j2": HOSTS, "vars.yml.vars": "count: 2\nversion: '6.1'\n"})
    environ = {"IVMCTL_VAR_count": "1", "IVMCTL_VAR_version": "4.3"}
    by_env = load_spec(config, options(environ=environ))
    assert sorted(by_env.desired.hosts) == ["vmhost01"]
    by_file = load_spec(config, options(environ=environ, var_files=(Path("vars.yml.vars"),)))
    assert len(by_file.desired.hosts) == 2
    assert by_file.desired.hosts["vmhost01"].version == "6.1"
    by_var = load_spec(
        config,
        options(environ=environ, var_files=(Path("vars.yml.vars"),), variables={"count": "4"}),
    )
    assert len(by_var.desired.hosts) == 4


def test_variables_are_also_in_the_vars_mapping(write_config) -> None:
    config = write_config({"a.yaml": 'apiVersion: ivmctl/v1\nhosts: {"{{ vars.name }}": {}}\n'})
    assert list(load_spec(config, options(variables={"name": "h1"})).desired.hosts) == ["h1"]


def test_a_var_file_outside_the_configuration_directory_is_refused(
    write_config, tmp_path: Path
) -> None:
    outside = tmp_path.parent / "outside-vars.yaml"
    outside.write_text("count: 1\n", encoding="utf-8")
    config = write_config({"hosts.yaml.j2": HOSTS})
    with pytest.raises(InvalidConfig) as caught:
        load_spec(config, options(var_files=(outside,), variables={"version": "6.3"}))
    assert any("lies outside the configuration directory" in e.summary for e in caught.value.errors)


def test_a_var_file_that_is_not_a_mapping_is_refused(write_config) -> None:
    config = write_config({"hosts.yaml.j2": HOSTS, "v.vars": "- 1\n"})
    with pytest.raises(InvalidConfig) as caught:
        load_spec(config, options(var_files=(Path("v.vars"),)))
    assert "v.vars: a var file must be a mapping of names to values" in str(caught.value)


def test_plain_files_are_not_rendered(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config({"a.yaml": "apiVersion: ivmctl/v1\nhosts: {h: {}}\n"})

    def refuse(*_: object, **__: object) -> str:
        raise AssertionError("rendered a plain file")

    monkeypatch.setattr(templates_module.Renderer, "render", refuse)
    assert list(load_spec(config, options()).desired.hosts) == ["h"]


def test_template_syntax_in_a_plain_yaml_file_is_rendered_too(write_config) -> None:
    config = write_config({"a.yaml": "apiVersion: ivmctl/v1\nhosts: {h{{ n }}: {}}\n"})
    assert list(load_spec(config, options(variables={"n": "7"})).desired.hosts) == ["h7"]


def test_plugin_filters_are_available_to_templates(write_config) -> None:
    config = write_config(
        {"a.yaml.j2": "apiVersion: ivmctl/v1\nhosts: {{ '{' }}{{ 'x' | shout }}: {}}\n"}
    )
    result = load_spec(config, options(filters={"shout": lambda s: s.upper() + "1"}))
    assert list(result.desired.hosts) == ["X1"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "template tries to reach Python internals"),
        ("{{ cycler.__init__.__globals__ }}", "template tries to reach Python internals"),
        ("{{ range(10**9) | list }}", "template error: OverflowError"),
        ("{{ undefined_thing }}", "undefined template variable: 'undefined_thing' is undefined"),
        ("{{ 1 / 0 }}", "template error: ZeroDivisionError: division by zero"),
    ],
)
def test_template_problems_name_the_file_and_line(
    write_config, template: str, message: str
) -> None:
    config = write_config({"a.yaml.j2": f"apiVersion: ivmctl/v1\n# line 2\nx: {template}\n"})
    with pytest.raises(InvalidConfig) as caught:
        load_spec(config, options())
    (error,) = caught.value.errors
    assert str(error.location) == "a.yaml.j2:3:1"
    assert error.summary.startswith(message)
    assert type(error).__name__ == "TemplateError"


def test_invalid_variable_names_are_refused(write_config) -> None:
    config = write_config({"a.yaml.j2": "apiVersion: ivmctl/v1\n{# x #}\n"})
    with pytest.raises(InvalidConfig, match="variable name '1x'"):
        load_spec(config, options(variables={"1x": "y"}))


def test_environment_variables_are_read_by_prefix() -> None:
    env = {"IVMCTL_VAR_env": "prod", "IVMCTL_VAR_": "ignored", "OTHER": "x"}
    assert templates_module.environment_variables(env) == {"env": "prod"}


def test_var_files_in_the_directory_are_not_read_as_configuration(write_config) -> None:
    config = write_config(
        {
            "hosts.yaml.j2": HOSTS,
            "prod.vars.yaml": "count: 1\nversion: '6.3'\n",
            "other.yaml": "apiVersion: ivmctl/v1\n",
        }
    )
    by_suffix = load_spec(config, options(var_files=(Path("prod.vars.yaml"),)))
    assert list(by_suffix.desired.hosts) == ["vmhost01"]
    assert "prod.vars.yaml" not in by_suffix.files


def test_a_var_file_named_like_configuration_is_not_merged(write_config) -> None:
    config = write_config({"hosts.yaml.j2": HOSTS, "vars.yaml": "count: 1\nversion: '6.3'\n"})
    result = load_spec(config, options(var_files=(Path("vars.yaml"),)))
    assert result.files == ("hosts.yaml.j2",)


def test_a_missing_var_file_is_reported(write_config) -> None:
    config = write_config({"hosts.yaml.j2": HOSTS})
    with pytest.raises(InvalidConfig) as caught:
        load_spec(config, options(var_files=(Path("nope.vars.yaml"),)))
    assert "nope.vars.yaml: cannot read var file: No such file or directory" in str(caught.value)


@pytest.mark.parametrize(
    ("output", "origin"),
    [
        ("    nics: [{vswitch: vswprd}]", 4),
        ("  web7:", 2),
        ("    host: vmhost01", None),  # written by two template lines: no guess
        ("apiVersion: ivmctl/v1", 1),
        ("something else", None),
    ],
)
def test_an_output_line_maps_back_to_the_one_template_line_that_can_write_it(
    output: str, origin: int | None
) -> None:
    from ivmctl.spec.problems import template_origin

    source = [
        "apiVersion: ivmctl/v1",
        "  web{{ i }}:",
        "    host: vmhost01",
        "    nics: [{vswitch: {{ name }}}]",
        "{% for x in y %}",
        "    host: vmhost01",
    ]
    assert template_origin(source, output) == origin
