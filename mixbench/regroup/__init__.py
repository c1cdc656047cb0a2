"""Regroup (R&B, paper Alg. 2): embed, cluster over a range of k, let a k rule pick k.

    regrouping.py  regroup() and apply(): the clustering of a task and the relabelled data;
                   regroup_vectors(): the same from embeddings (arrays or memory maps, any size)
    clustering.py  k-means per k, the rules' measures on a scoring sample, chunked assignment
    duplicates.py  near-duplicate texts collapsed before clustering (--collapse-duplicates)
    rules/         the built-in k rules (silhouette, first-peak, kneedle, davies-bouldin,
                   calinski-harabasz, gap), registered by entry point (mixbench.k_rule)
    embeddings.py  embeddings of a task's texts, streamed to memory-mapped files in the cache
    describe.py    what each cluster holds, in words
    stages.py      the long stages' line before (what, how much, about how long, cached where), bar and seconds
    why_k.py       why the k rule chose its k, in a few lines (the rule, the range, the curve's best, notes)
    spec.py        --domains original | regroup[:K], and KChoice: --k-rule and its options
"""

from mixbench.regroup.regrouping import Regrouping, apply, cluster_name, example_text, regroup, regroup_vectors
from mixbench.regroup.spec import DomainSpec, KChoice

__all__ = ["DomainSpec", "KChoice", "Regrouping", "apply", "cluster_name", "example_text", "regroup",
           "regroup_vectors"]
