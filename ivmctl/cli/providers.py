"""`ivmctl providers`: the installed providers and plugins, and where each comes from."""

from __future__ import annotations

import json

import click

from ivmctl.providers import manager


@click.command("providers")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def providers(as_json: bool) -> None:
    """List installed providers and plugins, and where they come from.

    \b
    Plugins are found in the `ivmctl` entry-point group; the emulator provider is
    built in. A misspelt hook or a provider name used twice is reported here first.

    \b
    Examples:
      ivmctl providers
      ivmctl providers --json
    """
    pm = manager.get_plugin_manager()
    found = manager.providers(pm)
    plugins = manager.plugin_origins(pm)
    if as_json:
        document = {
            "format_version": 1,
            "providers": [
                {"name": info.name, "plugin": info.plugin, "description": info.description}
                for info in found.values()
            ],
            "plugins": [
                {
                    "name": p.name,
                    "origin": p.origin,
                    "module": p.module,
                    "path": p.path,
                    "hooks": list(p.hooks),
                }
                for p in plugins
            ],
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo("Providers:")
    width = max((len(name) for name in found), default=0)
    for info in found.values():
        click.echo(f"  {info.name:<{width}}  {info.description}  (plugin {info.plugin})")
    click.echo("")
    click.echo("Plugins:")
    width = max((len(p.name) for p in plugins), default=0)
    for p in plugins:
        click.echo(f"  {p.name:<{width}}  {p.origin}  {p.module}")
        click.echo(f"  {'':<{width}}  hooks: {', '.join(p.hooks) or 'none'}")
        if p.path:
            click.echo(f"  {'':<{width}}  file: {p.path}")
