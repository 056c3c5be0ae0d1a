"""ferry's AWS emulator: moto's server with real PostgreSQL, real ECS task
processes and an App Runner endpoint in front. See README.md.

    python server.py --port 0 --pg-url postgres://postgres@127.0.0.1:5432/postgres

Prints ``READY http://127.0.0.1:<port>`` once it serves; runs until SIGTERM or
SIGINT (or, with --exit-on-stdin-eof, until its stdin closes), then stops the
task processes it started and drops every database it created.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import struct
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (default)")
    p.add_argument("--pg-url", required=True, help="PostgreSQL server for the clusters' databases (a superuser)")
    p.add_argument("--delay-scale", type=float, default=1.0, help="multiply every default timing (default 1.0)")
    p.add_argument(
        "--task-cwd",
        default=None,
        help="working directory of ECS task and App Runner StartCommand processes (default: cwd)",
    )
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.add_argument(
        "--lax",
        action="store_true",
        help="no request validation against the service models and no rule catalogue "
        "(what moto alone accepts; also FERRY_EMULATOR_LAX=1)",
    )
    p.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="also shut down when stdin closes (parent went away)"
    )
    p.add_argument(
        "--no-reap", action="store_true", help="do not drop emu_ databases left by dead emulators on this host"
    )
    args = p.parse_args(argv)
    if args.delay_scale < 0:
        p.error("--delay-scale must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    import cwlogs
    import moto_fixes
    import rds_pg
    from apprunner import AppRunner
    from dispatch import Dispatcher
    from ecs_runner import EcsRunner
    from pg import PgServer
    from settings import Settings

    pg = PgServer(args.pg_url)
    try:
        pg.check()
    except Exception as e:  # noqa: BLE001 - say why and stop
        print(f"emulator: cannot reach PostgreSQL at {args.pg_url}: {e}", file=sys.stderr)
        return 2
    if not args.no_reap:
        stale = pg.reap_stale()
        if stale:
            print(f"emulator: dropped {len(stale)} database(s) left by dead emulators", file=sys.stderr)

    from strict import lax_from_environment

    settings = Settings(args.delay_scale, lax=args.lax or lax_from_environment())
    moto_fixes.apply()
    cwlogs.install(settings)
    rds_pg.install(settings, pg)
    task_cwd = os.path.abspath(args.task_cwd or os.getcwd())
    ecs = EcsRunner(settings, pg, task_cwd)
    apprunner = AppRunner(settings, pg, task_cwd)
    app = Dispatcher(DomainDispatcherApplication(create_backend_app), settings, ecs, apprunner)

    verbose = args.verbose

    class Handler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if verbose:
                super().log_request(code, size)

        def run_wsgi(self) -> None:
            super().run_wsgi()
            if getattr(self, "environ", {}).get("emulator.reset"):
                # s3_fault = "reset": no answer was written; end the connection with a
                # TCP reset (SO_LINGER 0) instead of waiting for another request on it.
                self.close_connection = True

        def finish(self) -> None:
            super().finish()
            if getattr(self, "environ", {}).get("emulator.reset"):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=Handler)
    serving = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    serving.start()

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.exit_on_stdin_eof:

        def watch_stdin() -> None:
            # os.read, not sys.stdin: a daemon thread blocked inside a buffered
            # reader aborts the interpreter at exit.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            stop.set()

        threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()

    print(f"READY http://127.0.0.1:{server.server_port}", flush=True)
    while not stop.wait(0.5):
        pass

    print("emulator: shutting down", file=sys.stderr)
    server.shutdown()
    apprunner.shutdown()
    ecs.shutdown()
    dropped = pg.drop_all()
    print(f"emulator: dropped {len(dropped)} database(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
