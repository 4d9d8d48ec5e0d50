"""Train and evaluate a small model on a CSV file, and write the model to `model.bin`.

`merkl run pipeline2.pipeline` prints `(score, model)`. The CSV is a task input through
`merkl.read_file`, so editing it re-runs what depends on it, and nothing else.
"""

import csv
import io

from merkl import read_file, task, write_file


@task(outs=2)
def load_data(csv_bytes, test_every=5):
    """Parse (x, y) rows; every `test_every`-th row is held out for evaluation."""
    rows = [
        (float(r["x"]), float(r["y"])) for r in csv.DictReader(io.StringIO(csv_bytes.decode()))
    ]
    train_rows = [row for i, row in enumerate(rows) if i % test_every]
    test_rows = [row for i, row in enumerate(rows) if not i % test_every]
    return train_rows, test_rows


@task
def train(rows, epochs, learning_rate=0.01):
    """Fit y = w·x + b by gradient descent."""
    w = b = 0.0
    n = len(rows)
    for _ in range(epochs):
        grad_w = sum((w * x + b - y) * x for x, y in rows) * 2 / n
        grad_b = sum((w * x + b - y) for x, y in rows) * 2 / n
        w -= learning_rate * grad_w
        b -= learning_rate * grad_b
    return {"w": round(w, 6), "b": round(b, 6)}


@task
def evaluate(model, rows):
    """Coefficient of determination (R²) of the model on `rows`."""
    mean = sum(y for _, y in rows) / len(rows)
    residual = sum((model["w"] * x + model["b"] - y) ** 2 for x, y in rows)
    total = sum((y - mean) ** 2 for _, y in rows)
    return round(1 - residual / total, 4)


def pipeline(data: str = "data/train.csv", *, epochs: int = 500):
    train_rows, test_rows = load_data(read_file(data))
    model = train(train_rows, epochs)
    score = evaluate(model, test_rows)
    write_file(model, "model.bin", track=True)
    return score, model
