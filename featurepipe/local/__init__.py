"""Data-driven local features: descriptors, encodings and poolings (registered stages), ZCA whitening and
PCA, k-means and GMM vocabularies, and spatial pooling. The extractors ``bovw``, ``pca_sift`` and
``fisher`` are built from these parts."""
from .base import Descriptor, LocalFeatures
from .color_stats import ColourStatistics
from .encodings import VLAD, Encoding, Fisher, HardAssignment, SoftThreshold, Triangle, soft_threshold, triangle
from .gmm import fit_gmm, gmm_posteriors
from .kmeans import assign, kmeans
from .patches import Patches
from .pooling import MaxPooling, Pooling, SumPooling, encode_images
from .projections import fit_pca, fit_projection, fit_zca, project
from .sift import SIFT

__all__ = ["ColourStatistics", "Descriptor", "Encoding", "Fisher", "HardAssignment", "LocalFeatures", "MaxPooling", "Patches", "Pooling",
           "SIFT", "SoftThreshold", "SumPooling", "Triangle", "VLAD", "assign", "encode_images", "fit_gmm", "fit_pca",
           "fit_projection", "fit_zca", "gmm_posteriors", "kmeans", "project", "soft_threshold", "triangle"]
