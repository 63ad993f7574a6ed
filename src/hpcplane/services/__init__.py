"""Use cases: each takes the store, does one thing in one transaction, and returns plain values."""
