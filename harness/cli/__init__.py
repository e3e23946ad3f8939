"""The ``shakeout`` command line: init, doctor, validate, schema, faults, gate, merge, explore,
import-cassette.

Each subcommand is a thin call into the module that owns the feature; exit codes are the
feature's own (0 ok, 1 failed, 2 error or misuse).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

FRAMEWORKS = ("reference", "tool-loop", "pydantic-ai", "openai-agents", "langgraph")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shakeout",
        description="Chaos and evaluation harness for agentic workflows. The scenario suite "
        "itself runs under pytest (`pytest scenarios/ --chaos-report=report.json`); these "
        "commands validate scenario files and work with reports.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "init",
        help="write a starter adapter, a scenario, the pytest ini keys and a CI workflow into a "
        "folder; exit 0 written, 2 refused (a file exists) or misuse",
    )
    p.add_argument("folder", nargs="?", default=".", metavar="FOLDER", help="default: .")
    p.add_argument(
        "--framework",
        required=True,
        choices=FRAMEWORKS,
        help="the agent framework the starter adapter wraps",
    )

    p = sub.add_parser(
        "doctor",
        help="run one fault-free scenario and check the adapter against the contract; exit 0 "
        "all good, 1 problems listed, 2 cannot run",
    )
    p.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        help="the scenario file (default: the first one the chaos_scenarios globs find)",
    )
    p.add_argument("--agent", metavar="MOD:FN", help="adapter factory (default: chaos_agent)")
    p.add_argument("--seed", type=int, metavar="N", help="run seed (default: chaos_seed, else 0)")

    p = sub.add_parser("validate", help="check scenario files; exit 1 if any is invalid")
    p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")

    p = sub.add_parser("schema", help="print a JSON Schema (scenario file or report)")
    p.add_argument("which", choices=["scenario", "report"])

    p = sub.add_parser("faults", help="list the fault catalogue")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")

    p = sub.add_parser(
        "gate",
        help="apply the gate policy to a report; exit 0 pass, 1 fail, 2 error or refused "
        "(no items, fewer than planned, an interrupted or stale session)",
    )
    p.add_argument("report", metavar="REPORT")
    p.add_argument(
        "--policy",
        metavar="FILE",
        help="a TOML policy file (default: [tool.shakeout.gate] in ./pyproject.toml, else "
        "max_failures = 0, max_errors = 0)",
    )
    p.add_argument(
        "--session",
        metavar="ID",
        help="refuse the report unless the session that wrote it ran with "
        "--chaos-session-id=ID (tells this run's report from a stale one)",
    )

    p = sub.add_parser(
        "merge",
        help="merge shard reports into one; exit 0 written, 2 a shard is unusable, the shards "
        "do not make one session, or OUT cannot be written",
    )
    p.add_argument("reports", nargs="+", metavar="REPORT")
    p.add_argument("-o", "--output", required=True, metavar="OUT")

    p = sub.add_parser(
        "explore",
        help="search fault schedules with Hypothesis; write a failing one as a scenario; "
        "exit 0 nothing found, 1 found and written, 2 error",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="the scenario file to explore")
    p.add_argument(
        "--examples", type=int, default=100, metavar="N", help="schedules to try (default 100)"
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="Hypothesis seed (default: chaos_seed in ./pyproject.toml, else 0)",
    )
    p.add_argument(
        "--agent",
        metavar="MOD:FN",
        help="adapter factory (default: the scenario's 'agent', else chaos_agent in "
        "./pyproject.toml)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where to write the reproduction (default: the scenario file's directory)",
    )

    p = sub.add_parser(
        "import-cassette",
        help="turn a recorded vcrpy cassette into a scenario file; exit 0 written, 2 error",
    )
    p.add_argument("cassette", metavar="CASSETTE", help="the vcrpy cassette (YAML or .json)")
    p.add_argument("--name", required=True, help="the scenario name, e.g. refund_recorded")
    p.add_argument(
        "--input", metavar="JSON_FILE", help="a JSON file with the payload the session started"
    )
    p.add_argument("-o", "--output", metavar="OUT", help="the YAML file to write (default: print)")
    p.add_argument(
        "--model-base-url",
        metavar="URL",
        help="the model endpoint during recording (default: inferred from the requests)",
    )
    p.add_argument(
        "--tools-base-url",
        metavar="URL",
        help="where the tools were during recording (default: the one other host)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shakeout`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "init":
        from harness.cli.init import init_main

        return init_main(args.folder, framework=args.framework)
    if args.command == "doctor":
        from harness.cli.doctor import doctor_main

        return doctor_main(args.scenario, agent=args.agent, seed=args.seed)
    if args.command == "validate":
        from harness.scenario.loader import validate_main

        return validate_main(args.paths)
    if args.command == "schema":
        if args.which == "scenario":
            from harness.scenario.loader import scenario_schema

            schema = scenario_schema()
        else:
            from harness.report.model import report_schema

            schema = report_schema()
        sys.stdout.write(json.dumps(schema, indent=2) + "\n")
        return 0
    if args.command == "faults":
        from faults.catalogue import faults_main

        return faults_main(as_json=args.json)
    if args.command == "gate":
        from harness.report.gate import gate_main

        return gate_main(args.report, args.policy, expect_session=args.session)
    if args.command == "explore":
        from harness.cli.explored import explore_main

        return explore_main(
            args.scenario,
            examples=args.examples,
            seed=args.seed,
            agent=args.agent,
            out=args.out,
            argv=list(argv) if argv is not None else sys.argv[1:],
        )
    if args.command == "import-cassette":
        from harness.recording.cassette_import import import_cassette_main

        return import_cassette_main(
            args.cassette,
            name=args.name,
            input_file=args.input,
            out=args.output,
            model_base_url=args.model_base_url,
            tools_base_url=args.tools_base_url,
        )
    from harness.report.merge import merge_main

    return merge_main(args.reports, args.output)
