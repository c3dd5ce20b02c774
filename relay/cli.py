"""clever-relay: Clever's Events API v3 into Redis streams, and back to the legacy v2 topics.

The commands are listed in the README ("Commands").

Exit codes: 0 ok, 2 bad usage or bad config, 1 runtime failure. Errors are one line on stderr;
``--debug`` shows the traceback instead. Heavy modules are imported inside each command so that
``check-config`` stays instant and a broken optional part cannot break the others.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

import msgspec

from relay import __version__
from relay.config import Config, load_config, resolve_config_path
from relay.errors import ConfigError, RelayError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _config(args: argparse.Namespace) -> Config:
    path = resolve_config_path(args.config)
    if path is None:
        raise UsageError("--config PATH (or RELAY_CONFIG) is required")
    return load_config(path)


def _secret_problems(cfg: Config) -> list[str]:
    """Every secret ``run`` would resolve at start-up that it could not (one line each)."""
    checks: list[Callable[[], object]] = [d.resolve_token for d in cfg.clever.districts]
    if cfg.clever.discovery is not None:
        checks.append(cfg.clever.discovery.resolve_credentials)
    if "webhooks" in cfg.relay.components:
        checks += [endpoint.resolve_secrets for endpoint in cfg.webhooks.endpoints]
    if "http" in cfg.relay.components and cfg.http.console_enabled:
        checks.append(cfg.http.resolve_console_token)
    if "v2api" in cfg.relay.components:
        from relay.v2api.auth import Authenticator

        checks.append(lambda: Authenticator.from_config(cfg))
    problems: list[str] = []
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the config file and every secret the configured components need."""
    cfg = _config(args)
    problems = _secret_problems(cfg)
    if problems:
        raise ConfigError(problems)
    components = ", ".join(cfg.relay.components)
    print(f"config ok: {len(cfg.clever.districts)} district(s), components {components}")
    if args.connect:
        from relay.connect_check import connect_report

        problems, notes = asyncio.run(connect_report(cfg))
        for note in notes:
            print(note)
        if problems:
            raise ConfigError(problems)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run the configured components until SIGTERM/SIGINT."""
    from relay import logs
    from relay.service import run_service

    cfg = _config(args)
    logs.configure(level=cfg.log.level, fmt=cfg.log.format)
    return run_service(cfg)


def cmd_cursor(args: argparse.Namespace) -> int:
    """Show or set stored cursors."""
    from relay.poller.cursor_admin import set_cursor, show_cursors

    cfg = _config(args)
    if args.cursor_command == "show":
        for district, cursor in asyncio.run(show_cursors(cfg, args.district)):
            print(f"{district}\t{cursor or '-'}")
        return EXIT_OK
    previous = asyncio.run(set_cursor(cfg, args.district, args.event_id))
    print(f"{args.district}: cursor {previous or '-'} -> {args.event_id}")
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    """Fill the v2 read model from Clever's Data API (initial or repair sync)."""
    from relay import logs
    from relay.readmodel.sync import run_sync

    cfg = _config(args)
    logs.configure(level=cfg.log.level, fmt=cfg.log.format)
    if args.district is not None:  # a discovered district: its token comes from Clever's list
        from relay.poller.fleet.admin import discovered_as_static

        cfg = asyncio.run(discovered_as_static(cfg, args.district))
    code: int = asyncio.run(run_sync(cfg, args.district, progress=sys.stdout.isatty()))
    return code


def cmd_idmap(args: argparse.Namespace) -> int:
    """Export a district's ID crosswalk (v3 user id ↔ v2 ids) to stdout."""
    from relay.idmap_export import export

    cfg = _config(args)
    count = asyncio.run(
        export(cfg, args.district, fmt=args.format, out=sys.stdout, progress=sys.stderr.isatty())
    )
    print(f"{args.district}: {count} mapping(s) exported", file=sys.stderr)
    return EXIT_OK


def cmd_districts(args: argparse.Namespace) -> int:
    """Print every district with its source, phase, cursor, lag and onboarding progress."""
    from relay.poller.fleet.admin import COLUMNS, district_rows

    rows = asyncio.run(district_rows(_config(args)))
    print("\t".join(COLUMNS))
    for row in rows:
        print("\t".join(row))
    return EXIT_OK


