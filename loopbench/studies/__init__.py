"""The studies, which plan runs and run them: the suite's matrix, the overhead probe, Lightning's history, the
pay curve. Each study's answer is a function in loopbench.analysis, so a report computes it the same way."""
