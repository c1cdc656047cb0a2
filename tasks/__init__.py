"""Built-in task adapters, one per file, registered through the `mixbench.tasks` entry points."""
