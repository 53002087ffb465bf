"""The verbs of the command line, grouped by what each acts on: cells.py (run, parity, suite: task cells, with
matrix.py reading a matrix from the options), probe.py (overhead, history, paycurve: the overhead probe and
its studies) and results.py (report, compare: saved results). Bad input is refused by loopbench.core.checks.
"""