def cmd_webhooks(args: argparse.Namespace) -> int:
    """List, replay or purge an endpoint's dead letters."""
    from relay.webhooks import admin

    cfg = _config(args)
    if args.webhooks_command == "list":
        for letter in asyncio.run(admin.list_dead_letters(cfg, args.endpoint)):
            print(letter.line())
        return EXIT_OK
    entries = args.entry or None
    if args.webhooks_command == "replay":
        count = asyncio.run(admin.replay(cfg, args.endpoint, entries))
        print(f"{args.endpoint}: {count} dead letter(s) queued for delivery again")
        return EXIT_OK
    count = asyncio.run(admin.purge(cfg, args.endpoint, entries))
    print(f"{args.endpoint}: {count} dead letter(s) deleted")
    return EXIT_OK


async def _deadletter(cfg: Config, args: argparse.Namespace) -> str:
    """Run one ``deadletter`` action on a fresh client; returns what to print."""
    from relay import deadletters
    from relay.redis.client import create_redis
    from relay.redis.keys import Keys

    redis = create_redis(cfg.redis)
    prefix = Keys(cfg.redis.prefix, cfg.redis.partitions)
    try:
        if args.deadletter_command == "list":
            letters = await deadletters.list_all(redis, prefix)
            return "".join(f"{letter.line()}\n" for letter in letters)
        entries = args.entry or None
        if args.deadletter_command == "replay":
            try:
                count = await deadletters.replay(redis, prefix, entries)
            except deadletters.PartialDeadLetterError as exc:
                raise UsageError(f"deadletter replay: {exc}") from exc
            return f"{count} dead letter(s) appended to the events stream again\n"
        if entries is None and not args.all:
            raise UsageError("deadletter purge: give entry ids, or --all to delete every one")
        count = await deadletters.purge(redis, prefix, entries)
        return f"{count} dead letter(s) deleted\n"
    finally:
        await redis.aclose()


def cmd_deadletter(args: argparse.Namespace) -> int:
    """List, replay or purge the relay's dead letters (``<prefix>:deadletter``)."""
    cfg = _config(args)
    sys.stdout.write(asyncio.run(_deadletter(cfg, args)))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of a message family."""
    from relay.messages import event_schema

    schemas = {"events": event_schema}
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(schemas[args.name]())).decode() + "\n")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve a Clever-compatible API."""
    from relay.simulator.cli import run

    code: int = run(args)
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    """Show the whole pipeline working on this machine."""
    from relay.demo import run

    code: int = run(args)
    return code


