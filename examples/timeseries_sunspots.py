"""One-step-ahead forecasting of the yearly sunspot numbers with a small LSTM, beside ARIMA.

The tutorial's time-series model: a window of the last 10 values (the memory) feeds one
recurrent layer, then Dense, Dropout(0.3), Dense, with Dropout(0.3) on the recurrent layer's
output too. The series (statsmodels' bundled `sunspots`, 1700-2008) is split in time: the first
80% trains, the last 20% tests. Values are scaled by the training maximum. ARIMA(9, 0, 1) from
statsmodels is fitted on the same training part and forecasts the test years one step ahead
from the true history, like the network; a persistence forecast (next = last) is printed too.

Needs statsmodels (`pip install statsmodels`).

Run:
    python examples/timeseries_sunspots.py [--epochs 100]
"""

import argparse
import warnings

import numpy as np

from rustkeras.layers import LSTM, Dense, Dropout
from rustkeras.models import Sequential
from rustkeras.utils import plot_history, set_random_seed

MEMORY = 10


def windows(series: np.ndarray, start: int, stop: int):
    """Inputs `(n, MEMORY, 1)` and next values for the targets series[start:stop]."""
    x = np.stack([series[t - MEMORY:t] for t in range(start, stop)])[..., None]
    return x.astype(np.float32), series[start:stop].astype(np.float32)


def rmse(pred, true) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(true)) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()

    import statsmodels.api as sm
    from statsmodels.tsa.arima.model import ARIMA

    series = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    split = int(len(series) * 0.8)
    scale = series[:split].max()
    scaled = series / scale

    set_random_seed(args.seed)
    x_train, y_train = windows(scaled, MEMORY, split)
    x_test, y_test = windows(scaled, split, len(series))
    model = Sequential()
    model.add(LSTM(32, input_shape=(MEMORY, 1)))
    model.add(Dropout(0.3))
    model.add(Dense(16, activation="relu"))
    model.add(Dropout(0.3))
    model.add(Dense(1))
    model.compile(loss="mse", optimizer="adam")
    history = model.fit(x_train, y_train, batch_size=16, epochs=args.epochs, verbose=0, shuffle=True)
    lstm_pred = model.predict(x_test, verbose=0).ravel() * scale

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = ARIMA(series[:split], order=(9, 0, 1)).fit()
        # Refit-free one-step forecasts over the test years, each from the true history.
        arima_pred = fitted.append(series[split:], refit=False).predict(start=split, end=len(series) - 1)

    true = series[split:]
    print(f"sunspots {len(series)} years; train {split - MEMORY} windows, test {len(true)} years "
          f"({1700 + split}-{1700 + len(series) - 1})")
    print(f"  LSTM (memory {MEMORY}) test RMSE  {rmse(lstm_pred, true):7.2f}")
    print(f"  ARIMA(9, 0, 1) test RMSE       {rmse(arima_pred, true):7.2f}")
    print(f"  persistence test RMSE          {rmse(series[split - 1:-1], true):7.2f}")

    if args.plot:
        plot_history(history, args.plot)
        print("training history written to", args.plot)


if __name__ == "__main__":
    main()
