"""Data-driven local features: descriptors (with their own registry), ZCA whitening and PCA, k-means and
GMM vocabularies, encodings and spatial pooling. The extractors ``bovw``, ``pca_sift`` and ``fisher``
are built from these parts."""
from .base import Descriptor, LocalFeatures, create_descriptor, list_descriptors
from .encodings import VLAD, Fisher, HardAssignment, SoftThreshold, Triangle, soft_threshold, triangle
from .gmm import fit_gmm, gmm_posteriors
from .kmeans import assign, kmeans
from .patches import Patches
from .pooling import encode_images
from .projections import fit_pca, fit_projection, fit_zca, project
from .sift import SIFT

__all__ = ["Descriptor", "Fisher", "HardAssignment", "LocalFeatures", "Patches", "SIFT", "SoftThreshold", "Triangle",
           "VLAD", "assign", "create_descriptor", "encode_images", "fit_gmm", "fit_pca", "fit_projection", "fit_zca",
           "gmm_posteriors", "kmeans", "list_descriptors", "project", "soft_threshold", "triangle"]
