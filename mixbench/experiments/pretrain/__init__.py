"""mixbench's pretrained base: its corpus (sources.py, corpus.py), its recipe (recipe.py), the
shipped slice of its corpus (corpus_slice.py) and the run that builds it (run.py). The base
itself loads from mixbench.models.base_gpt."""
