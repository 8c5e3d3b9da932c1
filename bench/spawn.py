"""spawn.py - runs bench.py's measured commands from a process kept small.

Linux keeps in a child's ru_maxrss the peak RSS of the image the child was
forked from (exec saves the old image's high-water mark), so a child of
bench.py, which grows to hundreds of MB holding dumps and logs, would report
bench.py's size instead of its own. bench.py starts this script first
(python3 -I -S, nothing imported beyond what it needs: about 10 MB) and has it
spawn each measured command.

One JSON request per line on stdin: {"argv", "env", "log", "timeout"}; one
JSON result per line on stdout: {"rc", "wall_s", "user_s", "sys_s",
"maxrss_kib", "timed_out"} (os.wait4's rusage; wall time from spawn to exit)
or {"error"}. Past "timeout" seconds the command is killed (SIGKILL).
"""

import json
import os
import sys
import threading
import time


def run(req):
    acts = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2)]
    t0 = time.monotonic()
    try:
        pid = os.posix_spawn(req["argv"][0], req["argv"], req["env"], file_actions=acts)
    except OSError as e:
        return {"error": str(e)}
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def kill():
        with lock:
            if not state["done"]:  # never signal a pid already reaped
                state["fired"] = True
                os.kill(pid, 9)
    timer = threading.Timer(req["timeout"], kill) if req.get("timeout") else None
    if timer:
        timer.start()
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    with lock:
        state["done"] = True
    if timer:
        timer.cancel()
    return {"rc": os.waitstatus_to_exitcode(status), "wall_s": wall, "user_s": ru.ru_utime,
            "sys_s": ru.ru_stime, "maxrss_kib": ru.ru_maxrss, "timed_out": state["fired"]}


def main():
    for line in sys.stdin:
        sys.stdout.write(json.dumps(run(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
