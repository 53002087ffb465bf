"""Starting runs: a fresh process per cell (isolate), forked from a server that has done the imports
(forked), or N processes started as torchrun starts them (distributed)."""
