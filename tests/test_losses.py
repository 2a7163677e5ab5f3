import math

import pytest
import torch
import torch.nn.functional as F

from addressclip.config import LossConfig
from addressclip.losses import (
    AddressClipLoss,
    LossInputs,
    geo_loss,
    geographic_distance,
    info_nce,
    normalised_utm,
)


def direct_info_nce(image, text, scale):
    """The symmetric InfoNCE written out with loops and math.log/exp."""
    n = len(image)
    logits = [[scale * float(image[i] @ text[j]) for j in range(n)] for i in range(n)]
    i2t = -sum(logits[i][i] - math.log(sum(math.exp(v) for v in logits[i])) for i in range(n)) / n
    t2i = -sum(logits[j][j] - math.log(sum(math.exp(logits[i][j]) for i in range(n))) for j in range(n)) / n
    return 0.5 * (i2t + t2i)


def test_info_nce_by_hand():
    eye = torch.eye(2)
    # logits = I: each row's cross-entropy is log(1 + e^-1)
    assert info_nce(eye, eye, torch.tensor(1.0)).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)


def test_info_nce_matches_direct_formula():
    torch.manual_seed(0)
    image = F.normalize(torch.randn(5, 8), dim=-1)
    text = F.normalize(torch.randn(5, 8), dim=-1)
    got = info_nce(image, text, torch.tensor(7.0)).item()
    assert got == pytest.approx(direct_info_nce(image, text, 7.0), abs=1e-5)


def test_multi_positive_by_hand_and_reduces_to_plain():
    image = torch.eye(3)
    text = torch.eye(3)
    labels = torch.tensor([0, 0, 1])
    # rows 0, 1: target 1/2 on columns 0 and 1; logits rows are one-hot of the diagonal
    z = 2 + math.e  # sum of exp over a row of I
    row01 = -(0.5 * (1 - math.log(z)) + 0.5 * (0 - math.log(z)))
    row2 = -(1 - math.log(z))
    expected = (2 * row01 + row2) / 3  # same value in both directions (symmetric matrices)
    assert info_nce(image, text, torch.tensor(1.0), labels).item() == pytest.approx(expected, abs=1e-6)
    torch.manual_seed(1)
    a, b = F.normalize(torch.randn(4, 6), dim=-1), F.normalize(torch.randn(4, 6), dim=-1)
    distinct = torch.arange(4)
    assert info_nce(a, b, torch.tensor(3.0), distinct).item() == pytest.approx(
        info_nce(a, b, torch.tensor(3.0)).item(), abs=1e-6
    )


def test_multi_positive_treats_same_address_texts_as_positives():
    # swapping the texts of two same-address images changes nothing for multi-positive targets,
    # while plain CLIP targets now count the right text of the same address as a negative
    torch.manual_seed(3)
    image = F.normalize(torch.randn(4, 6), dim=-1)
    text = F.normalize(torch.randn(4, 6), dim=-1)
    swapped = text[[1, 0, 2, 3]]
    labels = torch.tensor([0, 0, 1, 2])
    scale = torch.tensor(5.0)
    assert info_nce(image, swapped, scale, labels).item() == pytest.approx(
        info_nce(image, text, scale, labels).item(), abs=1e-6
    )
    assert abs(info_nce(image, swapped, scale).item() - info_nce(image, text, scale).item()) > 1e-3


def test_geographic_distance_is_normalised_manhattan():
    utm = torch.tensor([[500_000.0, 6_600_000.0], [500_100.0, 6_600_000.0], [500_000.0, 6_600_400.0]])
    assert normalised_utm(utm).tolist() == [[0, 0], [1, 0], [0, 1]]
    expected = [[0, 1, 1], [1, 0, 2], [1, 2, 0]]
    assert geographic_distance(utm).tolist() == expected


def test_geo_loss_is_zero_when_feature_distances_equal_geographic_ones():
    utm = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])  # D = [[0,1,1],[1,0,2],[1,2,0]]
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # 1 - cos = the same matrix
    assert geo_loss(features, utm).item() == pytest.approx(0.0, abs=1e-12)
    assert geo_loss(features, utm, "literal").item() > 0.5


def test_geo_loss_by_hand_both_forms():
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # cos = 1 everywhere
    utm = torch.tensor([[0.0, 0.0], [3.0, 4.0]])  # D = [[0, 2], [2, 0]]
    # distance form: (1 - cos) = 0 -> mean of (0-0)^2, (0-2)^2, (0-2)^2, (0-0)^2 = 2
    assert geo_loss(features, utm, "distance").item() == pytest.approx(2.0)
    # literal form: cos = 1 -> mean of (1-0)^2, (1-2)^2, (1-2)^2, (1-0)^2 = 1
    assert geo_loss(features, utm, "literal").item() == pytest.approx(1.0)


def test_total_is_the_weighted_sum_of_named_terms():
    torch.manual_seed(2)
    image = F.normalize(torch.randn(4, 8, requires_grad=True), dim=-1)
    address = F.normalize(torch.randn(4, 8), dim=-1)
    caption = F.normalize(torch.randn(4, 8), dim=-1)
    utm = torch.rand(4, 2) * 1000
    labels = torch.tensor([0, 1, 2, 3])
    terms = AddressClipLoss(LossConfig(alpha=1.0, beta=0.2, gamma=0.8))(
        LossInputs(image, address, caption, labels, utm), torch.tensor(10.0)
    )
    assert set(terms) == {"address", "caption", "geo", "total"}
    assert terms["address"].item() == pytest.approx(info_nce(image, address, torch.tensor(10.0)).item())
    assert terms["geo"].item() == pytest.approx(geo_loss(image, utm).item())
    expected = terms["address"] + 0.2 * terms["caption"] + 0.8 * terms["geo"]
    assert terms["total"].item() == pytest.approx(expected.item())
    terms["total"].backward()
    # a zero weight drops the term altogether
    only_address = AddressClipLoss(LossConfig(alpha=1.0, beta=0.0, gamma=0.0))(
        LossInputs(image.detach(), address, None, labels, None), torch.tensor(10.0)
    )
    assert set(only_address) == {"address", "total"}
