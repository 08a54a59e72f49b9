#!/usr/bin/env bash
# The demo behind `make demo`: the bundled emulator at work, in a scratch directory.
set -euo pipefail
demo_dir="${IVMCTL_DEMO_DIR:-$(mktemp -d -t ivmctl-demo.XXXXXX)}"
export IVMCTL_EMULATOR="$demo_dir/emulator.db"
run() { printf '\n$ %s\n' "$*"; "$@"; }

echo "ivmctl demo: emulator world in $IVMCTL_EMULATOR"
run ivmctl emulator host add vmhost01 --cores 8 --memory 64G --nics lan0,lan1 --version 6.3
run ivmctl emulator exec vmhost01 -- hpvmnet -c -S vswprod -n 0
run ivmctl emulator exec vmhost01 -- hpvmnet -b -S vswprod
run ivmctl emulator exec vmhost01 -- hpvmdevmgmt -S 20G /ivm/web01/root.img
run ivmctl emulator exec vmhost01 -- hpvmcreate -P web01 -O hpux -c 2 -e 20 -r 4G \
    -a disk:avio_stor::file:/ivm/web01/root.img -a network:avio_lan::vswitch:vswprod
run ivmctl emulator exec vmhost01 -- hpvmstart -P web01
run ivmctl emulator exec vmhost01 -- hpvmstatus
run ivmctl emulator exec vmhost01 -- hpvmstatus -P web01 -d
run ivmctl emulator host list
