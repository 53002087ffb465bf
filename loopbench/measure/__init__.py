"""Measuring inside a run: the step clock, memory, the environment, and callgrind's client requests."""
