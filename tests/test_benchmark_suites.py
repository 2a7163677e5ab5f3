"""`addressclip benchmark`: report files exist, every number in report.md matches results.json, a
rerun reuses finished runs, ablations and data coverage work — on the toy street world."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from addressclip.benchmark.ablations import coverage_manifest, unseen_addresses, unseen_manifest
from addressclip.benchmark.options import BenchmarkOptions
from addressclip.benchmark.paired import bootstrap_difference
from addressclip.benchmark.report import ACCURACY_COLUMNS, format_bytes, format_stat
from addressclip.benchmark.suites import run_benchmark
from addressclip.cli import main
from addressclip.eval.evaluate import EvalData
from addressclip.testing.toyworld import make_street_world, train_toy_street_clip

FAST = ("train.threads=1", "optim.batch_size=12", "optim.epochs=1")
METHODS = ("chance", "majority", "zeroshot", "linear_probe", "retrieval", "addressclip")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    manifest = make_street_world(folder / "world")
    return manifest, train_toy_street_clip(manifest, folder / "clip")


@pytest.fixture(scope="module")
def demo_run(toy, tmp_path_factory):
    manifest, init = toy
    out = tmp_path_factory.mktemp("bench")
    argv = ["benchmark", "--suite", "demo", "--data", str(manifest), "--out", str(out), "--config", "tiny",
            "--init", str(init), "--methods", ",".join(METHODS), "--quiet", *FAST]  # fmt: skip
    assert main(argv) == 0
    return out


def _table_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| Method") and not line.startswith("| Setting"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_report_files_exist_and_numbers_match_results_json(demo_run: Path):
    results = json.loads((demo_run / "results.json").read_text())
    report = (demo_run / "report.md").read_text()
    assert set(results["methods"]) == set(METHODS)
    table = results["main_table"]
    rows = _table_rows(report, "## Main table")
    assert len(rows) == len(table) == len(METHODS)
    for row in table:
        cells = rows[row["label"]]
        for i, column in enumerate(ACCURACY_COLUMNS):
            assert cells[i] == format_stat(row[column])
            run = results["methods"][row["method"]][0]
            assert row[column]["mean"] == pytest.approx(run["metrics"][column])
            assert float(cells[i]) == pytest.approx(run["metrics"][column], abs=0.05)
        assert cells[4] == format_stat(row["median_error_m"], 0)
        assert cells[5] == format_bytes(row["storage_bytes"])
        assert cells[6] == format_stat(row["latency_ms"], 2)
    for title, relative in results["figures"].items():
        assert (demo_run / relative).is_file(), title
        assert f"]({relative})" in report
    assert {"figures/examples.png", "figures/reliability.png", "figures/address_accuracy_map.png"} <= set(
        results["figures"].values()
    )
    assert "--suite demo" in results["suites"]["demo"]["command"]
    text = (demo_run / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON


def test_per_query_files_agree_with_the_metrics(demo_run: Path):
    results = json.loads((demo_run / "results.json").read_text())
    queries = pd.read_parquet(demo_run / "methods" / "zeroshot" / "seed0" / "queries.parquet")
    metrics = results["methods"]["zeroshot"][0]["metrics"]
    assert 100 * float(np.mean(queries["truth_position"] == 1)) == pytest.approx(metrics["SSA-1"])
    assert 100 * float(np.mean(queries["truth_position"] <= 5)) == pytest.approx(metrics["SSA-5"])
    assert float(queries["error_m"].median()) == pytest.approx(metrics["error_m"]["median"])


def test_a_rerun_reuses_finished_methods(toy, demo_run: Path):
    manifest, init = toy
    stamp = (demo_run / "methods" / "addressclip" / "seed0" / "result.json").stat().st_mtime_ns
    options = BenchmarkOptions(
        "demo", manifest, demo_run, "tiny", FAST, init, methods=("chance", "addressclip"), progress=False,
        figures=False,
    )  # fmt: skip
    run_benchmark(options)
    assert (demo_run / "methods" / "addressclip" / "seed0" / "result.json").stat().st_mtime_ns == stamp
    results = json.loads((demo_run / "results.json").read_text())
    assert all("reused" in line for line in results["suites"]["demo"]["log"])
    assert set(results["methods"]) == set(METHODS)  # earlier methods stay in the report


def test_ablation_suite_writes_its_table(toy, tmp_path: Path):
    manifest, init = toy
    options = BenchmarkOptions(
        "ablation", manifest, tmp_path, "tiny", FAST, init, progress=False, figures=False,
        ablation_groups=("targets", "caption"),
    )  # fmt: skip
    report = run_benchmark(options).read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    labels = [r["label"] for r in results["ablation_table"]]
    assert labels == ["caption alone", "caption + address (default)", "plain (default)", "multi-positive"]
    rows = _table_rows(report, "## Ablations")
    for row in results["ablation_table"]:
        assert rows[row["label"]][0] == format_stat(row["SSA-1"])
    multi = results["ablations"][3]["runs"][0]
    assert "loss.targets=multi_positive" in multi["hyper"]["overrides"]
    alone = results["ablations"][0]["runs"][0]
    assert "loss.caption_template={caption}" in alone["hyper"]["overrides"]
    # the default row is the main suite's AddressCLIP run: a main suite in the same folder reuses it
    assert (tmp_path / "methods" / "addressclip" / "seed0" / "result.json").is_file()
    main_options = BenchmarkOptions(
        "main", manifest, tmp_path, "tiny", FAST, init, progress=False, figures=False, seeds=1,
        methods=("addressclip",),
    )  # fmt: skip
    run_benchmark(main_options)
    log = json.loads((tmp_path / "results.json").read_text())["suites"]["main"]["log"]
    assert log == [f"addressclip seed 0: reused {tmp_path / 'methods' / 'addressclip' / 'seed0'}"]


def test_coverage_keeps_a_share_of_locations_per_address(toy, tmp_path: Path):
    data = EvalData.load(toy[0], progress=False)
    path = coverage_manifest(data, 0.25, seed=0, out=tmp_path)
    reduced = EvalData.load(path, progress=False)
    train = reduced.frame[reduced.frame["split"] == "train"]
    # 4 training locations per address in the toy world: 25 % keeps one of them (with both views)
    assert train.groupby("address_id")["location_id"].nunique().eq(1).all()
    assert len(train) == 6 * 1 * 2
    assert reduced.vocabulary == data.vocabulary  # the same candidate set
    assert (reduced.frame["split"] != "train").sum() == (data.frame["split"] != "train").sum()


def test_unseen_sub_streets_lose_their_train_and_val_photos_only(toy, tmp_path: Path):
    data = EvalData.load(toy[0], progress=False)
    unseen = unseen_addresses(data, 0.3, seed=0)
    assert len(unseen) == 2 and unseen == unseen_addresses(data, 0.3, seed=0)  # 30 % of 6, seeded
    assert unseen_addresses(data, 0.01, seed=0) != []  # at least one
    reduced = EvalData.load(unseen_manifest(data, unseen, seed=0, out=tmp_path), progress=False)
    gone = reduced.frame[reduced.frame["address_id"].isin(unseen)]
    assert set(gone["split"]) == {"test"}
    assert len(gone) == (data.frame["address_id"].isin(unseen) & (data.frame["split"] == "test")).sum()
    kept = data.frame[~data.frame["address_id"].isin(unseen)]
    assert len(reduced.frame) == len(kept) + len(gone)
    assert reduced.vocabulary == data.vocabulary  # still candidates: by their text only


def test_open_set_rows_split_test_photos_into_unseen_and_seen(toy, tmp_path: Path):
    manifest, init = toy
    options = BenchmarkOptions(
        "ablation", manifest, tmp_path, "tiny", FAST, init, progress=False, figures=False,
        ablation_groups=("openset",),
    )  # fmt: skip
    report = run_benchmark(options).read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    seen_row, unseen_row = results["ablation_table"]
    assert "seen SSA-1" not in seen_row and unseen_row["unseen SSA-1"]["n"] == 1
    run = results["ablations"][1]["runs"][0]
    data = EvalData.load(manifest, progress=False)
    test = data.frame[data.frame["split"] == "test"]
    split = run["by_seen"]
    assert split["unseen"]["queries"] == test["address_id"].isin(run["unseen"]).sum()
    assert split["unseen"]["queries"] + split["seen"]["queries"] == run["metrics"]["queries"] == len(test)
    queries = pd.read_parquet(tmp_path / "ablations" / "default-unseen0100" / "seed0" / "queries.parquet")
    unseen_rows = np.isin(np.asarray(data.vocabulary.address_ids)[queries["truth"]], run["unseen"])
    assert split["unseen"]["SSA-1"] == pytest.approx(
        100 * (queries["truth_position"][unseen_rows] <= 1).mean()
    )
    rows = _table_rows(report, "## Ablations")
    assert rows["10 % of sub-streets unseen"][-2] == format_stat(unseen_row["unseen SSA-1"])


def test_bad_options_fail_with_one_line(toy, tmp_path: Path, capsys):
    manifest, init = toy
    code = main(["benchmark", "--suite", "demo", "--data", str(manifest), "--out", str(tmp_path),
                 "--init", str(init), "--methods", "zeroshot,nonsense", "--quiet"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nonsense" in err
    assert main(["benchmark", "--suite", "demo", "--data", str(manifest), "--out", str(tmp_path),
                 "--init", str(tmp_path / "missing.pt"), "--quiet"]) == 2  # fmt: skip
    assert re.search(r"missing\.pt", capsys.readouterr().err)


def test_bootstrap_interval_of_paired_hits():
    ones, zeros = np.ones(50), np.zeros(50)
    assert bootstrap_difference(ones, ones) == (0.0, 0.0)
    assert bootstrap_difference(ones, zeros) == (100.0, 100.0)
    mixed = np.tile([1.0, 0.0], 100)
    low, high = bootstrap_difference(mixed, np.roll(mixed, 1))
    assert low < 0.0 < high  # 50 % vs 50 %, every query disagreeing: no direction


def test_main_suite_compares_addressclip_and_the_fine_tune_query_by_query(toy, tmp_path: Path):
    manifest, init = toy
    options = BenchmarkOptions(
        "main", manifest, tmp_path, "tiny", FAST, init, progress=False, figures=False, seeds=2,
        methods=("addressclip", "finetune_address"),
    )  # fmt: skip
    report = run_benchmark(options).read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    paired = results["paired"]
    assert paired["seeds"] == [0, 1]
    by_seed = {
        m: {r["seed"]: r["metrics"]["SSA-1"] for r in results["methods"][m]} for m in results["methods"]
    }
    for row in paired["per_seed"]:
        a, b = by_seed["addressclip"][row["seed"]], by_seed["finetune_address"][row["seed"]]
        assert row["difference"] == pytest.approx(a - b)
        assert row["ci95"][0] <= row["difference"] + 1e-9 and row["difference"] - 1e-9 <= row["ci95"][1]
    counts = paired["addresses"]
    assert counts["gain"] + counts["loss"] + counts["tie"] == counts["count"] == 6
    assert sum(q["addresses"] for q in paired["by_train_photos"]) == 6
    assert all(len(curve) == 1 for curve in paired["curves"]["addressclip"])  # one epoch: one val point
    assert "## AddressCLIP vs the L_address-only fine-tune (paired)" in report
    assert f"{paired['per_seed'][0]['difference']:+.1f}" in report


@pytest.mark.parametrize("tested", [1, 3, 5])
def test_paired_comparison_with_few_tested_addresses(tmp_path: Path, tested: int):
    from addressclip.benchmark.paired import paired_comparison

    addresses = [f"a{i}" for i in range(tested)]
    frame = pd.DataFrame({"address_id": addresses * 3, "split": ["train"] * tested * 2 + ["test"] * tested})
    rows = np.arange(2 * tested, 3 * tested)
    for name, hits in (("addressclip", 1), ("finetune_address", 2)):
        folder = tmp_path / "methods" / name / "seed0"
        folder.mkdir(parents=True)
        pd.DataFrame({"row": rows, "truth_position": np.full(tested, hits)}).to_parquet(
            folder / "queries.parquet"
        )
    result = paired_comparison(tmp_path, frame, [0])
    assert result["per_seed"][0]["difference"] == pytest.approx(100.0)
    assert sum(q["addresses"] for q in result["by_train_photos"]) == tested
    assert result["addresses"]["gain"] == tested
