"""Every command that partitions an OSM extract takes all six partition rules, in the same words."""

from __future__ import annotations

import pytest

from addressclip.cli import build_parser, parse_intermixed
from addressclip.commands.common import PARTITION_OPTIONS, partition_config_from_args
from addressclip.geo.partition import PartitionConfig
from addressclip.world.params import RenderParams

# the same six rules, none at its default, so that a dropped flag shows as a default value
RULES = [
    "--highway", "residential,tertiary", "--min-gap-m", "12.5", "--max-cross-streets", "1",
    "--street-split-m", "77", "--carriageway-snap-m", "21", "--neighbourhoods", "places",
]  # fmt: skip
EXPECTED = PartitionConfig(
    highway_classes=("residential", "tertiary"), min_gap_m=12.5, max_cross_streets=1,
    street_split_m=77.0, carriageway_snap_m=21.0, neighbourhood_source="places",
)  # fmt: skip
COMMANDS = {
    "addressbook": ["addressbook", "--world", "karhula", "--out", "o"],
    "build": ["build", "--format", "cosplace", "--images", "i", "--world", "karhula", "--out", "o"],
    "render": ["render", "--world", "tiny", "--out", "o"],
    "demo": ["demo", "--world", "tiny", "--out", "o"],
}


def test_the_rule_table_covers_every_partition_field():
    assert sorted(PARTITION_OPTIONS.values()) == sorted(PartitionConfig().to_dict())


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_rule_flag_reaches_the_partition_config(command):
    parser = build_parser()
    args = parse_intermixed(parser, [*COMMANDS[command], *RULES])
    assert partition_config_from_args(args) == EXPECTED
    defaults = parse_intermixed(parser, COMMANDS[command])
    assert partition_config_from_args(defaults) == PartitionConfig()


def test_render_params_carry_the_rules_into_the_hash():
    default = RenderParams.resolve("tiny")
    same = RenderParams.resolve("tiny", partition=PartitionConfig())
    other = RenderParams.resolve("tiny", partition=EXPECTED)
    assert default.partition == () and default.hash == same.hash  # old renders stay reusable
    assert other.partition_config == EXPECTED and other.hash != default.hash
    assert other.to_dict()["partition"]["min_gap_m"] == 12.5


def test_demo_hands_the_rules_to_its_render(monkeypatch):
    import addressclip.demo.pipeline as pipeline
    from addressclip.cli import main

    seen = []
    monkeypatch.setattr(pipeline, "run_demo", seen.append)
    assert main(["demo", "--world", "tiny", "--out", "o", *RULES]) == 0
    assert seen[0].partition == EXPECTED
