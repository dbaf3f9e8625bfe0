"""Runtimes: sampler plans, the Philox RNG, the plan interpreter and backend adapters."""
