"""``python -m benchmarks``: the subcommands, configuration strings and the results files."""

import json

import pytest

from benchmarks import __main__ as entry
from benchmarks import common, sets


def test_every_subcommand_parses_its_defaults_and_is_documented():
    for name in entry.SUBCOMMANDS:
        args = entry.parser().parse_args([name])
        assert args.func is entry.SUBCOMMANDS[name].run and args.results == common.RESULTS
        assert f"``python -m benchmarks {name}``" in entry.__doc__
        assert f"``{name}.json``, ``{name}.log``" in " ".join(entry.__doc__.split())


def test_configuration_strings_replace_preset_fields():
    from napari_scoredvi.engine.presets import get_preset

    assert common.preset_config("fast") is get_preset("fast")
    four = common.preset_config("balanced:ensemble=4")
    assert (four.name, four.ensemble, four.stabilise) == ("balanced:ensemble=4", 4, True)
    off = common.preset_config("fast:stabilise=False,final_pass=false")
    assert (off.stabilise, off.final_pass, off.ensemble) == (False, False, 1)
    assert common.preset_config("variational:iterations=150").iterations == 150
    assert common.preset_from_dict(four.as_dict()) == four
    with pytest.raises(ValueError, match="no field 'crops'"):
        common.preset_config("fast:crops=2")
    with pytest.raises(SystemExit):
        entry.parser().parse_args(["speed", "--configs", "fast:iterations=3"])  # the ensemble runs no fit


def test_report_replaces_the_last_run_only_when_it_ends(tmp_path, capsys):
    with common.Report("demo", tmp_path, "demo benchmark", 1) as report:
        print("figures")
        report.data["value"] = 1
    assert "figures" in (tmp_path / "demo.log").read_text()
    written = json.loads((tmp_path / "demo.json").read_text())
    assert written["value"] == 1 and written["title"] == "demo benchmark" and "torch" in written["machine"]
    with pytest.raises(RuntimeError), common.Report("demo", tmp_path, "demo benchmark", 1) as report:
        print("half a run")
        report.data["value"] = 2
        raise RuntimeError
    assert "half a run" not in (tmp_path / "demo.log").read_text()
    assert json.loads((tmp_path / "demo.json").read_text())["value"] == 1
    assert "half a run" in (tmp_path / "demo.log.tmp").read_text()
    assert "figures" in capsys.readouterr().out


@pytest.mark.slow
def test_calibration_runs_end_to_end(tmp_path):
    entry.main(["calibration", "--seeds", "2", "--results", str(tmp_path)])
    report = json.loads((tmp_path / "calibration.json").read_text())
    assert set(report["scenes"]) == {"wedge", "fluorescence"}
    assert 0.8 < report["scenes"]["wedge"]["summary"]["gain_ratio_mean"] < 1.2
    assert "napari sample stack" in (tmp_path / "calibration.log").read_text()


def test_synthetic_sets_are_made_from_the_shared_datasets():
    if not (sets.DATA / "w2s").is_dir() or not (sets.DATA / "bsd").is_dir():
        pytest.skip(f"needs the W2S and BSD datasets under {sets.DATA} (../shared/datasets)")
    items = sets.load("corr", per_source=1, conditions=1)
    assert [i.name for i in items] == ["w2s020_1_g8_r1.5", "bsdtest001_g8_r1.5"]
    assert items[0].noisy.dtype.name == "uint16" and items[0].params["correlated"]
    assert items[0].variance.shape == items[0].clean.shape == (sets.CROP, sets.CROP)
