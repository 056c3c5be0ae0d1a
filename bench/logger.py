"""The benchmark's migration task: one log line every 100 ms for T seconds.

    python3 logger.py T

Each line is ``bench-log seq=<n> t=<epoch seconds when written>``, n from 1, so
a reader of the task's output can tell the latency of every line and which
lines it lost or saw twice. Lines go to stdout unbuffered, on a fixed
schedule (start + n x 0.1 s, no drift); exit code 0.
"""

import sys
import time

INTERVAL = 0.1


def main() -> int:
    seconds = float(sys.argv[1])
    count = round(seconds / INTERVAL)
    start = time.time()
    for n in range(1, count + 1):
        due = start + n * INTERVAL
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        sys.stdout.write(f"bench-log seq={n} t={time.time():.6f}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
