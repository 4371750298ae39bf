"""E2 over gRPC, speaking the ONOS E2T API: protos' generated code (gen/), the E2T messages
(messages) with the E2SM-IQ service model in their bytes (e2sm_iq), frame validation (frames), the
subscriber client (client), simulated E2 nodes (sim) and `xapp e2sim` (cli)."""

import os

# gRPC core logs every GOAWAY at INFO on stderr, which buries the xApp's own logs when nodes restart.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
