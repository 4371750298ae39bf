"""E2 over gRPC: protos' generated code (gen/), E2SM-IQ frame encoding and validation (frames),
the subscriber client (client), simulated E2 nodes (sim) and `xapp e2sim` (cli)."""

import os

# gRPC core logs every GOAWAY at INFO on stderr, which buries the xApp's own logs when nodes restart.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
