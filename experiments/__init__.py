"""One-off measurements that explain a finding of the suite; each says in its docstring what it asks."""
