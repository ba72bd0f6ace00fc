"""Shapes in and out of Sectra results: GeoJSON as QuPath writes it, and masks traced to polygons.

:mod:`.geojson` is pure Python; :mod:`.masks` needs OpenCV, shapely and numpy (the ``shapes``
extra) and says so when one is missing.
"""

from .geojson import GeometryWarning, from_geojson, input_from_geojson, to_geojson
from .masks import polygons_from_mask

__all__ = ["to_geojson", "from_geojson", "input_from_geojson", "polygons_from_mask", "GeometryWarning"]
