"""Durable task execution: the step effects, the engine that runs one task, and the workers."""
