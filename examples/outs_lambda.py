"""A task whose number of outputs depends on its arguments.

`merkl run outs_lambda.pipeline` prints `([1, 2, 3], [4, 5, 6])`.
"""

from merkl import task


@task(outs=lambda data, k: k)
def split(data, k):
    size = len(data) // k
    return [data[i * size : (i + 1) * size] for i in range(k)]


def pipeline(k: int = 2):
    return split([1, 2, 3, 4, 5, 6], k)
