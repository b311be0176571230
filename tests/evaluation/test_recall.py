"""``s2dloc evaluate`` names the ground-truth queries without a result and gives the recall over
all ground-truth queries and over the submitted ones."""

import pytest

from s2dloc.cli import main
from s2dloc.evaluation.recall import evaluate


def _write(path, names, t=0.0):
    path.write_text("".join(f"{n} 1 0 0 0 {t} 0 0\n" for n in names))
    return path


def test_missing_queries_reported_with_both_recalls(tmp_path, capsys):
    names = [f"q{i}.png" for i in range(10)]
    gt = _write(tmp_path / "gt.txt", names)
    res = tmp_path / "res.txt"
    res.write_text(
        "".join(f"{n} 1 0 0 0 {0.1 if i < 3 else 2.0} 0 0\n" for i, n in enumerate(names[:4]))
        + "extra.png 1 0 0 0 0 0 0\n"
    )
    ev = evaluate(res, gt)
    assert ev.missing == names[4:] and ev.extra == ["extra.png"]
    assert ev.table["all"]["count"] == 10 and ev.table["all"]["0.25m/2.0deg"] == 30
    assert ev.submitted["all"]["count"] == 4 and ev.submitted["all"]["0.25m/2.0deg"] == 75
    assert (
        main(
            [
                "evaluate",
                "--results",
                f"mine={res}",
                "--gt",
                str(gt),
                "--plot",
                str(tmp_path / "p.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "6 of 10 ground-truth queries have no result" in out
    assert "q4.png, q5.png, q6.png, q7.png, q8.png" in out
    assert "recall over all 10 ground-truth queries" in out
    assert "recall over the 4 submitted queries" in out


def test_no_result_at_all(tmp_path):
    gt = _write(tmp_path / "gt.txt", ["a.png", "b.png"])
    ev = evaluate(_write(tmp_path / "res.txt", ["other.png"]), gt)
    assert ev.missing == ["a.png", "b.png"] and ev.submitted == {}
    assert ev.table["all"]["0.25m/2.0deg"] == 0


def test_plot_that_is_a_directory_is_refused(tmp_path, caplog):
    gt = _write(tmp_path / "gt.txt", ["a.png"])
    (tmp_path / "plots").mkdir()
    rc = main(
        ["evaluate", "--results", str(gt), "--gt", str(gt), "--plot", str(tmp_path / "plots")]
    )
    assert rc == 2
    assert f"--plot {tmp_path / 'plots'} is a directory" in caplog.text


@pytest.mark.parametrize("bad", ["1", "a,b"])
def test_bad_threshold(tmp_path, bad):
    gt = _write(tmp_path / "gt.txt", ["a.png"])
    assert main(["evaluate", "--results", str(gt), "--gt", str(gt), "--thresholds", bad]) == 2
