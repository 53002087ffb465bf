"""Starting runs in processes: a fresh one per cell (isolate), forked from a server that has done the imports
(forked), N data-parallel ones (distributed), one under valgrind (valgrind); child and cell are what runs there."""
