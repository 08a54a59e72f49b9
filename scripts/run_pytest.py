"""Run pytest and refuse a run that executed no test.

pytest exits 5 when it collects nothing; a green CI over an empty selection would
hide a broken test layout, so that case is an error here, with its own message.
"""

import sys

import pytest

NO_TESTS_COLLECTED = 5


def main() -> int:
    code = int(pytest.main(sys.argv[1:]))
    if code == NO_TESTS_COLLECTED:
        print("run_pytest: no test ran; this is a failure, not a pass.", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
