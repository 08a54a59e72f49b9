#!/usr/bin/env bash
# `make emulator-tour`: the bundled emulator at work, driven by hand with hpvm* commands.
# Two VM Hosts, a vswitch, a guest created from the reference's examples, started,
# checked against the rules, migrated online, and the command log.
set -euo pipefail
demo_dir="${IVMCTL_DEMO_DIR:-$(mktemp -d -t ivmctl-demo.XXXXXX)}"
export IVMCTL_EMULATOR="$demo_dir/emulator.db"
run() { printf '\n$ %s\n' "$*"; "$@"; }
# a refusal the demo expects: show it, and fail the demo if the command succeeded
refused() { printf '\n$ %s   # refused on purpose\n' "$*"; if "$@"; then exit 1; fi; }

echo "ivmctl demo: emulator world in $IVMCTL_EMULATOR"
run ivmctl emulator host add vmhost01 --cores 8 --memory 64G --nics lan0,lan1 --version 6.3
run ivmctl emulator host add vmhost02 --cores 8 --memory 64G --nics lan0,lan1 --version 6.3
for host in vmhost01 vmhost02; do
    run ivmctl emulator exec "$host" -- hpvmnet -c -S vswprod -n 0
    run ivmctl emulator exec "$host" -- hpvmnet -b -S vswprod
done
run ivmctl emulator exec vmhost01 -- hpvmnet
run ivmctl emulator exec vmhost01 -- hpvmcreate -P web01 -O hpux -c 2 -e 20 -r 4G \
    -a disk:avio_stor::disk:/dev/rdisk/disk12 -a network:avio_lan::vswitch:vswprod
run ivmctl emulator exec vmhost01 -- hpvmstart -P web01
run ivmctl emulator exec vmhost01 -- hpvmstatus
run ivmctl emulator exec vmhost01 -- hpvmstatus -P web01 -d
refused ivmctl emulator exec vmhost01 -- hpvmmodify -P web01 -c 4
run ivmctl emulator exec vmhost01 -- hpvmmodify -P web01 -e 50
refused ivmctl emulator exec vmhost01 -- hpvmcreate -P big -c 16 -a disk:avio_stor::disk:/dev/rdisk/disk12
run ivmctl emulator exec vmhost01 -- hpvmstatus -M
run ivmctl emulator exec vmhost01 -- hpvmmigrate -o -P web01 -h vmhost02
run ivmctl emulator exec vmhost01 -- hpvmstatus
run ivmctl emulator exec vmhost02 -- hpvmstatus
run ivmctl emulator exec vmhost02 -- hpvmnet -S vswprod
run ivmctl emulator exec vmhost02 -- hpvmdevmgmt -l all
run ivmctl emulator exec vmhost02 -- hpvmstatus -s
run ivmctl emulator faults vmhost02 --fail-starts 1
run ivmctl emulator exec vmhost02 -- hpvmcreate -P batch01 -r 2G
refused ivmctl emulator exec vmhost02 -- hpvmstart -P batch01
run ivmctl emulator exec vmhost02 -- hpvmstart -P batch01
run ivmctl emulator host list
run ivmctl emulator log vmhost01
