"""Fault campaign: wire-level fault injection in front of E2 nodes, and `xapp chaos`."""
