"""Decisions out of the xApp: ZMQ PUB for control loops, Redis for the RIC's shared data layer."""
