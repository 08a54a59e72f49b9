#!/usr/bin/env bash
# The demo behind `make demo`: examples/quickstart planned and applied on the bundled
# emulator, in a scratch copy, then an online change, a restart and the status view.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
demo_dir="${IVMCTL_DEMO_DIR:-$(mktemp -d -t ivmctl-demo.XXXXXX)}"
config="$demo_dir/quickstart"
rm -rf "$config"
cp -r "$here/examples/quickstart" "$config"
rm -rf "$config/.ivmctl"
unset IVMCTL_EMULATOR
run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "ivmctl demo: a copy of examples/quickstart in $config"
cd "$config"
run ivmctl validate
run ivmctl plan
run ivmctl apply --auto-approve
run ivmctl status
run ivmctl plan --detailed-exitcode

echo
echo "# Raise web02's entitlement (online) and give it a second vCPU (needs a restart):"
sed -i 's/entitlement: {min: 20%, max: 60%}/vcpus: 2\n    entitlement: {min: 30%, max: 60%}/' ivmctl.yaml
run ivmctl plan
run ivmctl plan --commands
run ivmctl apply --auto-approve
run ivmctl emulator exec vmhost01 -- hpvmstatus
run ivmctl status
echo
echo "Done. The configuration and the emulator's world are in $config."