def _debug_flag() -> argparse.ArgumentParser:
    """``--debug`` for every subcommand too, so it works after the command as well as before.

    ``SUPPRESS`` keeps a subcommand that was not given the flag from resetting the top-level one.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    return parent


def build_parser(*, with_simulator: bool = True) -> argparse.ArgumentParser:
    """The argument parser with every subcommand.

    Args:
        with_simulator: add the simulator's own flags; ``main`` leaves them out unless the
            command is ``simulate``, so ``run`` does not import the simulator (start-up time
            and memory of every relay process).
    """
    parser = argparse.ArgumentParser(prog="clever-relay", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"clever-relay {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    debug = [_debug_flag()]

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_: str, *, config: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=debug)
        if config:
            p.add_argument("--config", help="TOML config file (default: $RELAY_CONFIG)")
        p.set_defaults(func=func)
        return p

    add("run", cmd_run, "run the configured components until SIGTERM/SIGINT")
    check = add(
        "check-config", cmd_check_config, "validate a config file; exit 2 listing every problem"
    )
    check.add_argument(
        "--connect",
        action="store_true",
        help="also check that Redis answers and that Clever accepts each district's token",
    )
    cursor = add("cursor", cmd_cursor, "show or set the stored per-district cursors")
    cursor_sub = cursor.add_subparsers(dest="cursor_command", required=True, metavar="ACTION")
    show = cursor_sub.add_parser("show", help="print each district's stored cursor", parents=debug)
    show.add_argument("--config", help="TOML config file (default: $RELAY_CONFIG)")
    show.add_argument("--district", help="only this district")
    set_ = cursor_sub.add_parser(
        "set", help="set a district's cursor (operator recovery)", parents=debug
    )
    set_.add_argument("--config", help="TOML config file (default: $RELAY_CONFIG)")
    set_.add_argument("--district", required=True)
    set_.add_argument("event_id", help="the Clever event id to resume after")
    sync = add("sync", cmd_sync, "initial or repair sync of the v2 read model from the Data API")
    sync.add_argument("--district", help="only this district")
    _add_idmap_and_districts(add, debug)
    webhooks = add("webhooks", cmd_webhooks, "inspect, re-send or drop webhook dead letters")
    webhooks_sub = webhooks.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    for action, help_ in (
        ("list", "print an endpoint's dead letters, oldest first"),
        ("replay", "queue an endpoint's dead letters for delivery again (re-enables it)"),
        ("purge", "delete an endpoint's dead letters"),
    ):
        p = webhooks_sub.add_parser(action, help=help_, description=help_, parents=debug)
        p.add_argument("--config", help="TOML config file (default: $RELAY_CONFIG)")
        p.add_argument("--endpoint", required=True, help="the endpoint's name")
        if action != "list":
            p.add_argument("entry", nargs="*", help="only these dead-letter entry ids")
    _add_deadletter(add, debug)
    schema = add("schema", cmd_schema, "print the JSON Schema of a message", config=False)
    schema.add_argument("name", choices=["events"])

    simulate = add("simulate", cmd_simulate, "serve a Clever-compatible API", config=False)
    if with_simulator:
        from relay.simulator.cli import add_arguments as add_simulator_arguments

        add_simulator_arguments(simulate)
    demo = add("demo", cmd_demo, "show the whole pipeline working on this machine", config=False)
    demo.add_argument("--duration", type=float, help="stop after S seconds and print a summary")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument(
        "--redis-url",
        help="use this Redis (or RELAY__REDIS__URL); default: 127.0.0.1:6379 when it answers, "
        "else a private one",
    )
    return parser


def _add_idmap_and_districts(
    add: Callable[..., argparse.ArgumentParser], debug: list[argparse.ArgumentParser]
) -> None:
    """``idmap export`` (the ID crosswalk) and ``districts list`` (the fleet)."""
    idmap = add("idmap", cmd_idmap, "the ID crosswalk (v3 user id <-> v2 ids)", config=False)
    idmap_sub = idmap.add_subparsers(dest="idmap_command", required=True, metavar="ACTION")
    export = idmap_sub.add_parser(
        "export", help="stream a district's mappings to stdout", parents=debug
    )
    export.add_argument("--config", help="TOML config file (default: $RELAY_CONFIG)")
    export.add_argument("--district", required=True)
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    districts = add("districts", cmd_districts, "list every district (static and discovered)")
    districts_sub = districts.add_subparsers(dest="districts_command", required=True)
    listing = districts_sub.add_parser(
        "list", help="source, phase, cursor, lag and onboarding of each district", parents=debug
    )
    listing.add_argument("--config", help="TOML config file (default: $RELAY_CONFIG)")


def _add_deadletter(
    add: Callable[..., argparse.ArgumentParser], debug: list[argparse.ArgumentParser]
) -> None:
    """``deadletter list|replay|purge``: the relay's own dead letters (translator, poller)."""
    deadletter = add(
        "deadletter", cmd_deadletter, "inspect, replay or drop the relay's dead letters"
    )
    sub = deadletter.add_subparsers(dest="deadletter_command", required=True, metavar="ACTION")
    for action, help_ in (
        ("list", "print the dead letters, oldest first"),
        ("replay", "append translator dead letters to the events stream again (all, or ENTRY...)"),
        ("purge", "delete dead letters (ENTRY..., or --all)"),
    ):
        p = sub.add_parser(action, help=help_, description=help_, parents=debug)
        p.add_argument("--config", help="TOML config file (default: $RELAY_CONFIG)")
        if action != "list":
            p.add_argument("entry", nargs="*", help="only these dead-letter entry ids")
        if action == "purge":
            p.add_argument("--all", action="store_true", help="delete every dead letter")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_simulator="simulate" in words)
    args = parser.parse_args(words)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"clever-relay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        # One clear line for anything else too (Redis down, a bug): the contract promises no
        # traceback unless --debug, and the message is scrubbed of secrets.
        if args.debug:
            raise
        from relay.logs import scrub

        known = isinstance(exc, (RelayError, OSError))
        message = scrub(str(exc)) if known else f"{type(exc).__name__}: {scrub(str(exc))}"
        print(f"clever-relay: {message}", file=sys.stderr)
        return EXIT_FAILURE
    return result
