"""tfidf: TF-IDF over stemmed words, reduced by truncated SVD (LSA) — fast and light.

Tokenised with nltk's regular-expression word tokenizer and Porter stemmer, neither of which
needs downloaded nltk data. Rows are L2-normalised after the SVD so k-means' Euclidean distance
behaves like cosine distance, as it does for normalised sentence embeddings.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mixbench.embedder import Embedder
from mixbench.errors import MixbenchError


class _StemmingTokenizer:
    """Picklable callable: lowercase word tokens (letters, digits, underscore), Porter-stemmed."""

    def __init__(self):
        from nltk.stem.porter import PorterStemmer
        from nltk.tokenize import RegexpTokenizer

        self._words = RegexpTokenizer(r"\w+")
        # Stemming dominates the cost and words repeat endlessly: memoise per word.
        self._stem = functools.lru_cache(maxsize=200_000)(PorterStemmer().stem)

    def __call__(self, text: str) -> list[str]:
        return [self._stem(w) for w in self._words.tokenize(text.lower())]

    def __getstate__(self):  # the memo is a cache, not state
        return {}

    def __setstate__(self, state):
        self.__init__()


@dataclass(kw_only=True, eq=False)
class Tfidf(Embedder):
    """TF-IDF of stemmed words + truncated SVD (LSA); fitted on the training texts."""

    dim: int = 128
    max_features: int = 50000
    seed: int = 0

    def identity(self) -> str:
        return f"tfidf-porter-svd{self.dim}-f{self.max_features}-s{self.seed}"

    def fit(self, texts: list[str]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer_ = TfidfVectorizer(tokenizer=_StemmingTokenizer(), token_pattern=None, lowercase=False,
                                           sublinear_tf=True, min_df=2 if len(texts) >= 50 else 1,
                                           max_features=self.max_features)
        try:
            matrix = self.vectorizer_.fit_transform(texts)
        except ValueError as exc:  # e.g. no text has a word in it
            raise MixbenchError(f"tfidf: cannot build a vocabulary ({exc})") from None
        dim = max(1, min(self.dim, matrix.shape[1] - 1, matrix.shape[0] - 1))
        self.svd_ = TruncatedSVD(n_components=dim, random_state=self.seed).fit(matrix)

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if getattr(self, "svd_", None) is None:
            raise RuntimeError("Tfidf.fit(train_texts) must run before embed()")
        vectors = self.svd_.transform(self.vectorizer_.transform(texts))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
