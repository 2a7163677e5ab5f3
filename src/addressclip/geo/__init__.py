"""Street networks from OpenStreetMap, the semantic address partition and the GPS labeler."""
