"""What a CNN learns, for any antlers run or torchvision CNN.

* ``kernels.py``: the first layer's kernels as a grid of tiles (RGB in colour), and their
  evolution over training (the engine saves them every epoch, ``engine/monitor.py``).
* ``feature_maps.py``: one image's maps at every conv and pool layer.
* ``topk.py``: the dataset images (and receptive-field patches) that excite each channel of a
  layer most, computed streaming over the whole dataset.
* ``gradcam.py``: Grad-CAM heat maps for the predicted or a chosen class.
* ``sliding.py``: the moose detector, a classifier made fully convolutional and slid over a
  larger image, proven equal to the explicit sliding window; ``classifier_parts.py`` takes the
  classifier apart, ``head_convs.py`` turns its head into convolutions.
* ``layers.py`` (forward hooks, layers by name, receptive fields), ``figures.py`` (the pictures),
  ``report.py`` (everything for one run into a folder: ``antlers explain`` / ``antlers slide``).
"""

from antlers.explain.feature_maps import feature_maps
from antlers.explain.gradcam import default_cam_layer, grad_cam
from antlers.explain.kernels import kernel_grid
from antlers.explain.layers import capture, layer_rf, spatial_layers
from antlers.explain.report import explain_model, slide_image
from antlers.explain.sliding import FullyConvolutional, fully_convolutional, sliding_window_logits
from antlers.explain.topk import TopK, crop_window, top_k_activations

__all__ = [
    "FullyConvolutional",
    "TopK",
    "capture",
    "crop_window",
    "default_cam_layer",
    "explain_model",
    "feature_maps",
    "fully_convolutional",
    "grad_cam",
    "kernel_grid",
    "layer_rf",
    "slide_image",
    "sliding_window_logits",
    "spatial_layers",
    "top_k_activations",
]
