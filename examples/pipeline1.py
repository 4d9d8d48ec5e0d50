"""The seed's first pipeline: `merkl run pipeline1.my_pipeline 42` prints 7056."""

from merkl import CodeHashMode, task


@task
def task1(input_value):
    return 2 * input_value


@task(code_hash_mode=CodeHashMode.FUNCTION)
def task2(input_value):
    return input_value**2


def my_pipeline(input_value: int):
    return task2(task1(input_value))
