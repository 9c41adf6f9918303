"""``ticktape validate``: Great Expectations over a closed day. GE is slow to import: one test."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.storage.lakegen import write_sink_file
from ticktape.cli import main

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_723_161_254 * NS  # 2024-08-08 23:54:14 UTC
DAY = "2024-08-08"


def write_day(lake, crossed: bool = False, duplicate: bool = False) -> None:
    trades, bbo, book, events = [], [], [], []
    for i in range(200):
        t = T0 + i * 100 * MS
        for sym in ("BTC-USDT", "ETH-USDT"):
            trades.append(
                (
                    "binance",
                    sym,
                    t - 3 * MS,
                    t,
                    str(1000 + i),
                    100.0 + i % 5,
                    0.5,
                    "buy" if i % 2 else "sell",
                    0,
                )
            )
            bbo.append(("binance", sym, t - 2 * MS, t, 99.5, 1.0, 100.5, 2.0, i, 0))
            book.append(("binance", sym, t - 2 * MS, t, "bid", 99.5, 1.0, i == 0, i, 0, 16 if i == 0 else 0))
    events.append(("binance", None, "connection", T0, "connect", "{}"))
    if crossed:
        bbo[57] = (*bbo[57][:4], 101.0, 1.0, 100.5, 2.0, *bbo[57][8:])  # bid above ask
    if duplicate:
        trades.append(("binance", "BTC-USDT", T0 + 50 * NS, T0 + 50 * NS, "1007", 100.0, 0.5, "buy", 0))
    write_sink_file(lake, "trades", trades, "s", 0, 1)
    write_sink_file(lake, "bbo", bbo, "s", 0, 1)
    write_sink_file(lake, "book", book, "s", 0, 1)
    write_sink_file(lake, "feed_events", events, "s", 0, 1)


def failed(out) -> dict[str, list[str]]:
    doc = json.loads((out / "results.json").read_text())
    return {
        f"{s['dataset']}.{s['exchange']}": [f["expectation"] for f in s["failed_expectations"]]
        for s in doc["suites"]
        if not s["success"]
    }


def test_validate_passes_clean_day_and_fails_crossed_bbo_or_duplicate_trade_id(tmp_path, capsys):
    clean = tmp_path / "clean"
    write_day(clean)
    # one symbol per GE dataframe (200 rows each): chunking must not change the verdict. A process of
    # its own, so that Great Expectations is imported there: its import-time INFO logging must not show.
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticktape.cli",
            "validate",
            "--lake",
            str(clean),
            "--date",
            DAY,
            "--max-rows",
            "150",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "great_expectations" not in res.stderr
    assert [line.split(" ", 3)[2] for line in res.stderr.splitlines()] == ["INFO"] * 4  # one line per suite
    out = tmp_path / "clean-validation" / DAY
    doc = json.loads((out / "results.json").read_text())
    assert doc["success"] is True
    assert {s["dataset"] for s in doc["suites"]} == {"trades", "bbo", "book", "feed_events"}
    assert all(s["evaluated_expectations"] >= 3 for s in doc["suites"])
    by = {s["dataset"]: s for s in doc["suites"]}
    assert by["trades"]["rows"] == 400 and by["trades"]["evaluated_expectations"] == 2 * 15  # two chunks
    docs = out / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.is_file() and "trades.binance" in docs.read_text()
    assert "validation passed" in res.stdout
    # Data Docs readable offline: no page loads anything from the network; the index needs no script
    # and links every validation page
    pages = list(docs.parent.rglob("*.html"))
    assert len(pages) >= 9
    for page in pages:
        text = page.read_text()
        assert not re.search(r"<(?:link|script|img)\b[^>]*(?:href|src)\s*=\s*[\"']?(?:https?:)?//", text), (
            page
        )
        assert "<style>" in text
    index = docs.read_text()
    assert "<script" not in index
    links = re.findall(r'<a href="(validations/[^"]+)"', index)
    # one validation page per chunk of symbols: two each for trades, bbo and book, one for feed_events
    assert len(links) == 7 and all((docs.parent / link).is_file() for link in links)
    assert index.count('class="passed">passed<') == 7
    # the day's report beside the results
    assert (out / "report.html").is_file() and 'data-exchange="binance"' in (out / "report.html").read_text()

    crossed = tmp_path / "crossed"
    write_day(crossed, crossed=True)
    assert main(["validate", "--lake", str(crossed), "--date", DAY, "--out", str(tmp_path / "r1")]) == 1
    assert failed(tmp_path / "r1") == {"bbo.binance": ["expect_column_values_to_be_between"]}
    assert "validation FAILED" in capsys.readouterr().out

    dup = tmp_path / "dup"
    write_day(dup, duplicate=True)
    assert (
        main(
            [
                "validate",
                "--lake",
                str(dup),
                "--date",
                DAY,
                "--out",
                str(tmp_path / "r2"),
                "--max-rows",
                "150",
            ]
        )
        == 1
    )
    assert failed(tmp_path / "r2") == {"trades.binance": ["expect_compound_columns_to_be_unique"]}

    capsys.readouterr()
    assert main(["validate", "--lake", str(clean), "--date", "2024-08-07"]) == 2  # no data that day
    assert "no data on 2024-08-07" in capsys.readouterr().err.strip().split("\n")[-1]
    assert main(["validate", "--lake", str(clean), "--date", "08/08/2024"]) == 2
    assert main(["validate", "--lake", str(clean), "--date", DAY, "--exchange", "binanse"]) == 2
    assert "it holds: binance" in capsys.readouterr().err
