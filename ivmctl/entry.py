"""The `ivmctl` executable (and `python -m ivmctl`), apart from the command line's module:
what must happen before ivmctl imports click and itself happens here.

A command that may read the runtime starts a spare worker process first
(`ivmctl.runtime.spare`), so that it imports on the machine's other CPU while this
process imports and loads the configuration.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def console() -> NoReturn:
    from ivmctl.runtime import spare

    spare.start(sys.argv[1:])
    from ivmctl.cli import console as run

    run()
