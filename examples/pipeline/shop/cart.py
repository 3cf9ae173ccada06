"""A tiny app whose pushes the example's CI server tests."""


def total(prices: list[float], discount: float = 0.0) -> float:
    """The price of a cart, with a discount between 0 and 1.

    >>> total([1.25, 2.75], discount=0.5)
    2.0
    """
    if not 0 <= discount < 1:
        raise ValueError("discount must be between 0 and 1")
    return round(sum(prices) * (1 - discount), 2)
