"""`python -m ivmctl` runs the command line."""

from ivmctl.entry import console

console()
