"""The embedded world: street-view images rendered over a real OpenStreetMap city, with captions.

No street-view photos or pretrained weights can be downloaded here, yet every stage must run and be
measured; the renderer turns an OSM extract into a dataset with the on-disk format of
Pittsburgh-250k / SF-XL (CosPlace `@` names, `images/{train,val,test}/{database,queries}`), built
into a manifest by the same code path as real data. See `render_world`.
"""

from addressclip.world.params import WORLD_PRESETS, RenderParams
from addressclip.world.render import RenderResult, render_world

__all__ = ["WORLD_PRESETS", "RenderParams", "RenderResult", "render_world"]
