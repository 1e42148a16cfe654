"""PID 1 inside a docker sandbox: runs the job as its child, reaps orphans, mirrors the exit status.

Keeping the job off PID 1 matters: the kernel does not deliver default-action signals such as SIGXCPU
(the CPU-time limit) to a namespace's init. When this process exits the container, and every process
the job left behind, goes away. Stdlib only; runs under any python in the image.
"""

import os
import signal
import sys


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: launcher.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"launcher: cannot run {argv[0]!r}: {exc}", file=sys.stderr)
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            done, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if done == pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
