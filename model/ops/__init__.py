"""The model's own ops: TensorFlow-style RoI crop-and-resize and fixed-size NMS.

Importing this package registers the ``mrcnn::pyramid_roi_align``, ``mrcnn::proposals``
and ``mrcnn::nms`` custom ops with torch.
"""

from model.ops.nms import nms, nms_indices
from model.ops.proposals import proposals
from model.ops.roi_align import crop_and_resize, pyramid_roi_align, roi_levels

__all__ = ["crop_and_resize", "nms", "nms_indices", "proposals", "pyramid_roi_align", "roi_levels"]
