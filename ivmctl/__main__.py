"""`python -m ivmctl` runs the command line."""

from ivmctl.cli import console

console()
