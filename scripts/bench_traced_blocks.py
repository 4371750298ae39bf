"""`xapp bench` with every trunk block traced by torch.jit.trace (fp32, CPU): the experiment behind the
README's note on p99 at 50 % load. A traced block runs its ops without taking the GIL per op, so if
Python's share of the event loop and engine were what held p99 up, this run would show it.
    python scripts/bench_traced_blocks.py --loads 25,50 --json /tmp/traced.json
(arguments are those of `xapp bench`)."""

import copy
import sys

import torch

import xapp.engine.runner as runner
from xapp.engine.precision import serving_trunk


def traced_trunk(encoder, precision):
    trunk = serving_trunk(encoder, precision)
    if precision != "fp32" or next(trunk.parameters()).device.type != "cpu":
        return trunk
    trunk = copy.deepcopy(trunk).eval()
    example = torch.randn(4, trunk.cfg.tokens(1, 1024) + 1, trunk.cfg.dim)
    with torch.no_grad():
        trunk.blocks = torch.nn.ModuleList(torch.jit.freeze(torch.jit.trace(b, example)) for b in trunk.blocks)
    return trunk


if __name__ == "__main__":  # the load generator's child process re-imports this module
    runner.serving_trunk = traced_trunk
    from xapp.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
