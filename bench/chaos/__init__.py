"""The chaos suite: real processes, injected faults, one table of figures, invariants (`make chaos`)."""
