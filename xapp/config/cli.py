"""`xapp descriptor validate|export-osc`: check a descriptor the way the running xApp will, and
export it for the O-RAN SC onboarder."""

from __future__ import annotations

import argparse

from xapp.cli_error import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("descriptor", help="validate or export an xApp descriptor")
    commands = parser.add_subparsers(dest="descriptor_command", required=True, metavar="ACTION")

    validate = commands.add_parser("validate", help="report every problem in descriptors (exit 2 if any)")
    validate.add_argument("files", nargs="+", metavar="FILE", help="descriptor YAML or O-RAN SC config-file.json")
    validate.set_defaults(handler=validate_command)

    export = commands.add_parser("export-osc", help="write O-RAN SC config-file.json and schema.json")
    export.add_argument("file", metavar="FILE")
    export.add_argument("--out", required=True, metavar="DIR")
    export.add_argument("--registry", default="docker.io", help="image registry (default: %(default)s)")
    export.add_argument("--image", help="image name (default: the xApp name)")
    export.add_argument("--tag", help="image tag (default: the xApp version)")
    export.set_defaults(handler=export_command)


def validate_command(args: argparse.Namespace) -> int:
    from xapp.config import DescriptorError, load_descriptor

    failures = []
    for path in args.files:
        try:
            d = load_descriptor(path)
        except DescriptorError as exc:
            failures.append(str(exc))
            continue
        exits = ", ".join(f"{name}@{t.exit}/{t.policy.kind}" for name, t in d.enabled_tasks.items())
        trunk = f"trunk {d.encoder.runtime}/{d.encoder.precision}"
        if "auto" in (d.encoder.runtime, d.encoder.precision):
            trunk += f" measured at start-up (min_agreement {d.encoder.min_agreement:g})"
        print(f"OK {path}: {d.xapp.name} {d.xapp.version}, {len(d.e2.nodes)} E2 node(s), encoder depth {d.encoder.depth}"
              f", {trunk}, tasks {exits}")
    if failures:
        raise CliError("\n".join(failures))
    return 0


def export_command(args: argparse.Namespace) -> int:
    from xapp.config.types import DescriptorError
    from xapp.config.osc import export_osc

    try:
        paths = export_osc(args.file, args.out, registry=args.registry, image=args.image, tag=args.tag)
    except DescriptorError as exc:
        raise CliError(str(exc)) from exc
    for path in paths:
        print(f"wrote {path}")
    return 0
