"""Bag of words over PCA-SIFT: ``bovw`` with dense SIFT descriptors projected on their principal axes."""
from __future__ import annotations

from ..core import register
from .bovw import BagOfWords


@register("extractor", "pca_sift")
class PCASIFTBagOfWords(BagOfWords):
    """Bag of words over PCA-SIFT: ``bovw`` with dense SIFT (null ``descriptor``: every 4 pixels, diameters
    8 and 16) projected on its 64 leading principal axes, pooled over a 1x1 + 2x2 pyramid."""

    _default_parts = {"descriptor": "sift"}

    def __init__(self, *, descriptor=None, projection="pca", n_components=64, whiten=False, whiten_eps=0.1,
                 n_words=1600, encoding="triangle", alpha=None, polarity_split=None, pooling="sum", pyramid=(1, 2),
                 normalize="none", n_samples=400_000, init="random", max_iter=50, batch_size=None, random_state=0):
        super().__init__(descriptor=descriptor, projection=projection, n_components=n_components, whiten=whiten,
                         whiten_eps=whiten_eps, n_words=n_words, encoding=encoding, alpha=alpha,
                         polarity_split=polarity_split, pooling=pooling, pyramid=pyramid, normalize=normalize,
                         n_samples=n_samples, init=init, max_iter=max_iter, batch_size=batch_size,
                         random_state=random_state)
