"""Request and response shapes of the REST service: what the OpenAPI document at /openapi.json shows.

The schema is the contract: every constraint the endpoints enforce (a non-empty image, top_k within
1..max_top_k, 1..max_batch_images images) is declared here, and tests/test_serve_fuzz.py drives the
service with requests generated from the document to keep the two in agreement.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, create_model


class Match(BaseModel):
    rank: int
    address_id: str
    address: str
    street_id: str | None
    street: str | None
    neighbourhood: str | None
    score: float = Field(description="cosine similarity of photo and address text, -1..1")
    probability: float = Field(description="softmax over all candidate addresses")
    seen_in_training: bool = Field(description="false for addresses the model never saw in training")
    lat: float | None = Field(description="estimated GPS point: the sub-street's midpoint")
    lon: float | None
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON geometry of the sub-street (lon/lat)")


class PredictionOut(BaseModel):
    source: str = Field(description="the uploaded file's name, or images[i]")
    top1_score: float
    out_of_city: bool | None = Field(
        description="the in-city score (in_city_score when given, else top1_score) below the calibrated "
        "threshold (null: uncalibrated)"
    )
    threshold: float | None
    in_city_score: float | None = Field(
        None, description="the flag's score when the calibration uses one other than top1_score"
    )
    matches: list[Match]


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


class PathStep(BaseModel):
    index: int = Field(description="the photo's position in the sequence (0-based)")
    source: str
    address_id: str = Field(description="the decoded (Viterbi) address of this photo")
    address: str
    street: str | None
    neighbourhood: str | None
    lat: float | None
    lon: float | None
    posterior: float = Field(description="the decoded address's posterior probability for this photo")
    photo_address_id: str = Field(description="the photo's own best address, scored alone")
    agrees_with_photo: bool


class PosteriorMatch(BaseModel):
    rank: int
    address_id: str
    address: str
    probability: float = Field(description="posterior given the whole sequence (forward-backward)")


class PathSegment(BaseModel):
    first: int = Field(description="first photo of this run of one sub-street")
    last: int
    address_id: str
    address: str
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON geometry of the sub-street (lon/lat)")


class SequenceOut(BaseModel):
    predictions: list[PredictionOut] = Field(description="each photo scored alone")
    path: list[PathStep]
    posteriors: list[list[PosteriorMatch]]
    segments: list[PathSegment] = Field(description="the decoded path as runs of one sub-street")
    log_likelihood: float
    path_log_prob: float
    gap_unit: str = Field(description="'photos', 'seconds' (timestamps) or 'metres' (positions)")


class AddressOut(BaseModel):
    address_id: str
    address: str
    street_id: str | None
    street: str | None
    neighbourhood: str | None
    seen_in_training: bool
    lat: float | None
    lon: float | None


class SearchOut(BaseModel):
    query: str
    total: int
    offset: int
    items: list[AddressOut]


class AddressFeature(BaseModel):
    type: str = "Feature"
    id: str
    geometry: dict[str, Any] | None
    properties: AddressOut


# ------------------------------------------------------------------------------- request bodies
B64_DESCRIPTION = "the image file, base64 (a data: URL is accepted)"


class ImageItem(BaseModel):
    image: str = Field(min_length=1, description=B64_DESCRIPTION)
    filename: str | None = Field(None, description="shown as the prediction's source")


def _top_k_field(max_top_k: int) -> Any:
    return (int | None, Field(None, ge=1, le=max_top_k, description="how many addresses to return"))


def predict_json_model(max_top_k: int) -> type[BaseModel]:
    """`POST /v1/predict` as JSON, with this server's top_k range."""
    image = (str, Field(min_length=1, description=B64_DESCRIPTION))
    return create_model("PredictJSON", image=image, top_k=_top_k_field(max_top_k))


def batch_json_model(max_images: int, max_top_k: int) -> type[BaseModel]:
    """`POST /v1/predict/batch` as JSON: 1..max_images base64 strings (or {image, filename} objects)."""
    base64_text = Annotated[str, Field(min_length=1)]
    images = (list[base64_text | ImageItem], Field(min_length=1, max_length=max_images))
    return create_model("BatchJSON", images=images, top_k=_top_k_field(max_top_k))


FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]


def sequence_json_model(max_images: int, max_top_k: int) -> type[BaseModel]:
    """`POST /v1/predict/sequence`: 1..max_images photos in walking order, optional gaps.

    `timestamps` (seconds) or `positions` (metres along the route) hold one non-decreasing number per
    photo; a length that differs from the images', both given, or a decrease is answered 422.
    """
    base64_text = Annotated[str, Field(min_length=1)]
    images = (list[base64_text | ImageItem], Field(min_length=1, max_length=max_images))
    numbers = (
        list[FiniteNumber] | None,
        Field(None, min_length=1, max_length=max_images, description="one per photo, non-decreasing"),
    )
    return create_model(
        "SequenceJSON", images=images, timestamps=numbers, positions=numbers, top_k=_top_k_field(max_top_k)
    )


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its `$defs` references replaced by the definitions (for an inline body)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(definitions[ref.rsplit("/", 1)[1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)


# ------------------------------------------------------------------------------------- health
class ReadyOut(BaseModel):
    status: str = Field(description="'ready'")


class HealthOut(BaseModel):
    status: str
    addresses: int
    seen_in_training: int
    device: str
    image_size: int
    calibrated: bool
    threshold: float | None
    limits: dict[str, int]
    batching: dict[str, int | float]
    inflight_bytes: dict[str, int] = Field(description="request bodies in memory now, their peak and budget")


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "bad request (malformed body, bad base64)"),
        (413, "upload, image or request too large (bytes or pixels)"),
        (415, "not an image, or an image format that is not accepted"),
        (422, "invalid parameter, missing image, or truncated/corrupt image"),
        (503, "busy: the in-flight upload budget is spent, or the server is shutting down (see Retry-After)"),
    )
}
# What every GET route can answer besides its 200 (404 for unknown ids, 422 for bad query parameters).
GET_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (404, "no such address"),
        (422, "invalid query parameter"),
    )
}
