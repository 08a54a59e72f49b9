"""ivmctl: declarative infrastructure-as-code for HP Integrity Virtual Machines."""

__version__ = "0.1.0"
