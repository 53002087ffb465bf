"""Pure functions of saved results: rounds and their intervals, parity, the probe's and the studies' answers,
comparisons. Nothing here runs, launches or measures; the reports and the command line read it."""
