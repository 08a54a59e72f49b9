"""Reading the JSON files ivmctl writes (saved plans, the state): JSON only.

Python's `json` reader also takes `NaN`, `Infinity` and `-Infinity`, which no JSON writer
(ours included) produces; a float infinity where a count belongs then makes `int()` raise
OverflowError, past the reader's own error handling. Found by the plan-file fuzz test.
The one home of that rule for every layer (standard library only).
"""

from __future__ import annotations

import json
from typing import Any


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads(text: str) -> Any:
    """`json.loads`, refusing NaN and the infinities (a ValueError, like any bad JSON)."""
    return json.loads(text, parse_constant=_refuse)
