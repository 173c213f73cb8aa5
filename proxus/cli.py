"""The ``proxus`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from nodes.spec import Category
from proxus.catalog import Catalog, CatalogError
from proxus.compiler import CompileResult, validate_flow
from proxus.diagnostics import Diagnostic
from proxus.registry import EMPTY_REGISTRY, Registry

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _registry(path: str | None) -> Registry:
    if path is None:
        return EMPTY_REGISTRY
    return Registry.from_json(Path(path).read_bytes())


def _print_diagnostics(source: str, diagnostics: Sequence[Diagnostic]) -> None:
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    for d in diagnostics:
        print(d.render(), file=sys.stderr)
    if diagnostics:
        print(f"{source}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)


def cmd_catalog(args: argparse.Namespace, catalog: Catalog) -> int:
    if args.json:
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(catalog.describe()), indent=2) + b"\n")
        return EXIT_OK
    width = max(len(s.type_id) for s in catalog)
    current = None
    order = list(Category)
    for spec in sorted(catalog, key=lambda s: (order.index(s.category), s.type_id)):
        if spec.category != current:
            current = spec.category
            print(f"\n{current.value.upper()}")
        ports_in = ",".join(p.name for p in spec.inputs) or "-"
        ports_out = ",".join(f"{p.name}:{p.kind.value}" for p in spec.outputs) or "-"
        state = " stateful" if spec.stateful else ""
        print(f"  {spec.type_id:<{width}}  v{spec.version}  {spec.title:<24} in[{ports_in}] out[{ports_out}]{state}")
    return EXIT_OK


def _validate(args: argparse.Namespace, catalog: Catalog) -> CompileResult:
    return validate_flow(_read(args.flow), catalog, _registry(args.registry))[1]


def cmd_validate(args: argparse.Namespace, catalog: Catalog) -> int:
    result = _validate(args, catalog)
    _print_diagnostics(args.flow, result.diagnostics)
    if not result.ok:
        return EXIT_INVALID
    edges = ", ".join(sorted(result.plans)) or "none"
    print(f"{args.flow}: valid; compiles to {len(result.plans)} plan(s) (edges: {edges})")
    return EXIT_OK


def cmd_compile(args: argparse.Namespace, catalog: Catalog) -> int:
    result = _validate(args, catalog)
    _print_diagnostics(args.flow, result.diagnostics)
    if not result.ok:
        return EXIT_INVALID
    plans = result.plans
    if args.edge is not None:
        if args.edge not in plans:
            print(
                f"{args.flow}: no part of this flow runs on edge {args.edge!r} (edges: {', '.join(sorted(plans))})",
                file=sys.stderr,
            )
            return EXIT_INVALID
        plans = {args.edge: plans[args.edge]}
    if args.output is None:
        for plan in plans.values():
            sys.stdout.buffer.write(msgspec.json.format(plan.encode(), indent=2) + b"\n")
        return EXIT_OK
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for edge, plan in plans.items():
        target = out / f"{plan.flow_id}.{edge}.plan.json"
        target.write_bytes(plan.encode())
        print(f"{target}  {plan.hash}  {len(plan.steps)} steps")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="proxus", description="Proxus industrial IoT pipelines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("catalog", help="list the node types this installation knows")
    p.add_argument("--json", action="store_true", help="the full catalog with config JSON Schemas")
    p.set_defaults(handler=cmd_catalog)

    for name, handler, text in (
        ("validate", cmd_validate, "check a flow document and print every problem"),
        ("compile", cmd_compile, "compile a flow document into one plan per edge"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("flow", metavar="FLOW.json", help="flow document ('-' reads standard input)")
        p.add_argument("--registry", metavar="FILE", help="devices and edges as JSON (what the Hub knows)")
        if name == "compile":
            p.add_argument("--edge", metavar="ID", help="only the plan for this edge")
            p.add_argument("-o", "--output", metavar="DIR", help="write <flow>.<edge>.plan.json files here")
        p.set_defaults(handler=handler)

    # The CLI is the composition root: the only place in proxus/ that reaches into runtime/ and
    # backend/. Imports stay inside this function so `proxus catalog` loads neither.
    from backend.cli import add_cli as add_hub
    from runtime.edge import add_cli as add_edge
    from runtime.run import add_cli as add_run
    from runtime.simulate import modbus as modbus_sim
    from runtime.simulate import opcua as opcua_sim

    add_run(sub)
    add_edge(sub)
    simulate = sub.add_parser("simulate", help="run device simulators (Modbus TCP, OPC UA)")
    simulators = simulate.add_subparsers(dest="simulator", required=True, metavar="PROTOCOL")
    modbus_sim.add_cli(simulators)
    opcua_sim.add_cli(simulators)
    add_hub(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        catalog = Catalog.load()
    except CatalogError as exc:
        print(f"proxus: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.handler(args, catalog)
    except FileNotFoundError as exc:
        print(f"proxus: {exc.filename}: no such file", file=sys.stderr)
        return EXIT_USAGE
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        print(f"proxus: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
