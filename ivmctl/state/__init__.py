"""What ivmctl owns: the state file and its lock.

The state is small: the addresses ivmctl created or adopted (with what it must
remember about them, such as `prevent_destroy`), a serial bumped on every write and
a lineage that identifies one state across its life. It lives in a local file under
`.ivmctl/` written atomically (temporary file, fsync, rename), so a killed process
leaves either the old or the new state, never half of one. An apply records each
change as one line appended to a journal beside it, folded into the file when the
apply ends (or by the next run, if it was killed). A lock file keeps two mutating
runs apart; a lock left by a dead process on this machine is detected.
"""

from ivmctl.state.backend import LocalBackend, LockInfo
from ivmctl.state.journal import Forget, Journal
from ivmctl.state.model import STATE_FORMAT_VERSION, RecordStatus, ResourceRecord, State

__all__ = [
    "STATE_FORMAT_VERSION",
    "Forget",
    "Journal",
    "LocalBackend",
    "LockInfo",
    "RecordStatus",
    "ResourceRecord",
    "State",
]
