"""Classical and supervised baselines on the heads' frames (`xapp baselines`, read by `xapp report`)."""
