"""``python -m devstack.mailcatcher``: the mail catcher as a process of its own, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from devstack.mailcatcher import MailCatcher, Stage
from devstack.net import LOCALHOST


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.mailcatcher", description=__doc__)
    parser.add_argument("--host", default=LOCALHOST)
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=1080)
    parser.add_argument(
        "--refuse-first", type=int, default=0, metavar="K", help="refuse the first K commands"
    )
    parser.add_argument("--refuse-stage", choices=[s.value for s in Stage], default=Stage.RCPT.value)
    parser.add_argument("--permanent", action="store_true", help="refuse with 550 instead of 451")
    args = parser.parse_args(argv)

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with MailCatcher(args.host, args.smtp_port, args.http_port) as catcher:
        if args.refuse_first:
            catcher.refuse(args.refuse_first, stage=args.refuse_stage, permanent=args.permanent)
        print(f"mail catcher: SMTP {args.host}:{catcher.smtp_port}, UI {catcher.http_url}", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
