"""Files on disk: the one atomic writer every output goes through, and the cache folder."""
