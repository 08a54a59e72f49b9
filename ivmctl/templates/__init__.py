"""What `ivmctl init` writes into a new configuration directory.

Kept as Python string constants (not data files) so they install with the package
without package-data entries. `CONFIG` validates, plans and applies on the bundled
emulator as written; a test holds it to that.
"""

from __future__ import annotations

CONFIG_FILE = "ivmctl.yaml"
GITIGNORE_FILE = ".gitignore"
SCHEMA_DIR = "schemas"

# `{schema}` is the path of the schema, relative to the configuration directory.
CONFIG = """\
# yaml-language-server: $schema={schema}
#
# An ivmctl configuration: the VM Hosts and guests you want, as data.
# Every *.yaml file of this directory is read and merged; split it as you like
# (hosts.yaml, web.yaml, ...). A name may be defined only once.
#
#   ivmctl validate     check this directory, every problem at once
#   ivmctl plan         what apply would change, and why (restarts, migrations)
#   ivmctl apply        carry the plan out (asks first)
apiVersion: ivmctl/v1

# Where the hosts are. The bundled emulator keeps a faithful model of Integrity VM
# Hosts in .ivmctl/emulator.db, so you can try everything on a laptop.
provider:
  name: emulator
  options: {{path: .ivmctl/emulator.db}}

hosts:
  vmhost01:
    version: "6.3"              # Integrity VM version; limits follow it
    hardware:                   # the emulator provisions it; a real provider checks it
      cores: 4
      memory: 32G
      nics: [lan0]
    vswitches:
      vswprod: {{nic: lan0}}      # a vswitch with an uplink; guests reach the LAN through it

# Filled in for every guest that does not say otherwise.
defaults:
  guests: {{os: hpux, start: auto}}

# Named bundles of settings a guest can pick with `profile:`.
profiles:
  small: {{vcpus: 1, entitlement: 10%, memory: 2G}}

guests:
  app01:
    host: vmhost01
    profile: small
    memory: 4G                  # overrides the profile; M/G are binary, as in hpvm*
    power: on                   # on | off: the run state you want
    label: first guest
    disks:
      - {{backing: file, path: /ivm/app01/root.img, size: 20G}}
    nics:
      - {{vswitch: vswprod}}
    lifecycle:
      restart: allow            # deny: a change that needs a restart is a plan error
      # ignore_changes: [label] # drift in these fields is reported, never corrected
"""

GITIGNORE = """\
# ivmctl state, locks and the emulator's world: local to this machine, never committed.
.ivmctl/
# Saved plans (ivmctl plan -out FILE) are made for one moment of one runtime.
*.plan
"""


def next_steps(directory: str) -> str:
    """What `ivmctl init` prints after writing the files."""
    cd = "" if directory in ("", ".") else f"  cd {directory}\n"
    return (
        "Next steps:\n"
        f"{cd}"
        "  ivmctl validate          # check the configuration\n"
        "  ivmctl plan              # see what would change, and why\n"
        "  ivmctl apply             # make it so (on the bundled emulator)\n"
        "Then edit ivmctl.yaml and plan again. Docs: docs/getting-started.md"
    )
