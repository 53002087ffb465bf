"""The bottom layer: what every other layer shares. The run contract's types, the axes as data (Trainers,
precisions, Lightning releases, the limits of a cell), input checks, and results on disk."""
