"""`streamlit run` with a Python audit hook that records every file the server opens for writing.

    python tests/e2e/audited_server.py AUDIT_LOG run app.py --server.port 8501 ...

Everything after AUDIT_LOG is handed to Streamlit's own command line (`streamlit.web.cli.main`), so the
server is the one `streamlit run` starts. The hook (PEP 578) sees every ``open`` / ``os.open`` from
Python code, including the anonymous ``O_TMPFILE`` files that `tempfile.TemporaryFile` creates and no
directory listing shows. Each write-open becomes one line ``<unix time>\\t<event>\\t<path>\\t<how>`` in
AUDIT_LOG, written with `os.write` on a descriptor opened before the hook (so logging cannot recurse).
Native code (TensorFlow's C++) is not seen by the hook; the tests also search the temp folder.
"""

from __future__ import annotations

import os
import sys
import time

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)


def _install(audit_log: str) -> None:
    descriptor = os.open(audit_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):  # an already-open descriptor
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if not writing:
                return
            how = "O_TMPFILE" if _O_TMPFILE and isinstance(flags, int) and flags & _O_TMPFILE == _O_TMPFILE else (
                mode if isinstance(mode, str) else f"flags={flags:#o}"
            )
        elif event in ("tempfile.mkstemp", "tempfile.mkdtemp", "shutil.copyfile", "os.rename"):
            path, how = args[0], event
        else:
            return
        line = f"{time.time():.3f}\t{event}\t{os.fsdecode(path)}\t{how}\n".encode(errors="replace")
        os.write(descriptor, line)

    sys.addaudithook(hook)


if __name__ == "__main__":
    _install(sys.argv[1])
    from streamlit.web.cli import main

    sys.argv = ["streamlit", *sys.argv[2:]]
    sys.exit(main())
