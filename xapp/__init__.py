"""Early-exit wireless foundation-model xApp for the O-RAN near-RT RIC."""

__version__ = "0.1.0"
