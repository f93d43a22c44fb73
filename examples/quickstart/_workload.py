"""The quickstart's `expensive_computation()`, which it leaves to the reader."""


def expensive_computation():
    total = 0
    for i in range(3_000_000):
        total += i * i % 7
    return total
