"""Serving path inside the xApp: micro-batcher and the shared-trunk early-exit engine."""
