"""PID 1 inside a docker sandbox: runs the job as its child, reaps orphans, mirrors the exit status.

Keeping the job off PID 1 matters: the kernel does not deliver default-action signals such as SIGXCPU
(the CPU-time limit) to a namespace's init. When this process exits the container, and every process
the job left behind, goes away. Stdlib only; runs under any python in the image.
"""

import os
import signal
import sys


WALL_EXIT = 124  # exit status when the launcher's own wall-clock deadline fired


def main(argv: list[str]) -> int:
    wall = 0.0
    if argv[:1] == ["--wall"]:  # a deadline that holds even if no orchestrator is watching any more
        wall, argv = float(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: launcher.py [--wall SECONDS] [--] COMMAND [ARGS...]", file=sys.stderr)
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

    def deadline(_s, _f) -> None:
        print(f"launcher: wall-clock limit of {wall:g} s reached", file=sys.stderr, flush=True)
        os._exit(WALL_EXIT)  # PID 1 exits: the kernel kills everything else in the container

    if wall > 0:
        signal.signal(signal.SIGALRM, deadline)
        signal.setitimer(signal.ITIMER_REAL, wall)
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
