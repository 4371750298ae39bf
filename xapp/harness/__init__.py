"""What exercises the xApp from outside, above app: the demo, the benchmarks and the load generator
(simulated E2 nodes and a decision listener in a child process)."""


class HarnessError(Exception):
    """The demo or a benchmark cannot run as asked (bad argument, descriptor, model, or a helper process that failed)."""
