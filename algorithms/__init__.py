"""Built-in mixing strategies, one per file, registered through the `mixbench.strategies` entry points."""
