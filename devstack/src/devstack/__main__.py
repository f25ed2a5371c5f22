"""``devstack`` / ``python -m devstack``: ``up [--demo]`` runs the whole system locally."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: devstack up [--demo] [--exit] [--only-infra] | devstack fetch

  up             start Kafka, the store, the mail catcher, the sandbox and the three services; Ctrl-C stops
  up --demo      also connect the sample Chargebee site, wait for the import's email, then show a change
                 at the sandbox reaching the importer's API through sync
  fetch          download what the local stack needs (the Kafka jars, with Maven) and exit
"""


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command == "fetch":
        from devstack.kafka import fetch_kafka_libs

        print(f"Kafka jars in {fetch_kafka_libs()}")
        sys.exit(0)
    if command != "up":
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    from devstack.up import main_up

    sys.exit(main_up(rest))


if __name__ == "__main__":
    main()
