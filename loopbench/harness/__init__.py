"""The contract between the harness and a task's two loops (`Run`), and what it adds to a Lightning run."""
