"""The behaviour analytics on real purchases: CDNOW (69,659 purchases by 23,570 customers).

    .venv/bin/python bench/cdnow.py [--holdout-weeks 12] [--holdout-days 14]

Needs `lifetimes==0.11.3` installed with --no-deps (requirements-bench.txt); only its data
file is read, the module is never imported. Prints:
1. RFM segments from `behavior.analytics.rfm_from_purchases` (as of the day after the last
   purchase): customers, share, average recency / purchases / spend per segment;
2. repeat purchase, funnel-style: customers with 1, 2, 3+ purchases and the conversion from
   each step to the next;
3. forecast back-tests with `behavior.analytics.backtest` (the dashboard's Holt-Winters code)
   beside the seasonal-naive baseline, on weekly purchase counts (4-week season: 78 weeks are
   too few for a yearly one) and on daily counts (weekly season, as the dashboard's forecast).

No database is used (Django is set up only so that behavior.analytics can be imported).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django  # noqa: E402

django.setup()

from behavior.analytics import backtest, rfm_from_purchases  # noqa: E402


def cdnow_path() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("lifetimes is not installed: .venv/bin/pip install --no-deps lifetimes==0.11.3")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"


def read_purchases(path: Path) -> list[tuple[str, dt.date, float]]:
    """(customer id, date, amount) per line: `customer YYYYMMDD quantity amount` (header skipped)."""
    purchases = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) != 4 or not parts[1].isdigit():
                continue  # the header
            customer, day, _quantity, amount = parts
            purchases.append((customer, dt.datetime.strptime(day, "%Y%m%d").date(), float(amount)))
    return purchases


def print_rfm(purchases: list[tuple[str, dt.date, float]]) -> None:
    as_of = max(day for _c, day, _a in purchases) + dt.timedelta(days=1)
    started = time.perf_counter()
    result = rfm_from_purchases(purchases, as_of=as_of)
    seconds = time.perf_counter() - started
    print(f"\nRFM segments as of {as_of} ({result.customers:,} customers, {len(purchases):,} purchases, "
          f"computed in {seconds:.2f} s)")
    print(f"{'segment':<20}{'customers':>10}{'share':>8}{'recency d':>11}{'purchases':>11}{'spent $':>10}")
    for segment in result.segments:
        print(f"{segment.name:<20}{segment.customers:>10,}{segment.share:>8.1%}{segment.avg_recency_days:>11.0f}"
              f"{segment.avg_frequency:>11.2f}{segment.avg_monetary:>10.2f}")
    grid = Counter((r, f) for r, f, _m, _name in result.scores.values())
    print("customers by recency score (rows) and frequency score (columns):")
    print("      " + "".join(f"{'F' + str(f):>8}" for f in range(1, 6)))
    for r in range(5, 0, -1):
        print(f"  R{r}  " + "".join(f"{grid[(r, f)]:>8,}" for f in range(1, 6)))


def print_repeat_funnel(purchases: list[tuple[str, dt.date, float]]) -> None:
    per_customer = Counter(customer for customer, _d, _a in purchases)
    total = len(per_customer)
    exactly = Counter(min(n, 3) for n in per_customer.values())
    at_least = {k: sum(v for n, v in exactly.items() if n >= k) for k in (1, 2, 3)}
    print("\nRepeat purchase (funnel-style)")
    print(f"{'purchases':<12}{'customers':>10}{'share':>8}{'reached':>10}{'from previous':>15}")
    for k, label in ((1, "1"), (2, "2"), (3, "3+")):
        previous = at_least.get(k - 1)
        conversion = f"{at_least[k] / previous:.1%}" if previous else "-"
        print(f"{label:<12}{exactly[k]:>10,}{exactly[k] / total:>8.1%}{at_least[k] / total:>10.1%}{conversion:>15}")
    print("(share: exactly that many purchases; reached: at least that many)")


def counts_by(purchases: list[tuple[str, dt.date, float]], days_per_bucket: int) -> list[float]:
    first = min(day for _c, day, _a in purchases)
    last = max(day for _c, day, _a in purchases)
    buckets = (last - first).days // days_per_bucket + 1
    counts = [0.0] * buckets
    for _customer, day, _amount in purchases:
        counts[(day - first).days // days_per_bucket] += 1
    if (last - first).days % days_per_bucket != days_per_bucket - 1:
        counts = counts[:-1]  # a partial last week would look like a collapse
    return counts


def print_backtest(label: str, values: list[float], holdout: int, season: int, unit: str) -> None:
    result = backtest(values, holdout=holdout, season=season)
    actual = values[-holdout:]
    print(f"\nForecast back-test: {label} ({len(values)} {unit}s, the last {holdout} held out; "
          f"mean actual {sum(actual) / holdout:.1f} purchases per {unit})")
    print(f"{'model':<72}{'MAE':>9}{'MAPE':>8}")
    for name, mae, mape in ((result.method, result.mae, result.mape),
                            (f"Seasonal naive (same point of the last {season}-{unit} season)", result.baseline_mae,
                             result.baseline_mape)):
        print(f"{name:<72}{mae:>9.1f}{(f'{mape:.1%}' if mape is not None else '-'):>8}")
    change = result.mae / result.baseline_mae - 1
    verdict = "beats" if change < 0 else "does not beat"
    print(f"Holt-Winters {verdict} the seasonal-naive baseline (MAE {abs(change):.0%} "
          f"{'lower' if change < 0 else 'higher'}).")
    print(f"{unit:>6}  actual  Holt-Winters  seasonal naive")
    for i, (a, p, b) in enumerate(zip(actual, result.predicted, result.baseline, strict=True), 1):
        print(f"{'+' + str(i):>6}{a:>8.0f}{p:>14.1f}{b:>16.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holdout-weeks", type=int, default=12)
    parser.add_argument("--holdout-days", type=int, default=14)
    args = parser.parse_args()

    path = cdnow_path()
    purchases = read_purchases(path)
    first = min(day for _c, day, _a in purchases)
    last = max(day for _c, day, _a in purchases)
    customers = len({customer for customer, _d, _a in purchases})
    print(f"CDNOW ({path.name} from lifetimes): {len(purchases):,} purchases by {customers:,} customers, "
          f"{first} to {last}, ${sum(a for _c, _d, a in purchases):,.0f} in all")
    print("(every customer made a first purchase in Q1 1997; the rest are their repeat purchases)")
    print_rfm(purchases)
    print_repeat_funnel(purchases)
    print_backtest("weekly purchases", counts_by(purchases, 7), args.holdout_weeks, 4, "week")
    print_backtest("daily purchases", counts_by(purchases, 1), args.holdout_days, 7, "day")


if __name__ == "__main__":
    main()
