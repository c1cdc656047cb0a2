"""Built-in text embedders for regrouping, registered through the `mixbench.embedders` entry points."""
