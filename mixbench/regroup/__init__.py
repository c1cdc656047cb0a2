"""Regroup (R&B, paper Alg. 2): embed, cluster over a range of k, keep the best silhouette.

    regrouping.py  regroup() and apply(): the clustering of a task and the relabelled data
    clustering.py  k-means per k, silhouette, nearest-centroid assignment
    embeddings.py  embeddings of a task's texts, cached on disk
    describe.py    what each cluster holds, in words
    spec.py        --domains original | regroup[:K]: how a run's domains are made
"""

from mixbench.regroup.regrouping import Regrouping, apply, cluster_name, example_text, regroup
from mixbench.regroup.spec import DomainSpec

__all__ = ["DomainSpec", "Regrouping", "apply", "cluster_name", "example_text", "regroup"]
