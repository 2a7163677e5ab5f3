"""Response shapes of the REST service (they are what the OpenAPI document at /openapi.json shows)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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
        description="top-1 score below the calibrated threshold (null: uncalibrated)"
    )
    threshold: float | None
    matches: list[Match]


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


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
    )
}
