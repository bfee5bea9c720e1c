"""Everything that trains: the one set-up (setup.py), resolving 'auto' once (training/resolve.py), the loop
(loop.py), what a run writes as it starts and ends, optimizers, warm starts and the lr finder."""
