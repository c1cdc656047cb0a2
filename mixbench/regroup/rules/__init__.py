"""The built-in k rules, one per file, registered through the `mixbench.k_rules` entry points as
a plugin's would be (the contract: mixbench.k_rule).

    silhouette.py         the paper's: the k of the highest mean silhouette (Rousseeuw 1987)
    first_peak.py         the first local maximum of the silhouette over k
    kneedle.py            the knee of the inertia curve (Satopää et al. 2011)
    davies_bouldin.py     the lowest Davies-Bouldin index (Davies & Bouldin 1979)
    calinski_harabasz.py  the highest Calinski-Harabasz index (Caliński & Harabasz 1974)
    gap.py                the gap statistic's smallest k within one standard error (Tibshirani et al. 2001)

They live with Regroup rather than at the top of the repository: a rule reads a sweep of Regroup's
own k-means fits and uses nothing else, and a rule from another package plugs in all the same.
"""
